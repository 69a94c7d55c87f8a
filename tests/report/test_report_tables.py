"""Experiment tables: registry columns from the records, NaN where a metric is missing."""

import math

import pandas as pd
import pytest
from tests.report.report_records import E8_H200, SESSIONS_JOB, TRACE_JOB, job_config, write_record

from context_research.report.loader import load_jobs
from context_research.report.roofline import roofline_table
from context_research.report.tables import JOB_COLUMNS, TABLES, experiment_tables
from context_research.workloads.generator import TraceShape, mooncake_records, prefix_reuse


def test_e1_table_from_real_runs(run_folders):
    tables = experiment_tables(load_jobs([run_folders.a]))
    assert list(tables) == ["summary.csv"]
    name, table = tables["summary.csv"]
    assert name == "e1"
    assert list(table.columns) == [*TABLES["e1"].columns, *JOB_COLUMNS]
    assert table["prompt_len"].is_monotonic_increasing
    assert table["ttft_p50_ms"].notna().all() and table["tpot_cv"].notna().all()
    assert table["harness_overhead_p50_ms"].isna().all()  # the HF engine does not measure it: NaN, not invented
    # CPU runs: no GPU ceilings, so no roofline floors (the ratio: test_roofline_ratio_where_the_summary_has_floors)
    assert table["ttft_floor_ms"].isna().all() and table["ttft_measured_over_floor"].isna().all()


def test_e8_table_from_the_h200_records():
    tables = experiment_tables(load_jobs([E8_H200]))
    name, table = tables["summary.csv"]
    assert name == "e8" and list(table.columns) == [*TABLES["e8"].columns, *JOB_COLUMNS]
    trace, sessions = (row for _, row in table.iterrows())
    assert (trace["job"], sessions["job"]) == (TRACE_JOB, SESSIONS_JOB)  # the trace first, then the sessions
    assert (trace["arrival_process"], trace["workload_source"]) == ("trace", "mooncake")
    assert math.isnan(trace["concurrency"]) and trace["time_scale"] == 1.0 and math.isnan(trace["n_sessions"])
    assert (sessions["concurrency"], sessions["n_sessions"], sessions["n_ok"]) == (16, 64, 203)
    for row in (trace, sessions):  # the per-request count and the server's /metrics count the same tokens
        assert row["prefix_cache_hit_rate"] == pytest.approx(row["server_prefix_cache_hit_rate"], abs=1e-12)
        assert row["n_errors"] == 0 and row["server_preemptions"] == 0 and row["queue_wait_p99_ms"] < 2.0
    # vLLM served exactly the reuse the generator designed into the trace (`make_workload_files --seed 0`)
    assert trace["prefix_cache_hit_rate"] == pytest.approx(prefix_reuse(mooncake_records(TraceShape(), 0)), abs=1e-12)


def test_e3_columns_from_renamed_summary_fields(tmp_path):
    for scheduler, kv in (("aggregated", None), ("disaggregated", 4_831_838_208)):
        summary = {"name": "e3", "engine": "vllm", "scheduler": scheduler, "ttft_p50_ms": 100.0, "tpot_p50_ms": 8.0}
        if kv:
            summary.update(kv_bytes_per_req=kv, kv_transfer_p50_ms=12.5, stall_ratio=0.1, goodput_req_s=3.0)
        write_record(tmp_path / "e3" / scheduler, [f"scheduler={scheduler}", "prompt_len=32768", "concurrency=1"],
                     summary, job_config("e3", scheduler=scheduler, prompt_len=32768, concurrency=1))
    _, table = experiment_tables(load_jobs([tmp_path / "e3"]))["summary.csv"]
    table = table.set_index("scheduler")
    assert table.loc["disaggregated", "kv_gb_per_req"] == pytest.approx(4.831838208)
    assert table.loc["disaggregated", "kv_transfer_ms_p50"] == 12.5
    assert table.loc["disaggregated", "stall_ratio"] == 0.1
    assert math.isnan(table.loc["aggregated", "kv_gb_per_req"])
    assert math.isnan(table.loc["aggregated", "goodput_req_s"])
    assert table.loc["aggregated", "prompt_len"] == 32768 and table.loc["aggregated", "engine"] == "vllm"


