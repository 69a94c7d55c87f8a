"""LongBench v1's official metrics and task scores, ported from THUDM/LongBench metrics.py and eval.py.

The same packages as the original (`rouge`, `fuzzywuzzy`, `jieba`) and the same normalisation, so a
prediction scores here what it scores there. Two quirks of the original are kept because they define
the published numbers: `classification_score` never reaches its fuzzy-matching fallback (the original
tests `em_match_list != 0`, always true for a list), and it removes items from the list it iterates.
The task scores keep eval.py's arithmetic too: `scorer` sums in file order and divides once,
`scorer_e` takes numpy's mean per length group and rounds it with numpy; the two can differ by 0.01.
"""

from __future__ import annotations

import math
import re
import string
import warnings
from collections import Counter
from typing import Callable, Iterable

import numpy as np
from rouge import Rouge

from context_research.benchmarks.capability.longbench_spec import FIRST_LINE_TASKS, base_task

with warnings.catch_warnings():  # the pure-python SequenceMatcher is what the original environment used
    warnings.simplefilter("ignore")
    from fuzzywuzzy import fuzz

CN_PUNCTUATION = ("！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿"
                  "–—‘’‛“”„‟…‧﹏.")


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    text = s.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def normalize_zh_answer(s: str) -> str:
    """Lower text and remove punctuation (ASCII and Chinese) and all whitespace."""
    punctuation = set(string.punctuation + CN_PUNCTUATION)
    text = "".join(ch for ch in s.lower() if ch not in punctuation)
    return "".join(text.split())


def count_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """Share of the numbers in the prediction that equal the true count."""
    numbers = re.findall(r"\d+", prediction)
    right = sum(1 for number in numbers if str(number) == str(ground_truth))
    return 0.0 if not numbers else float(right / len(numbers))


def _paragraph_score(prediction: str, ground_truth: str, pattern: str) -> float:
    ground_truth_id = re.findall(pattern, ground_truth)[0]
    numbers = re.findall(r"\d+", prediction)
    right = sum(1 for number in numbers if str(number) == str(ground_truth_id))
    return 0.0 if not numbers else float(right / len(numbers))


def retrieval_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """Share of the numbers in the prediction that name the right paragraph ("Paragraph N")."""
    return _paragraph_score(prediction, ground_truth, r"Paragraph (\d+)")


def retrieval_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """retrieval_score for the Chinese task ("段落N")."""
    return _paragraph_score(prediction, ground_truth, r"段落(\d+)")


def code_sim_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """fuzzywuzzy ratio / 100 between the reference and the first generated line that is not a
    comment or a code fence."""
    code_line = ""
    for line in prediction.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            code_line = line
            break
    return fuzz.ratio(code_line, ground_truth) / 100


def classification_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """1 / (number of class names found in the prediction) if the true class is among them, else 0;
    a found name that is part of the true class (and not the class itself) is dropped first."""
    matches = [name for name in kwargs["all_classes"] if name in prediction]
    for term in matches:  # mutates while iterating, as the original does
        if term in ground_truth and term != ground_truth:
            matches.remove(term)
    return 1.0 / len(matches) if ground_truth in matches else 0.0


def rouge_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """ROUGE-L F1 of the `rouge` package; 0 where it cannot score (e.g. an empty prediction)."""
    try:
        scores = Rouge().get_scores([prediction], [ground_truth], avg=True)
    except Exception:  # the original catches everything and scores 0
        return 0.0
    return scores["rouge-l"]["f"]


def rouge_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """rouge_score over jieba word segments."""
    import jieba  # Chinese tasks only: its dictionary takes a second to load

    prediction = " ".join(jieba.cut(prediction, cut_all=False))
    ground_truth = " ".join(jieba.cut(ground_truth, cut_all=False))
    return rouge_score(prediction, ground_truth)


def f1_score(prediction: list[str], ground_truth: list[str], **kwargs) -> float:
    """Token-multiset F1."""
    common = Counter(prediction) & Counter(ground_truth)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction)
    recall = same / len(ground_truth)
    return (2 * precision * recall) / (precision + recall)


def qa_f1_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """F1 over whitespace tokens of the normalised answers."""
    return f1_score(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def qa_f1_zh_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """F1 over jieba segments, each normalised, empty ones dropped."""
    import jieba

    prediction_tokens = [normalize_zh_answer(t) for t in jieba.cut(prediction, cut_all=False)]
    ground_truth_tokens = [normalize_zh_answer(t) for t in jieba.cut(ground_truth, cut_all=False)]
    return f1_score([t for t in prediction_tokens if t], [t for t in ground_truth_tokens if t])


DATASET2METRIC: dict[str, Callable[..., float]] = {
    "narrativeqa": qa_f1_score,
    "qasper": qa_f1_score,
    "multifieldqa_en": qa_f1_score,
    "multifieldqa_zh": qa_f1_zh_score,
    "hotpotqa": qa_f1_score,
    "2wikimqa": qa_f1_score,
    "musique": qa_f1_score,
    "dureader": rouge_zh_score,
    "gov_report": rouge_score,
    "qmsum": rouge_score,
    "multi_news": rouge_score,
    "vcsum": rouge_zh_score,
    "trec": classification_score,
    "triviaqa": qa_f1_score,
    "samsum": rouge_score,
    "lsht": classification_score,
    "passage_retrieval_en": retrieval_score,
    "passage_count": count_score,
    "passage_retrieval_zh": retrieval_zh_score,
    "lcc": code_sim_score,
    "repobench-p": code_sim_score,
}


def score_sample(task: str, prediction: str, answers: list[str], all_classes: list[str] | None) -> float:
    """One prediction's score in [0, 1] as eval.py computes it: the first line only on the few-shot
    tasks, the best over the reference answers."""
    task = base_task(task)
    if task in FIRST_LINE_TASKS:
        prediction = prediction.lstrip("\n").split("\n")[0]
    score = 0.0
    for ground_truth in answers:
        score = max(score, DATASET2METRIC[task](prediction, ground_truth, all_classes=all_classes))
    return score


def task_score(sample_scores: Iterable[float]) -> float:
    """A task's published score, eval.py's `scorer`: the sample scores added one by one in file order,
    times 100 over their count, rounded to 2 decimals. Not the rounded mean, which can round the other
    way on a tie (five zeros, 0.4, 0.4, 0.75 in that order: 19.38 here, 19.37 as 100 x the mean), nor `sum()`,
    which compensates its rounding errors from Python 3.12 on."""
    total, count = 0.0, 0
    for score in sample_scores:
        total += float(score)  # a Python float: numpy's round() rounds differently
        count += 1
    return round(100 * total / count, 2)


LENGTH_GROUPS = ("0-4k", "4-8k", "8k+")


def length_group_scores(sample_scores: Iterable[float], lengths: Iterable[int]) -> dict[str, float]:
    """A LongBench-E task's scores by length, eval.py's `scorer_e`: the samples grouped by their data
    row's `length` (under 4,000, under 8,000, the rest), each group 100 x numpy's mean rounded by numpy
    to 2 decimals; NaN for a group without samples, as numpy's mean of nothing is there."""
    groups: dict[str, list[float]] = {name: [] for name in LENGTH_GROUPS}
    for score, length in zip(sample_scores, lengths, strict=True):
        groups["0-4k" if length < 4000 else "4-8k" if length < 8000 else "8k+"].append(float(score))
    return {name: float(round(100 * np.mean(scores), 2)) if scores else math.nan for name, scores in groups.items()}
