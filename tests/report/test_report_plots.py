"""Figures chosen by what the runs contain, with units, model, engine and GPU in title and caption."""

import pandas as pd
import pytest
from tests.report.report_records import job_config, write_record

from context_research.report.build import build_report


def test_plots_for_load_scheduler_memory_and_capability_records(tmp_path):
    for scheduler, speed in (("aggregated", 1.0), ("disaggregated", 0.8)):
        for concurrency in (1, 4, 16):
            summary = {"name": "e3", "engine": "vllm", "model": "qwen3_8b", "scheduler": scheduler,
                       "slo_attainment": 1.0 if concurrency < 16 else 0.5, "req_s": concurrency * 1.5,
                       "out_tok_s": concurrency * 300.0, "total_tok_s": concurrency * 1500.0,
                       "ttft_p50_ms": speed * 100.0 * concurrency, "ttft_p95_ms": speed * 120.0 * concurrency,
                       "tpot_p50_ms": 8.0, "tpot_p95_ms": 9.0, "itl_p95_ms": 9.5, "goodput_req_s": 1.0 * concurrency,
                       "weights_gb": 16.4, "kv_cache_gb": 90.0, "activations_gb": 2.0, "non_torch_gb": 1.0,
                       "gpu_mem_peak_gb": 110.0}
            write_record(tmp_path / "e3" / f"{scheduler}-{concurrency}",
                         ["experiment=e3", f"scheduler={scheduler}", f"concurrency={concurrency}", "model=qwen3_8b"],
                         summary,
                         job_config("e3", scheduler=scheduler, concurrency=concurrency, prompt_len=8192))
    for budget, score in ((4096, 0.4), (16384, 0.6), (32768, 0.7)):
        write_record(tmp_path / "e4" / f"{budget}", [f"prompt_len={budget}"], {"name": "e4", "score": score},
                     job_config("e4", prompt_len=budget))
    report = build_report([tmp_path / "e3", tmp_path / "e4"], tmp_path / "out", table="e5")
    names = {p.name for p in report.files}
    for stem in ("load_vs_concurrency", "scheduler_deltas", "memory_decomposition", "capability_vs_budget"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, stem
    assert "goodput.csv" in names and "scheduler_deltas.csv" in names and "memory.csv" in names
    markdown = (tmp_path / "out" / "report.md").read_text()
    captions = [line for line in markdown.splitlines() if line.startswith("*") and "plots/" not in line
                and "GPU" in line]
    assert len(captions) >= 4
    for caption in captions:
        assert "model qwen3_8b" in caption and "engine vllm" in caption and "GPU NVIDIA H200" in caption
        assert any(unit in caption for unit in ("(ms", "tokens/s", "(GB", "(tokens)", "(%)", "%"))
    assert "DistServe goodput" in markdown
    deltas = pd.read_csv(tmp_path / "out" / "scheduler_deltas.csv")
    ttft = deltas[deltas["metric"] == "ttft_p50_ms"]
    assert ttft["delta_pct"].tolist() == pytest.approx([-20.0] * 3)
    # points are named by the axis that varies; model=qwen3_8b, common to every point, is left out
    assert sorted(ttft["point"]) == ["concurrency=1", "concurrency=16", "concurrency=4"]
