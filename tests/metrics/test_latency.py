"""Latency metrics on hand-built timelines with known answers (metrics/latency.py definitions)."""

from __future__ import annotations

import pandas as pd
import pytest

from context_research.metrics.latency import request_row
from context_research.requests import GenerationResult
from tests.metrics.figures import latency_figures


def result(rid, arrival, dispatch, token_times, prompt=10):
    return GenerationResult(request_id=rid, text="", prompt_tokens=prompt, completion_tokens=len(token_times),
                            output_token_ids=list(range(len(token_times))), dispatch_time=dispatch,
                            first_token_time=token_times[0], last_token_time=token_times[-1],
                            token_times=token_times, arrival_time=arrival)


def test_request_row_definitions():
    row = request_row(result("a", 100.0, 100.5, [101.0, 101.1, 101.3, 101.6]), "measure", origin=100.0)
    assert row["ttft_ms"] == pytest.approx(500.0)  # first_token - dispatch
    assert row["queue_wait_ms"] == pytest.approx(500.0)  # dispatch - arrival
    assert row["tpot_ms"] == pytest.approx(200.0)  # (101.6 - 101.0) / 3
    assert row["e2e_ms"] == pytest.approx(1100.0)  # last_token - dispatch
    assert row["itl_ms"] == pytest.approx([100.0, 200.0, 300.0])
    assert row["dispatch_s"] == pytest.approx(0.5) and row["token_times_s"][0] == pytest.approx(1.0)


def test_summary_excludes_warmup_pools_itl_and_uses_the_dispatch_to_completion_window():
    rows = pd.DataFrame([
        request_row(result("w", 0.0, 0.0, [5.0, 9.0]), "warmup", 0.0),
        request_row(result("a", 10.0, 10.0, [10.1, 10.2, 10.4]), "measure", 0.0),
        request_row(result("b", 10.0, 10.5, [10.8, 11.0], prompt=20), "measure", 0.0),
    ])
    summary = latency_figures(rows, percentiles=[50])
    assert summary["n_requests"] == 2 and summary["n_warmup"] == 1
    assert summary["ttft_mean_ms"] == pytest.approx(200.0)  # (100 + 300) / 2
    assert summary["tpot_mean_ms"] == pytest.approx(175.0)  # request-weighted: (150 + 200) / 2
    assert summary["itl_mean_ms"] == pytest.approx((100 + 200 + 200) / 3)  # pooled over requests
    assert summary["queue_wait_p50_ms"] == pytest.approx(250.0)
    assert summary["duration_s"] == pytest.approx(1.0)  # 10.0 -> 11.0
    assert summary["req_s"] == pytest.approx(2.0)
    assert summary["out_tok_s"] == pytest.approx(5.0)
    assert summary["total_tok_s"] == pytest.approx(35.0)
