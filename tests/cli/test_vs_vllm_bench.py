"""The harness against `vllm bench serve`: the harness side's multirun against a real server (CPU,
tests/serving/scripted_server.py), the comparison and its bars, and the whole call on a GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from context_research.cli.vs_vllm_bench import (Point, bench_command, comparison, harness_command, harness_figures,
                                                merged, points, verdict, write_points)
from tests.conftest import REPO
from tests.serving.scripted_server import MODEL, ScriptedServer
from tests.serving.test_vllm_gpu import TINY_VLLM

TINY = ["model=tiny_qwen3", "model.tokenizer=null", "model.load_format=auto"]


def test_the_users_overrides_replace_the_defaults_of_the_same_key():
    assert merged(["model=qwen3_8b", "model.tokenizer=built"], ["model=tiny_qwen3", "seed=3"]) == \
        ["model.tokenizer=built", "model=tiny_qwen3", "seed=3"]


def test_the_harness_side_runs_every_point_through_launch_on_the_server(tmp_path, model_cache):
    chosen = [Point("c1_short", 16, 4, 1, 3), Point("c1_long", 32, 4, 1, 3), Point("c64", 16, 4, 2, 4),
              Point("c256", 16, 4, 4, 8)]
    write_points(tmp_path / "conf", chosen)
    with ScriptedServer(delay_s=0.002) as server:
        command = harness_command(server.url, MODEL, chosen, tmp_path / "conf", tmp_path / "harness",
                                  [*TINY, f"paths.cache_dir={model_cache}", "serving.gpu_memory_utilization=0.5"])
        assert "serving.gpu_memory_utilization=0.5" not in command  # the server's settings are the server's
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        bodies = list(server.bodies)
    figures = harness_figures(tmp_path / "harness")
    assert set(figures) == {p.name for p in chosen} and all(f["status"] == "completed" for f in figures.values())
    assert figures["c64"]["concurrency"] == 2 and figures["c64"]["n_requests"] == 4
    assert figures["c1_long"]["prompt_len"] == 32 and figures["c256"]["loop_lag_p99_ms"] is not None
    # what vllm bench sends too: token budget, streaming with usage, ignore_eos, greedy; no token-id echo
    measured = [b for b in bodies if b["max_tokens"] == 4]
    assert all(b["ignore_eos"] and b["temperature"] == 0.0 and b["stream_options"] == {"include_usage": True}
               and "return_token_ids" not in b and "seed" not in b for b in measured)
    assert server.resets == 4  # each job empties the server's prefix cache first


def test_the_comparison_rows_and_their_bars():
    harness = {"c1_short": {"ttft_p50_ms": 29.0, "tpot_p50_ms": 5.2}, "c1_long": {"ttft_p50_ms": 230.0,
               "tpot_p50_ms": 5.5}, "c64": {"out_tok_s": 4900.0}, "c256": {"loop_lag_p99_ms": 0.8}}
    bench = {"c1_short": {"median_ttft_ms": 28.7, "median_tpot_ms": 5.2}, "c1_long": {"median_ttft_ms": 220.0,
             "median_tpot_ms": 5.5}, "c64": {"output_throughput": 5000.0}, "c256": {}}
    table = comparison(harness, bench, points())
    assert list(table.columns) == ["metric", "prompt_len", "concurrency", "harness", "vllm_bench", "ratio"]
    assert list(zip(table["metric"], table["prompt_len"], table["concurrency"])) == [
        ("ttft_p50_ms", 1024, 1), ("tpot_p50_ms", 1024, 1), ("ttft_p50_ms", 8192, 1), ("tpot_p50_ms", 8192, 1),
        ("output_tok_s", 1024, 64), ("loop_lag_p99_ms", 1024, 256)]
    assert table["ratio"][0] == pytest.approx(29.0 / 28.7)
    assert [verdict(row) for _, row in table.iterrows()] == [True, True, False, True, True, True]


def test_vllm_bench_gets_the_same_workload():
    command = bench_command("http://127.0.0.1:8000", "qwen3_8b", "/tok", Point("c64", 1024, 256, 64, 256), REPO, 0)
    flags = dict(zip(command, command[1:]))
    assert command[:5] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "bench", "serve"]
    assert flags["--random-input-len"] == "1024" and flags["--random-output-len"] == "256"
    assert flags["--num-prompts"] == "256" and flags["--max-concurrency"] == "64" and "--ignore-eos" in command
    assert flags["--temperature"] == "0" and flags["--num-warmups"] == "0" and flags["--tokenizer"] == "/tok"


@pytest.mark.gpu
def test_vs_vllm_bench_on_a_tiny_vllm_server(tmp_path, model_cache):
    server = ["serving=vllm_server", *TINY_VLLM[1:], "model=tiny_qwen3", "model.tokenizer=built"]
    process = subprocess.run(
        [sys.executable, "-m", "context_research.cli.vs_vllm_bench", "--out", str(tmp_path), "--short-len", "256",
         "--long-len", "1024", "--latency-output-len", "16", "--load-output-len", "16", "--latency-prompts", "4",
         "--throughput-prompts", "16", "--lag-prompts", "32", *server, f"paths.cache_dir={model_cache}"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert (tmp_path / "vs_vllm_bench.csv").is_file(), process.stderr[-4000:]
    table = pd.read_csv(tmp_path / "vs_vllm_bench.csv")
    assert len(table) == 6 and table["harness"].notna().all() and table["vllm_bench"][:5].notna().all()
    payload = json.loads((tmp_path / "vs_vllm_bench.json").read_text())
    assert payload["harness_returncode"] == 0 and payload["server"]["server"] == "vllm serve"
    assert (tmp_path / "vllm_server.log").is_file()
