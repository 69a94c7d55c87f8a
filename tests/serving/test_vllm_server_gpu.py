"""serving=vllm_server on a GPU: `vllm serve` started by the harness with the in-process engine's
arguments, E1 over HTTP with the server's own figures, and no server left after the sweep."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import manifests, read_summary
from tests.serving.test_vllm_gpu import TINY_VLLM

pytestmark = pytest.mark.gpu
SERVER = ["serving=vllm_server", *TINY_VLLM[1:], "model.tokenizer=built"]


def group_gone(pgid: int, wait_s: float = 30.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_e1_over_vllm_serve_reads_the_servers_metrics(run_launch):
    process, root = run_launch("-m", "experiment=e1", "prompt_len=256,1024", "repeats=3", "output_len=16", *SERVER,
                               timeout=900)
    assert process.returncode == 0, process.stderr[-4000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed", "completed"]
    engine = records[0]["engines"]["aggregated"]
    assert engine["server"] == "vllm serve" and engine["server_version"] and engine["kv_capacity_tokens"] > 0
    assert engine["engine_args"]["enforce_eager"] is True and "worker_extension_cls" not in engine["engine_args"]
    assert records[1]["engines"]["aggregated"]["server_log"] == engine["server_log"]  # one server for the sweep
    for record in records:
        summary = read_summary(Path(record["_dir"]))
        assert summary["passed"] is True and summary["server_metrics_available"] is True
        requests = pd.read_parquet(Path(record["_dir"]) / "requests.parquet")
        assert (requests["output_ids_source"] == "server").all() and not requests["usage_mismatch"].any()
        # what the job sent, counted over the job's window (the engine's own warm-up came before it): E1's
        # warm-ups (3, its preset) and the 3 measured requests, all rows of requests.parquet, then the latency
        # benchmark's reproducibility check, which sends the first measured request once more
        sent = len(requests) + 1
        assert list(requests["phase"]).count("warmup") == 3 and sent == 7
        assert summary["server_requests"] == sent and summary["server_generation_tokens"] == sent * 16
        prompt_len = int(requests["prompt_tokens"].iloc[0])
        assert summary["server_prefix_cache_queries"] == sent * prompt_len
        # distinct prompts and the cache emptied before the job: only the re-sent prompt can hit
        assert 0 <= summary["server_prefix_cache_hits"] <= prompt_len
    assert group_gone(engine["server_pgid"])
