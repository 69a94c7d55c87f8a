"""Quality under a compute budget: the scores of a capability job against the prompt tokens and the
time they cost, in a form the report can plot.

A job runs at one budget (its `context_len`); its table bins the samples by prompt length, so one job
already shows score against tokens and time, and a sweep over `context_len` gives the curve.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pandas as pd

from context_research.benchmarks.base import BenchmarkOutcome
from context_research.metrics.schema import TaskSection

BIN_EDGES = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)

Aggregate = Callable[[pd.DataFrame], float]  # a benchmark's official score of some of its scored samples


def _row(level: str, task: str, bin_upper: int | None, group: pd.DataFrame, aggregate: Aggregate) -> dict[str, Any]:
    return {
        "level": level,  # bin (task x prompt-length bin), task, or all
        "task": task,
        "prompt_tokens_bin_upper": bin_upper,  # the bin holds prompt lengths up to this (None: above the last edge)
        "n": int(len(group)),
        "score": aggregate(group),
        "prompt_tokens_mean": float(group["prompt_tokens"].mean()),
        "prompt_tokens_max": int(group["prompt_tokens"].max()),
        "ttft_ms_mean": float(group["ttft_ms"].mean()),
        "e2e_ms_mean": float(group["e2e_ms"].mean()),
        "compute_s": float(group["e2e_ms"].sum() / 1e3),
    }


def quality_under_budget(samples: pd.DataFrame, aggregate: Aggregate) -> list[dict[str, Any]]:
    """Score, prompt tokens and time per task and prompt-length bin, per task, and over all samples
    (the `all` row pools samples; the job's headline `score` averages task scores instead)."""
    edges = [0, *BIN_EDGES, math.inf]
    bins = pd.cut(samples["prompt_tokens"], edges, right=True)
    rows = []
    for (task, interval), group in samples.groupby(["task", bins], observed=True, sort=True):
        upper = None if math.isinf(interval.right) else int(interval.right)
        rows.append(_row("bin", task, upper, group, aggregate))
    for task, group in samples.groupby("task", sort=True):
        rows.append(_row("task", task, None, group, aggregate))
    rows.append(_row("all", "all", None, samples, aggregate))
    return rows


def capability_outcome(samples: pd.DataFrame, aggregate: Aggregate, sample_ids: dict[str, list[str]],
                       context_len: int | None, max_model_len: int, expected: int,
                       **figures: Any) -> BenchmarkOutcome:
    """What a capability job adds to summary.json: per-task scores, their mean, the sample ids, the
    quality-under-budget table (and the task's own `figures`), and checks that every sample was
    scored within the model's length."""
    task_scores = {task: aggregate(group) for task, group in samples.groupby("task", sort=True)}
    sequence = samples["prompt_tokens"] + samples["completion_tokens"]
    return BenchmarkOutcome(
        checks={"all_samples_scored": bool(len(samples) == expected and samples["score"].notna().all()),
                "within_max_model_len": bool((sequence <= max_model_len).all())},
        sections=[TaskSection(figures={
            "task_scores": task_scores,
            "score": sum(task_scores.values()) / len(task_scores) if task_scores else math.nan,
            "n_samples": int(len(samples)),
            "sample_ids": sample_ids,
            "context_len": context_len,
            "quality_vs_budget": quality_under_budget(samples, aggregate) if len(samples) else [],
            **figures})])
