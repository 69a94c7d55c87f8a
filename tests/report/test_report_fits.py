"""E7's report: fits.csv (one row per job, the fit check's prediction beside vLLM's figures), the
heatmap of what fits, and the longest native context per budget and precision, from hand-written
records in the run record's format (schema sections, the resolved config, the manifest)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

from context_research.metrics.schema import (BudgetSection, Distribution, EngineStepsSection, LatencySection,
                                             LoadSection, MemorySection, RunSection, Summary)
from context_research.report.build import build_report
from context_research.report.loader import load_jobs
from context_research.report.plots import fits_heatmap
from context_research.report.tables import TABLES, experiment_tables, longest_context
from tests.conftest import compose_config
from tests.report.report_records import write_record

QWEN3_8B = OmegaConf.to_container(compose_config(["model=qwen3_8b"]).model.architecture)
PRECISION = {"bf16": (None, "auto"), "fp8_kv": (None, "fp8"), "fp8": ("fp8", "fp8")}
H200_CUDA_TOTAL_GB = 150.109945856
ISSUE_COLUMNS = ["budget_gb", "precision", "prompt_len", "concurrency", "fits", "preemptions", "ttft_p50_ms",
                 "tpot_p50_ms", "kv_capacity_tokens", "kv_capacity_predicted_tokens"]
# what each engine reported: KV capacity (tokens), its max_model_len (vLLM's auto-fit) and weights (GB)
ENGINES = {(24, "bf16"): (25_056, 25_056, 16.394), (24, "fp8_kv"): (50_112, 40_960, 16.394),
           (24, "fp8"): (144_000, 40_960, 9.449), (80, "fp8_kv"): (733_700, 40_960, 16.394)}


def e7_config(budget: float, precision: str, prompt_len: int, concurrency: int) -> dict:
    """A job's resolved config as .hydra/config.yaml holds it (the parts the report reads)."""
    quantization, kv = PRECISION[precision]
    return {"name": "e7", "seed": 0, "prompt_len": prompt_len, "concurrency": concurrency, "output_len": 16,
            "model": {"name": "qwen3_8b", "dtype": "bfloat16", "quantization": quantization, "max_model_len": 40960,
                      "architecture": QWEN3_8B, "hf_overrides": {}},
            "serving": {"engine": "vllm", "dtype": "auto", "kv_cache_dtype": kv, "gpu_memory_utilization": 0.9,
                        "max_model_len": 32896, "extra_engine_args": {"max_model_len": -1}},
            "hardware": {"name": "auto", "kind": "auto", "memory_budget_gb": budget, "fit_check": False},
            "scheduler": {"name": "aggregated"}, "benchmark": {"name": "throughput"}}


def e7_summary(budget: float, precision: str, prompt_len: int, concurrency: int, refused: int = 0,
               preemptions: int = 0) -> dict:
    """summary.json of a job its engine ran: `refused` requests rejected as longer than the engine's context."""
    capacity, max_model_len, weights = ENGINES[budget, precision]
    served = concurrency - refused
    latency = LatencySection(n_requests=concurrency, n_ok=served, n_errors=refused, n_warmup=0, distributions={
        "ttft": Distribution(mean=900.0, percentiles={"p50": 800.0 + prompt_len / 40}),
        "tpot": Distribution(mean=7.0, percentiles={"p50": 6.5})} if served else {})
    kv_bytes = 147_456 if PRECISION[precision][1] == "auto" else 73_728
    return Summary().add(
        RunSection(name="e7", benchmark="throughput", scheduler="aggregated", engine="vllm", model="qwen3_8b",
                   passed=refused == 0),
        latency, LoadSection(concurrency=concurrency, prompt_len=prompt_len, output_len=16, kv_capacity_tokens=capacity),
        MemorySection(memory_available=True, weights_gb=weights, kv_cache_gb=capacity * kv_bytes / 1e9,
                      kv_bytes_per_token_measured=kv_bytes),
        BudgetSection(memory_budget_gb=budget, emulated=True, compute_hardware="NVIDIA H200",
                      memory_hardware=f"{budget:g} GB budget", gpu_memory_gb=H200_CUDA_TOTAL_GB,
                      gpu_memory_utilization=0.9 * budget / H200_CUDA_TOTAL_GB, engine_max_model_len=max_model_len),
        EngineStepsSection(engine_steps=40, num_preemptions=preemptions)).to_json()


