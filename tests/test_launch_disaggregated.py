"""launch.py runs E3 on CPU: the same workload under both schedulers in one command; the
disaggregated job's decode pool is a worker process (KV over gloo) and every request records its
route and KV handoff."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import manifests, read_summary

TINY_KV_BYTES_PER_TOKEN = 4 * 2 * 2 * 32 * 4  # layers x (K, V) x kv heads x head_dim x float32


def test_e3_runs_both_schedulers_on_one_workload(run_launch):
    process, root = run_launch("-m", "experiment=e3", "prompt_len=32", "concurrency=2", "output_len=4",
                               timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed", "completed"]
    assert records[0]["workload_hash"] == records[1]["workload_hash"]
    jobs = [Path(m["_dir"]) for m in records]
    aggregated, disaggregated = (read_summary(job) for job in jobs)
    assert (aggregated["scheduler"], disaggregated["scheduler"]) == ("aggregated", "disaggregated")
    assert aggregated["kv_transfers"] == 0 and aggregated["passed"] and disaggregated["passed"]

    rows = [pd.read_parquet(job / "requests.parquet").set_index("request_id") for job in jobs]
    assert rows[0]["output_token_ids"].map(list).to_dict() == rows[1]["output_token_ids"].map(list).to_dict()
    measured = rows[1][rows[1]["phase"] == "measure"]
    assert len(measured) == 4 and (measured["route"] == "prefill->decode").all()
    assert (measured["kv_bytes"] == 32 * TINY_KV_BYTES_PER_TOKEN).all()
    assert (measured["kv_transfer_mode"] == "process").all() and not measured["kv_simulated"].any()
    assert (measured["kv_transfer_s"] > 0).all() and (measured["kv_wait_s"] >= 0).all()
    assert disaggregated["kv_transfers"] == 4
    assert disaggregated["kv_gb_per_req"] == pytest.approx(32 * TINY_KV_BYTES_PER_TOKEN / 1e9)
    assert disaggregated["kv_transfer_p50_ms"] == pytest.approx(measured["kv_transfer_s"].median() * 1e3)
    assert disaggregated["stall_ratio"] == pytest.approx(measured["kv_wait_s"].sum() / (measured["ttft_ms"].sum() / 1e3))
    for summary in (aggregated, disaggregated):
        assert summary["goodput_req_s"] > 0 and summary["ttft_p50_ms"] > 0