def test_e5_memory_table_with_bytes_fallback(tmp_path):
    summary = {"name": "e5", "weights_bytes": 16.4e9, "kv_cache_gb": 100.0, "gpu_mem_peak_gb": 130.0}
    write_record(tmp_path / "e5" / "0", ["prompt_len=1024"], summary, job_config("e5", prompt_len=1024, concurrency=1))
    tables = experiment_tables(load_jobs([tmp_path / "e5"]))
    _, table = tables["memory.csv"]
    row = table.iloc[0]
    assert row["weights_gb"] == pytest.approx(16.4) and row["kv_cache_gb"] == 100.0 and row["nvml_used_gb"] == 130.0
    assert math.isnan(row["activations_gb"])


def test_e6_failed_length_does_not_fit(tmp_path):
    config = job_config("e6", prompt_len=65536)
    write_record(tmp_path / "e6" / "0", ["prompt_len=65536"],
                 {"name": "e6", "n_ok": 3, "n_errors": 0, "ttft_p50_ms": 5000.0, "gpu_mem_peak_gb": 120.0}, config)
    write_record(tmp_path / "e6" / "1", ["prompt_len=131072"], None, job_config("e6", prompt_len=131072),
                 status="failed", error="OutOfMemoryError: CUDA out of memory")
    _, table = experiment_tables(load_jobs([tmp_path / "e6"]))["summary.csv"]
    assert table["fits"].tolist() == [True, False]
    assert table["peak_mem_gb"].iloc[0] == 120.0 and math.isnan(table["peak_mem_gb"].iloc[1])
    assert "gpu_memory_utilization=0.9" in table["settings"].iloc[0]
    assert table["status"].tolist() == ["completed", "failed"]


def test_forced_table_and_two_experiments(tmp_path):
    write_record(tmp_path / "s" / "0", [], {"name": "e1", "ttft_p50_ms": 1.0}, job_config("e1", prompt_len=8))
    write_record(tmp_path / "s" / "1", [], {"name": "e2", "req_s": 2.0}, job_config("e2", concurrency=4))
    write_record(tmp_path / "s" / "2", [], {"name": "custom", "req_s": 3.0}, job_config("custom"))
    jobs = load_jobs([tmp_path / "s"])
    assert sorted(experiment_tables(jobs)) == ["summary_e1.csv", "summary_e2.csv"]
    forced = experiment_tables(jobs, force="e2")
    assert list(forced) == ["summary.csv"] and len(forced["summary.csv"][1]) == 3
    with pytest.raises(ValueError, match="unknown experiment table"):
        experiment_tables(jobs, force="e9")


def test_roofline_ratio_where_the_summary_has_floors(tmp_path):
    write_record(tmp_path / "s" / "0", [], {"name": "e1", "ttft_p50_ms": 30.0, "ttft_floor_ms": 20.0,
                                            "tpot_p50_ms": 8.0, "tpot_floor_ms": 4.0}, job_config("e1"))
    write_record(tmp_path / "s" / "1", [], {"name": "e1", "ttft_p50_ms": 30.0, "tpot_p50_ms": 8.0}, job_config("e1"))
    jobs = load_jobs([tmp_path / "s"])
    assert jobs["ttft_measured_over_floor"].tolist()[0] == 1.5 and jobs["tpot_measured_over_floor"].tolist()[0] == 2.0
    assert pd.isna(jobs["ttft_measured_over_floor"].iloc[1])
    assert len(roofline_table(jobs)) == 1


def test_e5_total_is_the_sum_of_the_components_for_every_record(tmp_path):
    # a record written before the allocator cache was a component: its own total_gb left it out
    components = {"weights_gb": 16.4, "kv_cache_gb": 38.7, "activations_gb": 28.0, "cuda_graph_gb": 0.0,
                  "torch_cache_gb": 11.4, "non_torch_gb": 1.4}
    summary = {"name": "e5", **components, "total_gb": 84.5, "gpu_mem_total_peak_gb": 95.9}
    write_record(tmp_path / "e5" / "0", ["prompt_len=16384"], summary, job_config("e5", prompt_len=16384, concurrency=16))
    _, table = experiment_tables(load_jobs([tmp_path / "e5"]))["memory.csv"]
    assert table.iloc[0]["total_gb"] == pytest.approx(sum(components.values()))