@pytest.fixture
def e7_sweep(tmp_path):
    """Two budgets' engines over 24K and 32K prompts at concurrency 1 and 4: 24 GB bf16 holds one 24K
    sequence, not a 32K one (refused) and preempts 4 x 24K; 80 GB bf16 did not start (a failed job)."""
    outcomes = {(24, "bf16", 32768, 1): {"refused": 1}, (24, "bf16", 32768, 4): {"refused": 4},
                (24, "bf16", 24576, 4): {"preemptions": 3}, (24, "fp8_kv", 24576, 4): {"preemptions": 2},
                (24, "fp8_kv", 32768, 4): {"preemptions": 5}}
    folder, number = tmp_path / "e7", 0
    for budget, precision in [*ENGINES, (80, "bf16")]:
        for prompt_len in (24576, 32768):
            for concurrency in (1, 4):
                overrides = [f"hardware.memory_budget_gb={budget}", f"precision={precision}", f"prompt_len={prompt_len}",
                             f"concurrency={concurrency}", "experiment=e7"]
                config = e7_config(budget, precision, prompt_len, concurrency)
                if (budget, precision) in ENGINES:
                    summary = e7_summary(budget, precision, prompt_len, concurrency,
                                         **outcomes.get((budget, precision, prompt_len, concurrency), {}))
                    write_record(folder / str(number), overrides, summary, config)
                else:
                    write_record(folder / str(number), overrides, None, config, status="failed",
                                 error="RuntimeError: Engine core initialization failed. See root cause above.")
                number += 1
    return folder


def test_fits_csv_has_the_issues_columns_and_the_predictions(e7_sweep):
    name, table = experiment_tables(load_jobs([e7_sweep]))["fits.csv"]
    assert name == "e7" and list(table.columns[:10]) == ISSUE_COLUMNS
    rows = table.set_index(["budget_gb", "precision", "prompt_len", "concurrency"])
    # 0.9 x 24e9 - 16,381,470,720 (weights) - 1,520,454,144 (non-KV) = 3,698,075,136 bytes of KV cache,
    # // (16 x 147,456 bytes per block) = 1,567 blocks = 25,072 tokens
    bf16 = rows.loc[(24, "bf16", 24576, 1)]
    assert bf16["kv_capacity_predicted_tokens"] == 25_072 and bf16["kv_capacity_tokens"] == 25_056
    assert bf16["kv_capacity_error_pct"] == pytest.approx(100 * (25_056 - 25_072) / 25_072)
    assert bf16["kv_bytes_per_token_predicted"] == bf16["kv_bytes_per_token_measured"] == 147_456
    # fp8 weights: 21.6e9 - 9,435,703,872 - 1,520,454,144 = 10,643,841,984 B, // (16 x 73,728) = 9,022 blocks
    fp8 = rows.loc[(24, "fp8", 32768, 4)]
    assert fp8["kv_capacity_predicted_tokens"] == 144_352 and fp8["kv_bytes_per_token_predicted"] == 73_728
    assert fp8["weights_predicted_gb"] == pytest.approx(9.435703872)
    assert fp8["weights_error_pct"] == pytest.approx(100 * (9.449 - 9.435703872) / 9.435703872)
    assert (fp8["compute_hardware"], fp8["memory_hardware"]) == ("NVIDIA H200", "24 GB budget")
    assert rows.loc[(80, "fp8_kv", 24576, 1), "kv_capacity_predicted_tokens"] == 733_744


