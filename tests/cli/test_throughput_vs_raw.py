"""Harness vs plain vLLM on one offline batch: the comparison logic (CPU) and the real run (GPU)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import pytest
from tests.conftest import REPO
from tests.serving.test_vllm_gpu import TINY_VLLM

from context_research.cli.throughput_vs_raw import compare


def test_compare_alternates_resets_and_takes_medians() -> None:
    calls = []

    def side(name: str, seconds: float):
        def run() -> int:
            calls.append(name)
            time.sleep(seconds)
            return 100
        return run

    figures = compare(side("harness", 0.02), side("raw", 0.01), lambda: calls.append("reset"), repeats=3)
    assert calls == ["reset", "harness", "reset", "raw", "reset", "raw", "reset", "harness",
                     "reset", "harness", "reset", "raw"]
    medians = {side: statistics.median(t["tok_s"] for t in figures["trials"] if t["side"] == side)
               for side in ("harness", "raw")}
    assert figures["ratio"] == medians["harness"] / medians["raw"]  # the medians' ratio, whatever the load
    assert all(t["seconds"] >= (0.02 if t["side"] == "harness" else 0.01) for t in figures["trials"])
    assert figures["passed"] is (figures["ratio"] >= 0.97)
    assert len(figures["trials"]) == 6 and all(t["output_tokens"] == 100 for t in figures["trials"])


@pytest.mark.gpu
def test_throughput_vs_raw_on_vllm(tmp_path, model_cache) -> None:
    output = tmp_path / "throughput_vs_raw.json"
    process = subprocess.run(
        [sys.executable, "-m", "context_research.cli.throughput_vs_raw", *TINY_VLLM,
         f"paths.cache_dir={model_cache}", "--output", str(output), "--num-requests", "32",
         "--prompt-len", "64", "--output-len", "16", "--repeats", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert output.exists(), process.stderr[-3000:]
    figures = json.loads(output.read_text())
    assert figures["engine"]["interface"] == "offline" and figures["engine"]["kv_capacity_tokens"] > 0
    assert {t["output_tokens"] for t in figures["trials"]} == {32 * 16}  # both sides ran every token
    assert figures["harness_tok_s"] > 0 and figures["raw_tok_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["harness_tok_s"] / figures["raw_tok_s"])
    assert figures["ratio"] > 0.5  # the tiny model magnifies per-request costs; the 8B run must reach 0.97


def test_batch_requests_come_from_the_typed_model_config() -> None:
    from context_research.cli.throughput_vs_raw import batch_requests
    from tests.conftest import typed

    model = typed(["model=qwen3_8b", "serving=vllm", "model.load_format=dummy"], "model")
    requests = batch_requests(model, 3, 1024, 256, seed=0)
    assert [len(r.prompt_token_ids) for r in requests] == [1024] * 3
    assert all(r.max_new_tokens == 256 and r.ignore_eos for r in requests)
    assert max(max(r.prompt_token_ids) for r in requests) < 151643  # no special ids
