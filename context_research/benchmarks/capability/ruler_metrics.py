"""RULER's official scoring (NVIDIA/RULER scripts/eval/evaluate.py and eval/synthetic/constants.py).

Predictions are post-processed (stripped, control characters turned into newlines); a reference
counts as found when it occurs in the prediction, case-insensitively. Every task here uses
string_match_all (the qa tasks use string_match_part).
"""

from __future__ import annotations

import re

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f]")


def postprocess_pred(predict_str: str) -> str:
    """Strip, and turn non-printable characters into newlines (evaluate.py)."""
    return CONTROL_CHARACTERS.sub("\n", predict_str.strip()).strip()


def string_match_all(preds: list[str], refs: list[list[str]]) -> float:
    """100 x the mean over samples of the share of references found in the prediction."""
    score = sum(sum(1.0 if r.lower() in pred.lower() else 0.0 for r in ref) / len(ref)
                for pred, ref in zip(preds, refs)) / len(preds) * 100
    return round(score, 2)


def string_match_part(preds: list[str], refs: list[list[str]]) -> float:
    """100 x the share of samples whose prediction contains at least one reference."""
    score = sum(max(1.0 if r.lower() in pred.lower() else 0.0 for r in ref)
                for pred, ref in zip(preds, refs)) / len(preds) * 100
    return round(score, 2)


def sample_match_all(prediction: str, references: list[str]) -> float:
    """One sample's string_match_all in [0, 1], after post-processing."""
    prediction = postprocess_pred(prediction).lower()
    return sum(1.0 for r in references if r.lower() in prediction) / len(references)