def test_each_job_fits_preempts_or_does_not_fit(e7_sweep):
    _, table = experiment_tables(load_jobs([e7_sweep]))["fits.csv"]
    rows = table.set_index(["budget_gb", "precision", "prompt_len", "concurrency"])
    verdicts = rows.loc[(24, "bf16"), ["fits", "preemptions", "outcome"]]
    assert verdicts.to_dict("index") == {
        (24576, 1): {"fits": True, "preemptions": 0, "outcome": "fits"},
        (24576, 4): {"fits": True, "preemptions": 3, "outcome": "preempts"},
        (32768, 1): {"fits": False, "preemptions": 0, "outcome": "does not fit"},  # refused: longer than 25,056
        (32768, 4): {"fits": False, "preemptions": 0, "outcome": "does not fit"}}
    assert math.isnan(rows.loc[(24, "bf16", 32768, 1), "ttft_p50_ms"])
    failed = rows.loc[(80, "bf16", 32768, 1)]  # the engine did not start: the prediction from the config alone
    assert failed["outcome"] == "does not fit" and failed["status"] == "failed"
    assert failed["kv_capacity_predicted_tokens"] == 366_864 and math.isnan(failed["kv_capacity_tokens"])
    assert TABLES["e7_quick"] is TABLES["e7"]


def test_the_longest_native_context_per_budget_and_precision(e7_sweep):
    _, table = experiment_tables(load_jobs([e7_sweep]))["fits.csv"]
    longest = longest_context(table).set_index(["budget_gb", "precision"])
    assert longest.loc[(24, "bf16"), "longest_prompt_len"] == 24576  # "24K if 32K is not feasible"
    assert longest.loc[(24, "bf16"), "engine_max_model_len"] == 25_056
    assert longest.loc[(24, "fp8_kv"), "longest_prompt_len"] == 32768
    assert math.isnan(longest.loc[(80, "bf16"), "longest_prompt_len"])
    assert longest.loc[(80, "bf16"), "longest_tried"] == 32768
    assert longest["kv_capacity_within_5pct"].dropna().astype(bool).all()
    assert math.isnan(longest.loc[(80, "bf16"), "kv_capacity_within_5pct"])  # nothing measured
    assert longest.loc[(24, "fp8"), "weights_within_2pct"]


def test_the_heatmap_colours_each_point_by_its_verdict(e7_sweep):
    jobs = load_jobs([e7_sweep])
    _, table = experiment_tables(jobs)["fits.csv"]
    plot = fits_heatmap(table, jobs)
    panels = plot.figure.axes[:2]  # one per budget, then the colour bar
    assert [ax.get_title() for ax in panels] == ["24 GB", "80 GB"]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["bf16", "fp8_kv", "fp8"]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["24K×1", "24K×4", "32K×1", "32K×4"]
    codes = panels[0].collections[0].get_array().reshape(3, 4)  # 0 does not fit, 1 preempts, 2 fits
    assert codes.tolist() == [[2, 1, 0, 0], [2, 1, 2, 1], [2, 2, 2, 2]]
    texts = [t.get_text() for t in panels[0].texts]
    assert texts[:4] == ["1.4s", "3p", "–", "–"]  # TTFT p50 where it fits, preemptions, does not fit
    assert [t.get_text() for t in plot.figure.axes[-1].get_yticklabels()] == ["does not fit", "preempts", "fits"]
    assert "NVIDIA H200" in plot.caption and "not a smaller card's" in plot.caption


def test_the_report_writes_the_e7_views_and_the_acceptance_checks(e7_sweep, tmp_path):
    report = build_report([e7_sweep], tmp_path / "report")
    written = {path.relative_to(tmp_path / "report").as_posix() for path in report.files}
    assert {"fits.csv", "longest_context.csv", "plots/fits_heatmap.svg", "plots/fits_heatmap.png"} <= written
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## What fits (E7)" in text
    assert ("vLLM's KV capacity within 5% of the fit check's prediction: 4 of 4 (largest |error| 0.24%) engines; "
            "FP8 weights within 2% of the predicted bytes: 1 of 1 (largest |error| 0.14%) FP8-weight engines.") in text
    longest = pd.read_csv(tmp_path / "report" / "longest_context.csv")
    assert len(longest) == 5 and list(longest.columns[:4]) == ["budget_gb", "precision", "longest_prompt_len",
                                                                "longest_tried"]
