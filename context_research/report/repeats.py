"""Repeat variance: jobs that differ only by seed or repeat are repeats of one sweep point.

Repeats are pooled across the folders given (a sweep run twice gives four repeats, not two pairs).
Per point, the coefficient of variation (sample std / mean) across repeats of the TTFT and TPOT
p50, flagged above CV_LIMIT (5%, the plan's bar for a stable measurement: metrics/measurement_warnings.py).
Points with one job are left out.
"""

from __future__ import annotations

import pandas as pd

from context_research.metrics.measurement_warnings import CV_LIMIT
from context_research.report.alignment import repeat_group
from context_research.report.loader import unique_jobs

METRICS = ("ttft_p50_ms", "tpot_p50_ms")


def repeat_variance(jobs: pd.DataFrame, metrics: tuple[str, ...] = METRICS, limit: float = CV_LIMIT) -> pd.DataFrame:
    """One row per sweep point with at least two completed repeats: n, mean and cv of each metric, flag."""
    completed = unique_jobs(jobs[jobs["status"] == "completed"])
    metrics = tuple(m for m in metrics if m in completed)
    if completed.empty or not metrics:
        return pd.DataFrame()
    keyed = completed.assign(point=[repeat_group(o) for o in completed["override_map"]])
    rows = []
    for (name, point), group in keyed.groupby(["name", "point"], sort=False):
        if len(group) < 2:
            continue
        row = {"name": name, "point": " ".join(f"{k}={v}" for k, v in point), "n_repeats": len(group),
               "folders": " ".join(dict.fromkeys(group["label"]))}
        flagged = False
        for metric in metrics:
            values = pd.to_numeric(group[metric], errors="coerce")
            mean, cv = values.mean(), values.std(ddof=1) / values.mean()
            row[f"{metric}_mean"] = mean
            row[f"{metric}_cv"] = cv
            flagged |= bool(cv > limit)
        row["above_limit"] = flagged
        rows.append(row)
    return pd.DataFrame(rows)
