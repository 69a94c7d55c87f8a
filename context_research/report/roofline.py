"""The roofline table: measured p50, floor and their ratio for TTFT and TPOT, for the jobs whose
summary carries floors (profiling/roofline.py computes them; the ratio is the summary's
`{metric}_measured_over_floor`, metrics/schema.py), with the hardware whose peaks the floors use.

A floor is only worth its hardware's peaks: a job that ran on the CPU but whose floors came from a
GPU's datasheet (records written before the hardware group computed H200 floors for every job)
gets no floors and no ratios in the report (`without_foreign_floors`)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

ROOFLINE_METRICS = ("ttft", "tpot")
# every floor figure a summary may hold: today's names and the ratio names of records from before the schema
FLOOR_FIGURES = ("ttft_floor_ms", "tpot_floor_ms", "ttft_measured_over_floor", "tpot_measured_over_floor",
                 "ttft_over_floor", "tpot_over_floor")
CPU = "CPU"  # the loader's `gpu` of a job whose engines ran on the CPU


def ratio_column(metric: str) -> str:
    return f"{metric}_measured_over_floor"


def foreign_peaks(row: dict[str, Any]) -> bool:
    """The job ran on the CPU, yet its floors are a GPU's (its roofline hardware is not the CPU)."""
    hardware = row.get("roofline_hardware")
    named = isinstance(hardware, str) and hardware.lower() != "cpu"
    return row.get("gpu") == CPU and named and any(pd.notna(row.get(f)) for f in FLOOR_FIGURES if f in row)


def without_foreign_floors(row: dict[str, Any]) -> dict[str, Any]:
    """The job's row with floors and ratios unknown where they use another device's peaks."""
    if not foreign_peaks(row):
        return row
    cleared = {f: math.nan for f in FLOOR_FIGURES if f in row}
    reason = f"the floors used {row['roofline_hardware']} peaks on a CPU run: not shown"
    return {**row, **cleared, "roofline_reason": reason}


def roofline_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Measured p50, floor and their ratio per job, for the jobs whose summary carries a floor."""
    columns = [c for m in ROOFLINE_METRICS for c in (f"{m}_p50_ms", f"{m}_floor_ms", ratio_column(m))
               if f"{m}_floor_ms" in jobs and c in jobs]
    if not columns:
        return pd.DataFrame()
    hardware = [c for c in ("gpu", "roofline_hardware", "roofline_peaks") if c in jobs]
    table = jobs.loc[jobs[[c for c in columns if c.endswith("_floor_ms")]].notna().any(axis=1),
                     ["label", "job", *hardware, *columns]]
    return table.reset_index(drop=True)
