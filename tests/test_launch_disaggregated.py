"""launch.py with scheduler=disaggregated on CPU (the decode pool in a worker process, KV over
gloo), and E3 (both schedulers on one workload in one command)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import CONF, manifests

TINY_KV_BYTES_PER_TOKEN = 4 * 2 * 2 * 32 * 4  # layers x (K, V) x kv heads x head_dim x float32


def test_disaggregated_run_records_route_and_kv_per_request(run_launch):
    process, root = run_launch("scheduler=disaggregated", "prompt_len=48", "output_len=6", "num_prompts=2",
                               timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    [manifest] = manifests(root / "run")
    assert manifest["status"] == "completed"
    job = Path(manifest["_dir"])
    requests = pd.read_parquet(job / "requests.parquet")
    measured = requests[requests["phase"] == "measure"]
    assert len(measured) == 2 and (measured["route"] == "prefill->decode").all()
    assert (measured["kv_bytes"] == 48 * TINY_KV_BYTES_PER_TOKEN).all()
    assert (measured["kv_transfer_mode"] == "process").all() and not measured["kv_simulated"].any()
    assert (measured["kv_transfer_s"] > 0).all() and (measured["kv_wait_s"] >= 0).all()
    summary = json.loads((job / "summary.json").read_text())
    assert summary["scheduler"] == "disaggregated" and summary["passed"] is True
    assert summary["kv_transfers"] == 2 and summary["kv_gb_per_req"] == pytest.approx(48 * TINY_KV_BYTES_PER_TOKEN / 1e9)
    assert summary["stall_ratio"] == pytest.approx(measured["kv_wait_s"].sum() / (measured["ttft_ms"].sum() / 1e3))
    assert summary["kv_transfer_ms_p50"] == pytest.approx(measured["kv_transfer_s"].median() * 1e3)


@pytest.mark.skipif(not (CONF / "benchmark" / "throughput.yaml").exists(),
                    reason="E3 runs on the throughput benchmark (benchmark=throughput)")
def test_e3_runs_both_schedulers_on_one_workload(run_launch):
    process, root = run_launch("-m", "experiment=e3", "prompt_len=32", "concurrency=2", "output_len=4",
                               timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed", "completed"]
    summaries = [json.loads((Path(m["_dir"]) / "summary.json").read_text()) for m in records]
    assert [s["scheduler"] for s in summaries] == ["aggregated", "disaggregated"]
    assert [m["workload_hash"] for m in records][0] == [m["workload_hash"] for m in records][1]
    assert summaries[0]["kv_transfers"] == 0 and summaries[1]["kv_transfers"] > 0
    for summary in summaries:
        assert summary["goodput_req_s"] >= 0 and summary["ttft_p50_ms"] > 0
