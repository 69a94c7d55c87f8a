"""A/B comparison of two folders: jobs aligned by override keys, per metric the difference B - A
of a statistic over requests (the median by default, as the reports lead with p50; or the mean)
with its 95% bootstrap confidence interval (scipy.stats.bootstrap, BCa), significant when the
interval excludes zero.

Only completed jobs are compared; ITL is pooled over all gaps of the measured requests (its
definition), every other metric is one value per measured, successful request.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from context_research.report.alignment import align, is_repeat_key
from context_research.report.loader import load_requests

CONFIDENCE = 0.95
N_RESAMPLES = 2000
BATCH = 250  # resamples per batch: bounds memory for pooled ITL samples of many thousand gaps
SEED = 0  # the same records give the same intervals


def request_metrics(requests: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per metric (`ttft_ms`, ...) the values of the measured, successful requests; `itl_ms` pooled."""
    good = requests[requests["ok"].astype(bool)] if "ok" in requests else requests
    metrics = {}
    for column in good.columns:
        if column.endswith("_ms") and column != "itl_ms" and pd.api.types.is_numeric_dtype(good[column]):
            values = good[column].to_numpy(dtype=float)
            metrics[column] = values[~np.isnan(values)]
    if "itl_ms" in good:
        metrics["itl_ms"] = np.asarray([gap for gaps in good["itl_ms"] for gap in gaps], dtype=float)
    return metrics


STATISTICS = {"median": np.median, "mean": np.mean}


def difference_of(statistic: str):
    """statistic(b) - statistic(a), vectorised over scipy's resample axis."""
    function = STATISTICS[statistic]

    def difference(b: np.ndarray, a: np.ndarray, axis: int = -1) -> np.ndarray:
        return function(b, axis=axis) - function(a, axis=axis)

    return difference


def confidence_interval(a: np.ndarray, b: np.ndarray, statistic: str, method: str) -> tuple[float, float]:
    result = stats.bootstrap((b, a), difference_of(statistic), vectorized=True, paired=False,
                             confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES, batch=BATCH, method=method,
                             rng=np.random.default_rng(SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_difference(a: np.ndarray, b: np.ndarray, statistic: str = "median") -> dict[str, Any]:
    """statistic(b) - statistic(a) with its 95% bootstrap interval and whether the interval excludes zero."""
    function = STATISTICS[statistic]
    value_a = float(function(a)) if len(a) else math.nan
    value_b = float(function(b)) if len(b) else math.nan
    diff = value_b - value_a
    if len(a) < 2 or len(b) < 2:
        low = high = math.nan
    elif np.ptp(a) == 0 and np.ptp(b) == 0:  # no spread: every resample gives the same difference
        low = high = diff
    else:
        low, high = confidence_interval(a, b, statistic, "BCa")
        if math.isnan(low) or math.isnan(high):  # BCa degenerate (resamples too alike): percentile interval
            low, high = confidence_interval(a, b, statistic, "percentile")
    return {"statistic": statistic, "n_a": len(a), "n_b": len(b), "value_a": value_a, "value_b": value_b,
            "diff": diff, "ci_low": low, "ci_high": high, "rel_diff": diff / value_a if value_a else math.nan,
            "significant": bool(not math.isnan(low) and (low > 0 or high < 0))}


def field(job: pd.Series | None, column: str) -> Any:
    return None if job is None else job[column]


def point_name(job_a: pd.Series, job_b: pd.Series, treatment: list[str]) -> str:
    """Short name of an aligned pair: its shared overrides, then the treatment values A -> B."""
    shared = [f"{k}={v}" for k, v in sorted(job_a["override_map"].items()) if k not in treatment and k != "experiment"]
    changed = [f"{k}={job_a['override_map'].get(k, '(default)')}->{job_b['override_map'].get(k, '(default)')}"
               for k in treatment]
    return " ".join(shared + changed) or "(no overrides)"


def compare_folders(jobs: pd.DataFrame, label_a: str, label_b: str,
                    statistic: str = "median") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The A/B of two loaded folders.

    Returns (pairs, differences): `pairs` has one row per aligned or unmatched job with the treatment
    keys; `differences` one row per aligned pair and metric.
    """
    side_a = jobs[(jobs["label"] == label_a) & (jobs["status"] == "completed")]
    side_b = jobs[(jobs["label"] == label_b) & (jobs["status"] == "completed")]
    pairs, treatment = align(side_a, side_b)
    pair_rows, differences = [], []
    for _, pair in pairs.iterrows():
        job_a = None if pd.isna(pair["a"]) else side_a.loc[int(pair["a"])]
        job_b = None if pd.isna(pair["b"]) else side_b.loc[int(pair["b"])]
        matched = job_a is not None and job_b is not None
        name = point_name(job_a, job_b, treatment) if matched else None
        pair_rows.append({"pair": name, "a": label_a, "a_job": field(job_a, "job"),
                          "a_overrides": field(job_a, "overrides"), "b": label_b, "b_job": field(job_b, "job"),
                          "b_overrides": field(job_b, "overrides"), "treatment": " ".join(treatment),
                          "matched": matched})
        if not matched:
            continue
        metrics_a = request_metrics(load_requests(side_a.loc[[int(pair["a"])]]))
        metrics_b = request_metrics(load_requests(side_b.loc[[int(pair["b"])]]))
        for metric in sorted(set(metrics_a) & set(metrics_b)):
            differences.append({"pair": name, "a_job": job_a["job"], "b_job": job_b["job"], "metric": metric,
                                **bootstrap_difference(metrics_a[metric], metrics_b[metric], statistic)})
    return pd.DataFrame(pair_rows), pd.DataFrame(differences)


DELTA_METRICS = ("ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "tpot_p95_ms", "e2e_p50_ms", "out_tok_s",
                 "goodput_req_s")


def scheduler_deltas(jobs: pd.DataFrame, baseline: str = "aggregated", other: str = "disaggregated") -> pd.DataFrame:
    """Per folder and matched sweep point: each metric under both schedulers and the relative change.

    Jobs are matched by their overrides like an A/B (the scheduler is the treatment).
    """
    rows = []
    completed = jobs[jobs["status"] == "completed"]
    for label, folder in completed.groupby("label", sort=False):
        side_a, side_b = folder[folder["scheduler"] == baseline], folder[folder["scheduler"] == other]
        if side_a.empty or side_b.empty:
            continue
        pairs, treatment = align(side_a, side_b)
        matched = [(side_a.loc[pair["a"]], side_b.loc[pair["b"]]) for _, pair in pairs.dropna().iterrows()]
        points = [{k: v for k, v in job_a["override_map"].items()
                   if k not in treatment and k != "experiment" and not is_repeat_key(k)} for job_a, _ in matched]
        varying = sorted({k for point in points for k in point if len({str(p.get(k)) for p in points}) > 1})
        for (job_a, job_b), point_map in zip(matched, points):
            # the point is named by the axes that differ between points; settings common to all are not repeated
            point = " ".join(f"{k}={point_map[k]}" for k in varying if k in point_map)
            for metric in DELTA_METRICS:
                if metric not in folder or pd.isna(job_a[metric]) or pd.isna(job_b[metric]):
                    continue
                value_a, value_b = float(job_a[metric]), float(job_b[metric])
                rows.append({"label": label, "point": point or "(all)", "metric": metric, baseline: value_a,
                             other: value_b, "delta": value_b - value_a,
                             "delta_pct": 100 * (value_b - value_a) / value_a if value_a else math.nan})
    return pd.DataFrame(rows)
