"""Throughput and goodput over the measurement window, and the load a run put on the engine.

The window runs from the first dispatch to the last completion of the measured requests (warm-up
and cool-down excluded). Every request's events inside it count, whatever its phase, so the
figures are the rates the engine sustained while the measured requests ran:

    req_s           completions in the window / its duration
    out_tok_s       output tokens that arrived in the window / duration
    total_tok_s     (prompt tokens of requests whose first token came in the window + output tokens) / duration
    slo_attainment  share of the measured requests meeting every SLO set (a failed request meets none)
    goodput_req_s   req_s x (measured requests meeting every SLO / measured requests completed): the
                    completions per second that meet the SLOs; with nothing excluded, vLLM's
                    good requests / duration
    concurrency     requests in the system (arrival -> last token): peak and time-weighted mean
    kv_load         tokens in flight (dispatched and unfinished: prompt + outputs so far) / the
                    engine's KV capacity in tokens: peak and time-weighted mean; NaN without a
                    capacity. Above 1 the load asks for more KV than the cache holds, so requests
                    wait or are preempted (preemptions come from the engine's step log)

Rows are requests.parquet rows (`profiling.latency.request_row`): times in seconds from one origin.
Where the output times are fewer than the tokens (several tokens per streamed output, or an
offline batch that knows only the first and last token times), the tokens are spread evenly along them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from context_research.metrics.phases import MEASURE
from context_research.metrics.schema import LoadSection, SLOSection, ThroughputSection


def token_clock(token_times: Any, completion_tokens: int, first: float, last: float) -> np.ndarray:
    """The arrival time of each of `completion_tokens` output tokens, from the outputs' times
    (exact when there is one output per token), or from the first and last token times alone."""
    if completion_tokens <= 0:
        return np.empty(0)
    times = np.asarray(token_times, dtype=np.float64)
    if times.size == 0:
        times = np.array([first, last]) if completion_tokens > 1 else np.array([last])
    if times.size == completion_tokens:
        return times
    return np.interp(np.linspace(0, times.size - 1, completion_tokens), np.arange(times.size), times)


def measurement_window(rows: pd.DataFrame) -> tuple[float, float]:
    """(first dispatch, last completion) of the measured, successful requests; NaNs if none."""
    measured = rows[(rows["phase"] == MEASURE) & rows["ok"]]
    if not len(measured):
        return math.nan, math.nan
    return float(measured["dispatch_s"].min()), float(measured["last_token_s"].max())


def window_throughput(rows: pd.DataFrame) -> ThroughputSection | None:
    """Requests and tokens per second over the measurement window (see the module docstring); None
    when no measured request completed."""
    t0, t1 = measurement_window(rows)
    if math.isnan(t0):
        return None
    ok = rows[rows["ok"]]
    inside = lambda times: (times > t0) & (times <= t1)  # noqa: E731
    completions = int(inside(ok["last_token_s"]).sum())
    prompt_tokens = int(ok.loc[inside(ok["first_token_s"]), "prompt_tokens"].sum())
    output_tokens = int(sum(inside(token_clock(*timeline)).sum() for timeline in zip(
        ok["token_times_s"], ok["completion_tokens"], ok["first_token_s"], ok["last_token_s"])))
    duration = t1 - t0

    def rate(count: int) -> float:
        return count / duration if duration > 0 else math.nan

    return ThroughputSection(duration_s=duration, completions=completions, prompt_tokens=prompt_tokens,
                             output_tokens=output_tokens, req_s=rate(completions), out_tok_s=rate(output_tokens),
                             total_tok_s=rate(prompt_tokens + output_tokens))


def meets_slo(rows: pd.DataFrame, slo: Any) -> pd.Series:
    """Whether each row met every SLO set in `slo` (ttft_ms, tpot_ms, e2e_ms; null = not applied).

    With `slo.include_queue_wait`, TTFT and E2E are judged from arrival. A request with a single
    output token has no TPOT and is not judged on it; a failed request meets no SLO.
    """
    wait = rows["queue_wait_ms"] if slo.include_queue_wait else 0.0
    met = rows["ok"].astype(bool).copy()
    if slo.ttft_ms is not None:
        met &= (rows["ttft_ms"] + wait) <= slo.ttft_ms
    if slo.tpot_ms is not None:
        met &= rows["tpot_ms"].isna() | (rows["tpot_ms"] <= slo.tpot_ms)
    if slo.e2e_ms is not None:
        met &= (rows["e2e_ms"] + wait) <= slo.e2e_ms
    return met


def slo_attainment(rows: pd.DataFrame, slo: Any) -> float:
    """Share of the measured requests meeting every SLO set (NaN without measured requests)."""
    measured = rows[rows["phase"] == MEASURE]
    return float(meets_slo(measured, slo).mean()) if len(measured) else math.nan


def slo_figures(rows: pd.DataFrame, slo: Any, req_s: float) -> SLOSection:
    """SLO attainment over the measured requests and goodput (see the module docstring)."""
    measured = rows[rows["phase"] == MEASURE]
    met = meets_slo(measured, slo)
    completed = int(measured["ok"].sum())
    good_share = met.sum() / completed if completed else math.nan
    return SLOSection(slo_ttft_ms=slo.ttft_ms, slo_tpot_ms=slo.tpot_ms, slo_e2e_ms=slo.e2e_ms,
                      slo_met=int(met.sum()), slo_attainment=slo_attainment(rows, slo),
                      goodput_req_s=float(req_s * good_share) if completed else 0.0)


def step_peak_mean(times: np.ndarray, deltas: np.ndarray, t0: float, t1: float) -> tuple[float, float]:
    """Peak and time-weighted mean over [t0, t1] of the step function that starts at 0 and changes
    by `deltas[i]` at `times[i]` (changes at one instant are applied together)."""
    if times.size == 0:
        return 0.0, 0.0
    order = np.argsort(times, kind="stable")
    instants, first = np.unique(times[order], return_index=True)
    levels = np.cumsum(np.add.reduceat(deltas[order], first))
    before = instants <= t0
    start_level = levels[before][-1] if before.any() else 0.0
    inside = (instants > t0) & (instants < t1)
    segment_levels = np.concatenate([[start_level], levels[inside]])
    peak = float(segment_levels.max())
    if t1 <= t0:
        return peak, float(start_level)
    bounds = np.concatenate([[t0], instants[inside], [t1]])
    return peak, float((segment_levels * np.diff(bounds)).sum() / (t1 - t0))


def concurrency(rows: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    """Requests in the system (arrival -> last token) over the window: peak and mean."""
    ok = rows[rows["ok"]]
    times = np.concatenate([ok["arrival_s"].to_numpy(float), ok["last_token_s"].to_numpy(float)])
    deltas = np.concatenate([np.ones(len(ok)), -np.ones(len(ok))])
    peak, mean = step_peak_mean(times, deltas, t0, t1)
    return {"peak_concurrency": peak, "mean_concurrency": mean}


def kv_load(rows: pd.DataFrame, t0: float, t1: float, capacity_tokens: float | None) -> dict[str, float]:
    """Tokens in flight over the window (peak, mean) and the same as a share of the KV capacity."""
    ok = rows[rows["ok"]]
    times, deltas = [], []
    for row in ok.itertuples(index=False):
        held = row.prompt_tokens + row.completion_tokens
        clock = token_clock(row.token_times_s, row.completion_tokens, row.first_token_s, row.last_token_s)
        times += [np.array([row.dispatch_s, row.last_token_s]), clock]
        deltas += [np.array([row.prompt_tokens, -held], dtype=float), np.ones(clock.size)]
    peak, mean = (step_peak_mean(np.concatenate(times), np.concatenate(deltas), t0, t1) if times
                  else (0.0, 0.0))
    capacity = float(capacity_tokens) if capacity_tokens else math.nan
    return {"kv_tokens_peak": peak, "kv_tokens_mean": mean, "kv_capacity_tokens": capacity,
            "kv_load_peak": peak / capacity, "kv_load": mean / capacity}


def load_figures(rows: pd.DataFrame, slo: Any, kv_capacity_tokens: float | None,
                 load: LoadSection) -> tuple[LoadSection, SLOSection]:
    """The run's load figures (added to `load`, which holds what was applied) and its SLO figures."""
    throughput = window_throughput(rows)
    if throughput is None:  # no measured request completed
        return load, slo_figures(rows, slo, req_s=0.0)
    t0, t1 = measurement_window(rows)
    figures = {**concurrency(rows, t0, t1), **kv_load(rows, t0, t1, kv_capacity_tokens)}
    return dataclasses.replace(load, **figures), slo_figures(rows, slo, throughput.req_s)
