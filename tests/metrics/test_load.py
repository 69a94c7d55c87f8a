"""Throughput, goodput, concurrency and KV load on hand-built timelines with known answers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from context_research.metrics.latency import request_row
from context_research.metrics.load import step_peak_mean, token_clock
from context_research.requests import GenerationResult
from tests.metrics.figures import latency_figures, load_summary


def result(name: str, arrival: float, dispatch: float, tokens: list[float], prompt: int,
           error: str | None = None) -> GenerationResult:
    return GenerationResult(
        request_id=name, text="", prompt_tokens=prompt, completion_tokens=len(tokens),
        output_token_ids=list(range(len(tokens))), dispatch_time=dispatch,
        first_token_time=tokens[0] if tokens else math.nan, last_token_time=tokens[-1] if tokens else math.nan,
        token_times=tokens, arrival_time=arrival, error=error)


def frame(*rows: tuple[GenerationResult, str]) -> pd.DataFrame:
    return pd.DataFrame([request_row(r, phase, origin=0.0) for r, phase in rows])


def slo(ttft=None, tpot=None, e2e=None, include_queue_wait=True):
    return SimpleNamespace(ttft_ms=ttft, tpot_ms=tpot, e2e_ms=e2e, include_queue_wait=include_queue_wait)


# r1 waits for nothing; r2 waits 0.5 s in a queue; r3 arrives later and decodes slowly.
SIMPLE = [(result("r1", 0.0, 0.0, [1.0, 2.0, 3.0], prompt=10), "measure"),
          (result("r2", 0.0, 0.5, [1.5, 2.0], prompt=20), "measure"),
          (result("r3", 1.0, 1.0, [2.0, 4.0], prompt=30), "measure")]


def test_latency_metrics_and_itl_pooling() -> None:
    summary = latency_figures(frame(*SIMPLE))
    assert summary["ttft_mean_ms"] == pytest.approx(1000.0)
    assert summary["queue_wait_mean_ms"] == pytest.approx(500 / 3)
    assert summary["e2e_mean_ms"] == pytest.approx((3000 + 1500 + 3000) / 3)
    # TPOT is request-weighted: (1000 + 500 + 2000) / 3; ITL pools the four gaps: 1000, 1000, 500, 2000
    assert summary["tpot_mean_ms"] == pytest.approx(3500 / 3)
    assert summary["itl_mean_ms"] == pytest.approx(1125.0)
    assert summary["itl_p50_ms"] == pytest.approx(1000.0)


def test_throughput_over_first_dispatch_to_last_completion() -> None:
    summary = latency_figures(frame(*SIMPLE))
    assert summary["duration_s"] == pytest.approx(4.0)
    assert summary["req_s"] == pytest.approx(3 / 4)
    assert summary["out_tok_s"] == pytest.approx(7 / 4)
    assert summary["total_tok_s"] == pytest.approx((60 + 7) / 4)


def test_slo_attainment_and_goodput() -> None:
    rows = frame(*SIMPLE)
    # from arrival r2's TTFT is 1500 ms (> 1200); r3's TPOT is 2000 ms (> 1500): only r1 meets both
    strict = load_summary(rows, slo(ttft=1200, tpot=1500), None)
    assert strict["slo_met"] == 1
    assert strict["slo_attainment"] == pytest.approx(1 / 3)
    assert strict["goodput_req_s"] == pytest.approx(1 / 4)  # one good request in 4 s
    from_dispatch = load_summary(rows, slo(ttft=1200, tpot=1500, include_queue_wait=False), None)
    assert from_dispatch["slo_attainment"] == pytest.approx(2 / 3)
    assert from_dispatch["goodput_req_s"] == pytest.approx(2 / 4)
    e2e = load_summary(rows, slo(e2e=2000), None)  # from arrival: 3000, 2000, 3000
    assert e2e["slo_met"] == 1
    unset = load_summary(rows, slo(), None)
    assert unset["slo_attainment"] == 1.0 and unset["goodput_req_s"] == pytest.approx(unset["req_s"])


def test_a_failed_request_misses_every_slo() -> None:
    rows = frame(*SIMPLE, (result("r4", 0.0, 0.0, [], prompt=10, error="RuntimeError: boom"), "measure"))
    figures = load_summary(rows, slo(ttft=5000), None)
    assert figures["slo_attainment"] == pytest.approx(3 / 4)
    assert figures["goodput_req_s"] == pytest.approx(3 / 4)  # three good completions in 4 s
    assert latency_figures(rows)["n_errors"] == 1


def test_concurrency_and_kv_load() -> None:
    figures = load_summary(frame(*SIMPLE), slo(), kv_capacity_tokens=100)
    # in the system: r1 [0, 3], r2 [0, 2], r3 [1, 4] -> 2, 3, 2, 1 over four 1 s steps
    assert figures["peak_concurrency"] == 3
    assert figures["mean_concurrency"] == pytest.approx(2.0)
    # tokens in flight: 10 | 30 | 61 | 62 | 43 | 31 over [0, .5, 1, 1.5, 2, 3, 4]
    assert figures["kv_tokens_peak"] == 62
    assert figures["kv_tokens_mean"] == pytest.approx(155.5 / 4)
    assert figures["kv_load_peak"] == pytest.approx(0.62)
    assert figures["kv_load"] == pytest.approx(155.5 / 400)
    no_capacity = load_summary(frame(*SIMPLE), slo(), kv_capacity_tokens=None)
    assert math.isnan(no_capacity["kv_load"]) and no_capacity["kv_tokens_peak"] == 62


def test_warmup_and_cooldown_count_as_load_inside_the_window_only() -> None:
    rows = frame((result("w", 0.0, 0.0, [1.0, 2.0, 3.0], prompt=5), "warmup"),
                 (result("m1", 1.5, 1.5, [2.5, 3.5], prompt=5), "measure"),
                 (result("m2", 2.0, 2.0, [3.0, 4.0, 5.0], prompt=5), "measure"),
                 (result("c", 4.5, 4.5, [5.5, 6.0], prompt=5), "cooldown"))
    summary = latency_figures(rows)
    assert (summary["n_requests"], summary["n_warmup"], summary["n_cooldown"]) == (2, 1, 1)
    assert summary["ttft_mean_ms"] == pytest.approx(1000.0)  # m1 and m2 only
    # window (1.5, 5]: completions w, m1, m2; output tokens 2 + 2 + 3; prompts of m1 and m2
    assert summary["duration_s"] == pytest.approx(3.5)
    assert summary["completions"] == 3
    assert summary["req_s"] == pytest.approx(3 / 3.5)
    assert summary["out_tok_s"] == pytest.approx(7 / 3.5)
    assert summary["total_tok_s"] == pytest.approx(17 / 3.5)


def test_token_clock_spreads_multi_token_outputs() -> None:
    assert token_clock([1.0, 2.0], 2, 1.0, 2.0).tolist() == [1.0, 2.0]
    assert np.allclose(token_clock([1.0, 3.0], 4, 1.0, 3.0), [1.0, 5 / 3, 7 / 3, 3.0])
    # an offline batch knows only the first and last token times
    assert np.allclose(token_clock([], 3, 2.0, 4.0), [2.0, 3.0, 4.0])
    assert token_clock([], 1, 2.0, 2.0).tolist() == [2.0]
    assert token_clock([], 0, math.nan, math.nan).size == 0


def test_offline_results_without_token_times_still_count_their_tokens() -> None:
    offline = result("o", 0.0, 0.0, [1.0, 2.0, 3.0, 4.0], prompt=8)
    offline.token_times = []  # vLLM's LLM.generate: first and last token times only
    summary = latency_figures(frame((offline, "measure")))
    assert summary["output_tokens"] == 4 and summary["out_tok_s"] == pytest.approx(1.0)


def test_step_function_applies_simultaneous_changes_together() -> None:
    # one request ends at t=1 exactly when another starts: the level never reads 2
    peak, mean = step_peak_mean(np.array([0.0, 1.0, 1.0, 2.0]), np.array([1.0, -1.0, 1.0, -1.0]), 0.0, 2.0)
    assert (peak, mean) == (1.0, 1.0)
