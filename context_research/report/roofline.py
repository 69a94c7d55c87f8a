"""The roofline table: measured p50, floor and their ratio for TTFT and TPOT, for the jobs whose
summary carries floors (profiling/roofline.py computes them; the ratio is the summary's
`{metric}_measured_over_floor`, metrics/schema.py)."""

from __future__ import annotations

import pandas as pd

ROOFLINE_METRICS = ("ttft", "tpot")


def ratio_column(metric: str) -> str:
    return f"{metric}_measured_over_floor"


def roofline_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Measured p50, floor and their ratio per job, for the jobs whose summary carries a floor."""
    columns = [c for m in ROOFLINE_METRICS for c in (f"{m}_p50_ms", f"{m}_floor_ms", ratio_column(m))
               if f"{m}_floor_ms" in jobs and c in jobs]
    if not columns:
        return pd.DataFrame()
    table = jobs.loc[jobs[[c for c in columns if c.endswith("_floor_ms")]].notna().any(axis=1),
                     ["label", "job", *columns]]
    return table.reset_index(drop=True)
