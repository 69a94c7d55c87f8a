"""Where a multirun's wall time went: engine starts and measurement (summed over its jobs' summaries)
against the wall time from the first job's start to the last job's end (manifests).

`wall_over_start_plus_measure` = wall_s / (engine_start_s + measure_s); close to 1 means the sweep spent its time
starting engines and measuring, and a sweep that reuses one engine shows engine_start_s near one start.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def sweep_timing(jobs: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per multirun folder (`sweep` column) of the loaded jobs."""
    entries = []
    for sweep, group in jobs.groupby("sweep", sort=False):
        engine_start, measure = (float(pd.to_numeric(group[c], errors="coerce").sum()) if c in group else 0.0
                                 for c in ("engine_start_s", "measure_s"))
        started, ended = group["started"].min(), group["ended"].max()
        wall = (ended - started).total_seconds() if not (pd.isna(started) or pd.isna(ended)) else math.nan
        work = engine_start + measure
        entries.append({
            "sweep": sweep, "n_jobs": int(len(group)),
            "n_completed": int((group["status"] == "completed").sum()),
            "engine_start_s": engine_start, "measure_s": measure, "wall_s": wall,
            "wall_over_start_plus_measure": wall / work if work > 0 else math.nan,
            "started": None if pd.isna(started) else started.isoformat(),
            "ended": None if pd.isna(ended) else ended.isoformat(),
        })
    return entries
