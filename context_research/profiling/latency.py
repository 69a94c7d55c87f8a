"""Per-request latency metrics, exactly as DESIGN.md defines them, and their aggregates.

TTFT = first_token - dispatch; queue_wait = dispatch - arrival; TPOT = (last_token - first_token) /
(output_tokens - 1), request-weighted; ITL = each gap between consecutive streamed outputs, pooled
over requests; E2E = last_token - dispatch. Throughput is over the measurement window, first
dispatch -> last completion of the measured requests (`profiling.goodput`).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from context_research.profiling.goodput import window_throughput
from context_research.profiling.phases import COOLDOWN, MEASURE, WARMUP
from context_research.requests import GenerationResult


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
        "e2e_ms": (result.last_token_time - result.dispatch_time) * 1e3 if ok else math.nan,
        "queue_wait_ms": (result.dispatch_time - arrival) * 1e3,
        "itl_ms": (np.diff(times) * 1e3).tolist(),
        "token_times_s": (times - origin).tolist(),
        "output_token_ids": list(result.output_token_ids),
    }
    for key, value in result.metadata.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            row.setdefault(key, value)
    return row


def percentile_stats(values: Iterable[float], name: str, percentiles: Iterable[float],
                     unit: str = "ms") -> dict[str, float]:
    """mean, std, cv and the percentiles of `values` (NaNs dropped), as `{name}_{stat}_{unit}`."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    suffix = f"_{unit}" if unit else ""
    if data.size == 0:
        stats = {f"{name}_mean{suffix}": math.nan, f"{name}_std{suffix}": math.nan}
        stats.update({f"{name}_p{p:g}{suffix}": math.nan for p in percentiles})
        stats[f"{name}_cv"] = math.nan
        return stats
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else 0.0
    stats = {f"{name}_mean{suffix}": mean, f"{name}_std{suffix}": std}
    stats.update({f"{name}_p{p:g}{suffix}": float(np.percentile(data, p)) for p in percentiles})
    stats[f"{name}_cv"] = std / mean if mean else math.nan
    return stats


def summarize(rows: pd.DataFrame, percentiles: Iterable[float] = (50, 90, 95, 99)) -> dict[str, Any]:
    """Aggregates over the measured, successful requests (warm-up excluded, failures counted)."""
    percentiles = list(percentiles)
    measured = rows[rows["phase"] == MEASURE] if len(rows) else rows
    good = measured[measured["ok"]] if len(measured) else measured
    summary: dict[str, Any] = {
        "n_requests": int(len(measured)),
        "n_ok": int(len(good)),
        "n_errors": int(len(measured) - len(good)),
        "n_warmup": int((rows["phase"] == WARMUP).sum()) if len(rows) else 0,
        "n_cooldown": int((rows["phase"] == COOLDOWN).sum()) if len(rows) else 0,
    }
    ms_columns = [c for c in rows.columns if c.endswith("_ms") and c != "itl_ms"
                  and pd.api.types.is_numeric_dtype(rows[c])]
    for column in ms_columns:
        summary.update(percentile_stats(good[column] if len(good) else [], column[:-3], percentiles))
    itl = [gap for gaps in good["itl_ms"] for gap in gaps] if len(good) else []
    summary.update(percentile_stats(itl, "itl", percentiles))
    summary.update(window_throughput(rows) if len(good) else {})
    return summary


class LatencyCollector:
    """Keeps one row per request (`observe`) and summarises the measured ones (`snapshot`)."""

    name = "latency"

    def __init__(self, percentiles: Iterable[float] = (50, 90, 95, 99)) -> None:
        self.percentiles = list(percentiles)
        self.origin = 0.0
        self.rows: list[dict[str, Any]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def set_origin(self, origin: float) -> None:
        self.origin = origin

    def observe(self, result: GenerationResult, phase: str) -> None:
        self.rows.append(request_row(result, phase, self.origin))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def snapshot(self) -> dict[str, Any]:
        return summarize(self.frame(), self.percentiles) if self.rows else {"n_requests": 0}
