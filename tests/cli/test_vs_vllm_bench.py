"""The harness against `vllm bench serve`: the harness side's multirun against a real server (CPU,
tests/serving/scripted_server.py), the comparison and its bars, and the whole call on a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from transformers import AutoTokenizer

from context_research.cli.vs_vllm_bench import (Point, bench_command, comparison, harness_command, harness_figures,
                                                merged, points, prompt_checks, text_path, verdict, word_ids,
                                                write_points, write_prompts)
from context_research.serving.model_source import load_tokenizer, tokenizer_dir
from tests.conftest import REPO, typed
from tests.serving.scripted_server import MODEL, ScriptedServer
from tests.serving.test_vllm_gpu import TINY_VLLM

TINY = ["model=tiny_qwen3", "model.tokenizer=built", "model.load_format=auto"]


@pytest.fixture(scope="module")
def server_tokenizer(model_cache):
    """The built tokenizer of the tiny model as a server loads it: from its saved directory."""
    return AutoTokenizer.from_pretrained(str(tokenizer_dir(typed(TINY, "model"), model_cache)), local_files_only=True)


def texts(path: Path) -> list[str]:
    return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_users_overrides_replace_the_defaults_of_the_same_key():
    assert merged(["model=qwen3_8b", "model.tokenizer=built"], ["model=tiny_qwen3", "seed=3"]) == \
        ["model.tokenizer=built", "model=tiny_qwen3", "seed=3"]


def test_the_prompts_are_each_points_length_as_the_server_tokenises_them(tmp_path, server_tokenizer):
    chosen = [Point("short", 64, 4, 1, 5), Point("long", 512, 4, 1, 3)]
    files = write_prompts(tmp_path / "a", server_tokenizer, chosen, seed=0)
    client = load_tokenizer(typed(TINY, "model"))  # the harness's own copy encodes them alike
    for point in chosen:
        prompts = texts(files[point.name])
        assert len(prompts) == point.num_prompts
        for text in prompts:
            ids = server_tokenizer(text)["input_ids"]  # a /v1/completions prompt: special tokens included
            assert len(ids) == point.prompt_len and server_tokenizer.decode(ids) == text
            assert client(text)["input_ids"] == ids
        assert len({tuple(server_tokenizer(text)["input_ids"][:16]) for text in prompts}) == len(prompts)  # no shared block
    assert len(word_ids(server_tokenizer)) > 100
    again = write_prompts(tmp_path / "b", server_tokenizer, chosen, seed=0)
    other = write_prompts(tmp_path / "c", server_tokenizer, chosen, seed=1)
    assert again["long"].read_bytes() == files["long"].read_bytes() != other["long"].read_bytes()


def test_the_harness_side_sends_each_points_prompts_as_text_and_as_token_ids(tmp_path, model_cache,
                                                                             server_tokenizer):
    chosen = [Point("c1_short", 16, 5, 1, 3), Point("c1_long", 32, 5, 1, 3), Point("c64", 16, 5, 2, 4),
              Point("c256", 16, 5, 4, 8)]  # 5 output tokens: the engine's warm-up asks 4
    prompts = write_prompts(tmp_path / "prompts", server_tokenizer, chosen, seed=0)
    write_points(tmp_path / "conf", chosen, prompts)
    with ScriptedServer(delay_s=0.002) as server:
        command = harness_command(server.url, MODEL, chosen, tmp_path / "conf", tmp_path / "harness",
                                  [*TINY, f"paths.cache_dir={model_cache}", "serving.gpu_memory_utilization=0.5"])
        assert "serving.gpu_memory_utilization=0.5" not in command  # the server's settings are the server's
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        bodies = list(server.bodies)
    figures = harness_figures(tmp_path / "harness")
    assert set(figures) == {p.name for p in chosen}
    assert all(set(arms) == {"text", "token_ids"} and all(f["status"] == "completed" for f in arms.values())
               for arms in figures.values())
    assert figures["c64"]["text"]["concurrency"] == 2 and figures["c64"]["token_ids"]["n_requests"] == 4
    assert figures["c256"]["text"]["loop_lag_p99_ms"] is not None
    # the server counted each point's length in both arms (the scripted server counts a text's words)
    assert all(arms[fmt]["server_prompt_lens"] == [point.prompt_len] for point in chosen
               for arms in [figures[point.name]] for fmt in arms)
    # the file's texts as they are (what vllm bench sends from it), or exactly their token ids
    measured = [b for b in bodies if b["max_tokens"] == 5]
    sent_texts = [b["prompt"] for b in measured if isinstance(b["prompt"], str)]
    sent_ids = [b["prompt"] for b in measured if isinstance(b["prompt"], list)]
    every_text = {text for path in prompts.values() for text in texts(path)}
    assert len(sent_texts) == len(sent_ids) == sum(p.num_prompts for p in chosen)
    assert set(sent_texts) == every_text
    assert sorted(map(tuple, sent_ids)) == sorted(tuple(server_tokenizer(t)["input_ids"]) for t in sent_texts)
    # what vllm bench sends too: token budget, streaming with usage, ignore_eos, greedy; no token-id echo
    assert all(b["ignore_eos"] and b["temperature"] == 0.0 and b["stream_options"] == {"include_usage": True}
               and "return_token_ids" not in b and "seed" not in b for b in measured)
    assert server.resets == 8  # each job empties the server's prefix cache first


def test_the_comparison_rows_and_their_bars():
    harness = {"c1_short": {"text": {"ttft_p50_ms": 29.0, "tpot_p50_ms": 5.2},
                            "token_ids": {"ttft_p50_ms": 27.0, "tpot_p50_ms": 5.2}},
               "c1_long": {"text": {"ttft_p50_ms": 230.0, "tpot_p50_ms": 5.5}},
               "c64": {"text": {"out_tok_s": 4900.0}}, "c256": {"text": {"loop_lag_p99_ms": 0.8}}}
    bench = {"c1_short": {"median_ttft_ms": 28.7, "median_tpot_ms": 5.2}, "c1_long": {"median_ttft_ms": 220.0,
             "median_tpot_ms": 5.5}, "c64": {"output_throughput": 5000.0}, "c256": {}}
    table = comparison(harness, bench, points())
    assert list(table.columns) == ["metric", "prompt_len", "concurrency", "harness", "vllm_bench", "ratio"]
    assert list(zip(table["metric"], table["prompt_len"], table["concurrency"])) == [
        ("ttft_p50_ms", 1024, 1), ("tpot_p50_ms", 1024, 1), ("ttft_p50_ms", 8192, 1), ("tpot_p50_ms", 8192, 1),
        ("output_tok_s", 1024, 64), ("loop_lag_p99_ms", 1024, 256)]
    assert table["ratio"][0] == pytest.approx(29.0 / 28.7)
    assert [verdict(row) for _, row in table.iterrows()] == [True, True, False, True, True, True]
    formats = text_path(harness, points())
    assert formats["ratio"][0] == pytest.approx(29.0 / 27.0) and formats["ratio"][1] == pytest.approx(1.0)
    assert pd.isna(formats["token_ids"][2]) and pd.isna(formats["ratio"][2])


def test_the_prompt_checks_say_whether_every_side_sent_the_points_length():
    chosen = [Point("a", 16, 4, 1, 2), Point("b", 32, 4, 1, 2)]
    harness = {"a": {"text": {"server_prompt_lens": [16]}, "token_ids": {"server_prompt_lens": [16]}},
               "b": {"text": {"server_prompt_lens": [32, 33]}, "token_ids": {"server_prompt_lens": [32]}}}
    checks = prompt_checks(harness, {"a": [16, 16], "b": [32, 32]}, chosen)
    assert checks["a"]["exact"] is True and checks["b"]["exact"] is False
    assert checks["b"]["lens"] == {"text": [32, 33], "token_ids": [32], "vllm_bench": [32]}


def test_vllm_bench_reads_the_same_prompt_file_as_it_is(tmp_path):
    prompts = tmp_path / "c64.jsonl"
    command = bench_command("http://127.0.0.1:8000", "qwen3_8b", "/tok", Point("c64", 1024, 256, 64, 256), prompts,
                            REPO, 0)
    flags = dict(zip(command, command[1:]))
    assert command[:5] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "bench", "serve"]
    assert flags["--dataset-name"] == "custom" and flags["--dataset-path"] == str(prompts)
    assert "--skip-chat-template" in command and "--disable-shuffle" in command
    assert flags["--custom-output-len"] == "256" and not any(f.startswith("--random") for f in command)
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
    assert all(check["exact"] for check in payload["prompt_checks"].values()), payload["prompt_checks"]
    formats = pd.read_csv(tmp_path / "harness_text_vs_token_ids.csv")
    assert len(formats) == 6 and formats["token_ids"].notna().all() and formats["text"].notna().all()
    assert (tmp_path / "vllm_server.log").is_file()
