"""launch.py end to end in a subprocess: E0, a two-job multirun, a failing job beside a
completing one, and reproducibility of token ids across runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import launch, manifests, read_summary


@pytest.fixture(scope="module")
def e0_run(tmp_path_factory, model_cache):
    """`python launch.py` (E0) once for this module: the process and its job directory."""
    root = tmp_path_factory.mktemp("e0")
    process = launch([f"hydra.run.dir={root}", f"paths.cache_dir={model_cache}"], timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    return process, root


def test_e0_leaves_a_completed_run_record(e0_run):
    process, root = e0_run
    [manifest] = manifests(root)
    job = Path(manifest["_dir"])
    assert manifest["status"] == "completed" and manifest["error"] is None
    assert manifest["run_id"].startswith("run-") and len(manifest["run_id"].split("-")[-1]) == 8
    assert len(manifest["config_hash"]) == 64 and len(manifest["workload_hash"]) == 64
    assert manifest["versions"]["torch"] and manifest["host"]["cpu_count"] >= 1
    assert manifest["gpu"]["available"] in (True, False)
    assert (job / ".hydra" / "config.yaml").exists()
    summary = read_summary(job)
    assert summary["passed"] is True
    assert summary["checks"] == {"full_outputs": True, "reproducible": True}
    requests = pd.read_parquet(job / "requests.parquet")
    measured = requests[requests["phase"] == "measure"]
    assert len(measured) == 4 and (measured["prompt_tokens"] == 64).all()
    assert (measured["completion_tokens"] == 16).all()
    # the summary's figures are the measured rows', warm-up excluded
    assert summary["ttft_p50_ms"] == measured["ttft_ms"].median()
    assert summary["n_warmup"] == 1 and summary["n_requests"] == 4
    assert "ttft (ms)" in process.stdout  # the end-of-job table
    assert manifest["engines"]["aggregated"]["cpu_threads"] == 1  # one intra-op thread for the tiny model


def test_e0_records_and_prints_its_warnings(e0_run):
    process, root = e0_run
    [manifest] = manifests(root)
    warnings = read_summary(Path(manifest["_dir"]))["warnings"]
    # four measured requests support a median, not a p90 or p99
    assert warnings[0].startswith("p90, p95, p99 from 4 measured requests")
    assert all(f"warning: {warning}" in process.stdout for warning in warnings)
    assert all(w.startswith(("p90", "TTFT CV", "TPOT CV")) for w in warnings)  # nothing else is judged in E0


def test_e0_records_memory_exactly_where_measurable_and_null_elsewhere(e0_run):
    _, root = e0_run
    [manifest] = manifests(root)
    summary = read_summary(Path(manifest["_dir"]))
    # tiny_qwen3 on CPU in float32: 2 x 4 layers x 2 KV heads x 32 x 4 bytes per token
    assert summary["kv_bytes_per_token_measured"] == 2048
    assert summary["kv_cache_gb"] * 1e9 == pytest.approx((64 + 16 - 1) * 2048)  # prompt + output - 1
    assert summary["weights_gb"] > 0
    for key in ("activations_gb", "cuda_graph_gb", "non_torch_gb", "total_gb", "nvml_used_gb"):
        assert summary[key] is None, key  # no CUDA, no NVML: unknown (NaN -> null), never zero
    assert summary["memory_unavailable_reason"] and summary["gpu_available"] is False


def test_two_job_multirun_reuses_one_engine(run_launch):
    # 195 characters (a name is one folder name: at most 200), so the overrides pass the folder name limit
    long_name = "a_label_long_enough_that_the_overrides_pass_the_file_name_limit_" * 3
    process, root = run_launch("-m", "experiment=e1", "prompt_len=128,256", "repeats=2", "output_len=8",
                               f"name={long_name}", timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed", "completed"]
    assert all(len(Path(m["_dir"]).name) <= 200 for m in records)  # job folders named within the limit
    assert (root / "sweep" / "multirun.yaml").exists()
    summaries = [read_summary(Path(m["_dir"])) for m in records]
    assert summaries[0]["engine_start_s"] > 0 and summaries[1]["engine_start_s"] == 0  # one start
    assert records[0]["engine_key"] == records[1]["engine_key"]
    prompt_lens = [pd.read_parquet(Path(m["_dir"]) / "requests.parquet")["prompt_tokens"].iloc[-1]
                   for m in records]
    assert prompt_lens == [128, 256]


def test_a_failing_job_is_recorded_and_its_sibling_completes(run_launch):
    # an activation transformers does not know passes validation and fails for real at engine start
    process, root = run_launch("-m", "model.architecture.hidden_act=no_such_activation,silu", "num_prompts=1",
                               timeout=300)
    records = {m["_dir"].split("hidden_act=")[-1].split(",")[0]: m for m in manifests(root / "sweep")}
    assert records["silu"]["status"] == "completed"
    assert records["no_such_activation"]["status"] == "failed"
    assert "Error" in records["no_such_activation"]["error"]
    assert not (Path(records["no_such_activation"]["_dir"]) / "summary.json").exists()
    assert process.returncode == 1
    assert "failed jobs:" in process.stderr and "hidden_act=no_such_activation" in process.stderr


def test_two_runs_with_the_same_seed_give_identical_token_ids(e0_run, tmp_path, model_cache):
    process = launch([f"hydra.run.dir={tmp_path}", f"paths.cache_dir={model_cache}"], timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    [first], [second] = manifests(e0_run[1]), manifests(tmp_path)
    assert first["run_id"] != second["run_id"]
    assert first["workload_hash"] == second["workload_hash"]
    assert first["config_hash"] == second["config_hash"]

    def tokens(manifest):
        frame = pd.read_parquet(Path(manifest["_dir"]) / "requests.parquet")
        return [list(t) for t in frame["output_token_ids"]]

    assert tokens(first) == tokens(second)
