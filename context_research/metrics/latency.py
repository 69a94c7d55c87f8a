"""Per-request latency metrics and their distributions, exactly as the project defines them.

Per request, from one monotonic clock (context_research/requests.py): TTFT = first_token - dispatch;
queue_wait = dispatch - arrival; TPOT = (last_token - first_token) / (output_tokens - 1),
request-weighted; E2E = last_token - dispatch; ITL = each gap between consecutive streamed outputs,
pooled over requests. Every other per-request time an engine reports (`*_ms` in a result's metadata,
e.g. vLLM's engine split) gets a distribution the same way. Only measured, successful requests enter
the figures; warm-up and cool-down requests are recorded with their phase.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from context_research.metrics.phases import COOLDOWN, MEASURE, WARMUP
from context_research.metrics.schema import Distribution, LatencySection
from context_research.requests import GenerationResult

PERCENTILES = (50, 90, 95, 99)


def request_row(result: GenerationResult, phase: str, origin: float) -> dict[str, Any]:
    """One requests.parquet row; times in seconds from the job's clock origin."""
    arrival = result.arrival_time if result.arrival_time is not None else result.dispatch_time
    ok = result.error is None
    times = np.asarray(result.token_times, dtype=np.float64)
    row: dict[str, Any] = {
        "request_id": result.request_id,
        "phase": phase,
        "ok": ok,
        "error": result.error,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "arrival_s": arrival - origin,
        "dispatch_s": result.dispatch_time - origin,
        "first_token_s": result.first_token_time - origin if ok else math.nan,
        "last_token_s": result.last_token_time - origin if ok else math.nan,
        "ttft_ms": result.ttft_ms if ok else math.nan,
        "tpot_ms": result.tpot_ms if ok else math.nan,
        "e2e_ms": result.e2e_ms if ok else math.nan,
        "queue_wait_ms": (result.dispatch_time - arrival) * 1e3,
        "itl_ms": (np.diff(times) * 1e3).tolist(),
        "token_times_s": (times - origin).tolist(),
        "output_token_ids": list(result.output_token_ids),
    }
    for key, value in result.metadata.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            row.setdefault(key, value)
    return row


def distribution(values: Iterable[float], percentiles: Iterable[float] = PERCENTILES, unit: str = "ms") -> Distribution:
    """mean, sample std, cv and the percentiles (numpy's) of `values`, NaNs and Nones dropped."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    names = [f"p{p:g}" for p in percentiles]
    if data.size == 0:
        return Distribution(mean=math.nan, std=math.nan, cv=math.nan, percentiles=dict.fromkeys(names, math.nan),
                            unit=unit)
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else 0.0
    return Distribution(mean=mean, std=std, cv=std / mean if mean else math.nan,
                        percentiles={name: float(np.percentile(data, p)) for name, p in zip(names, percentiles)},
                        unit=unit)


def summarize(rows: pd.DataFrame, percentiles: Iterable[float] = PERCENTILES) -> LatencySection:
    """Counts and distributions over the measured, successful requests (warm-up excluded, failures counted)."""
    percentiles = list(percentiles)
    if not len(rows):
        return LatencySection(n_requests=0)
    measured = rows[rows["phase"] == MEASURE]
    good = measured[measured["ok"]]
    section = LatencySection(n_requests=int(len(measured)), n_ok=int(len(good)),
                             n_errors=int(len(measured) - len(good)),
                             n_warmup=int((rows["phase"] == WARMUP).sum()),
                             n_cooldown=int((rows["phase"] == COOLDOWN).sum()))
    ms_columns = [c for c in rows.columns if c.endswith("_ms") and c != "itl_ms"
                  and pd.api.types.is_numeric_dtype(rows[c])]
    for column in ms_columns:
        section.distributions[column[:-3]] = distribution(good[column], percentiles)
    section.distributions["itl"] = distribution([gap for gaps in good["itl_ms"] for gap in gaps], percentiles)
    return section
