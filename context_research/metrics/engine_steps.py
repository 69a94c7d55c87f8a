"""What the engines' own step samples say about a job (vLLM's stat logger: one sample per engine
step with running and waiting requests, KV cache usage and preemptions; see
serving/backends/vllm.py): peaks over the job and preemptions summed."""

from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from context_research.metrics.schema import EngineStepsSection


def kv_cache_usage_peak(steps: Iterable[dict[str, Any]]) -> float:
    """Peak KV cache usage (share of blocks held by requests) over step samples; NaN without samples."""
    values = [float(v) for s in steps if (v := s.get("kv_cache_usage")) is not None and not math.isnan(v)]
    return max(values) if values else math.nan


def summarize(steps: pd.DataFrame) -> EngineStepsSection | None:
    """Peak KV usage, running and waiting requests, and preemptions over a job's step samples."""
    if not len(steps):
        return None
    peak = {column: float(steps[column].max()) for column in ("num_running", "num_waiting") if column in steps}
    return EngineStepsSection(
        engine_steps=int(len(steps)),
        kv_cache_usage_peak=kv_cache_usage_peak(steps.to_dict("records")) if "kv_cache_usage" in steps else None,
        num_running_peak=peak.get("num_running"), num_waiting_peak=peak.get("num_waiting"),
        num_preemptions=int(steps["num_preempted"].sum()) if "num_preempted" in steps else None)
