"""Roofline columns: measured / floor for TTFT and TPOT, where the summary carries the floors.

The floors themselves (DESIGN.md: decode step = bytes read / HBM bandwidth, prefill = FLOPs / peak
matmul rate) are computed by the benchmark and written to summary.json as `ttft_floor_ms` and
`tpot_floor_ms`; the report divides the measured p50 by them.
"""

from __future__ import annotations

import pandas as pd

ROOFLINE_METRICS = ("ttft", "tpot")


def ratio_column(metric: str) -> str:
    return f"{metric}_measured_over_floor"


def add_roofline_columns(jobs: pd.DataFrame) -> pd.DataFrame:
    """Adds `{metric}_measured_over_floor` = `{metric}_p50_ms / {metric}_floor_ms` for each floor present."""
    jobs = jobs.copy()
    for metric in ROOFLINE_METRICS:
        floor, measured, ratio = f"{metric}_floor_ms", f"{metric}_p50_ms", ratio_column(metric)
        if floor not in jobs or measured not in jobs:
            continue
        jobs[ratio] = pd.to_numeric(jobs[measured], errors="coerce") / pd.to_numeric(jobs[floor], errors="coerce")
    return jobs


def roofline_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Measured p50, floor and their ratio per job, for the jobs whose summary carries a floor."""
    columns = [c for m in ROOFLINE_METRICS for c in (f"{m}_p50_ms", f"{m}_floor_ms", ratio_column(m))
               if f"{m}_floor_ms" in jobs and c in jobs]
    if not columns:
        return pd.DataFrame()
    table = jobs.loc[jobs[[c for c in columns if c.endswith("_floor_ms")]].notna().any(axis=1),
                     ["label", "job", *columns]]
    return table.reset_index(drop=True)
