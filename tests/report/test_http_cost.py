"""The HTTP-cost table: in-process and server latency jobs paired by model and lengths, HTTP minus in
process, and whether the two sides really ran the same prompts and engine settings."""

from __future__ import annotations

import pandas as pd
import pytest

from context_research.report.http_cost import http_cost_table


def job(engine: str, prompt_len: int, ttft: float, tpot: float, workload: str = "w", **serving) -> dict:
    settings = {"_target_": engine, "engine": engine, "max_model_len": 40960, "gpu_memory_utilization": 0.9,
                **serving}
    if engine == "vllm_server":
        settings.update(api="completions", return_token_ids=True)
    return {"benchmark": "latency", "status": "completed", "engine": engine, "model": "qwen3_8b",
            "prompt_len": prompt_len, "output_len": 128, "ttft_p50_ms": ttft, "tpot_p50_ms": tpot,
            "workload_hash": f"{workload}{prompt_len}", "config": {"serving": settings}}


def test_http_minus_in_process_per_prompt_length():
    jobs = pd.DataFrame([job("vllm", 1024, 28.0, 5.2), job("vllm", 8192, 220.0, 5.5),
                         job("vllm_server", 1024, 29.0, 5.3), job("vllm_server", 1024, 29.4, 5.3),
                         job("vllm_server", 8192, 221.5, 5.6), job("hf", 1024, 900.0, 40.0)])
    table = http_cost_table(jobs)
    assert list(table["prompt_len"]) == [1024, 8192] and set(table["in_process"]) == {"vllm"}
    first = table.iloc[0]
    assert first["ttft_p50_http_ms"] == pytest.approx(29.2) and first["ttft_http_cost_ms"] == pytest.approx(1.2)
    assert first["tpot_http_cost_ms"] == pytest.approx(0.1) and first["jobs_http"] == 2
    assert table["same_prompts"].all() and table["same_engine_args"].all()


def test_other_prompts_or_settings_are_flagged():
    jobs = pd.DataFrame([job("vllm", 1024, 28.0, 5.2, gpu_memory_utilization=0.8),
                         job("vllm_server", 1024, 29.0, 5.3, workload="other")])
    [row] = http_cost_table(jobs).to_dict("records")
    assert row["same_prompts"] is False and row["same_engine_args"] is False
    assert row["differing_args"] == "gpu_memory_utilization"


def test_no_pair_no_rows():
    assert http_cost_table(pd.DataFrame([job("vllm", 1024, 28.0, 5.2)])).empty
    assert http_cost_table(pd.DataFrame()).empty
