"""Capability tasks on vLLM (run on the device machine: python -m pytest -m gpu tests): LongBench and
RULER generate through vLLM, and PG19 scores prompts through VLLMBackend.prompt_logprobs (the
ServingBackend contract: per prompt token its natural-log probability, None for the first)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import manifests, read_summary
from tests.serving.test_vllm_gpu import TINY_VLLM

pytestmark = pytest.mark.gpu


def test_capability_jobs_run_on_vllm(run_launch, tokenizer_dir, data_dir):
    # E4's sweep (one job per benchmark, prompt_len = every benchmark's token budget) on the tiny model
    process, root = run_launch("-m", "experiment=e4", "model=tiny_qwen3", *TINY_VLLM,
                               f"model.tokenizer={tokenizer_dir}", f"paths.data_dir={data_dir}",
                               "prompt_len=2048", "num_prompts=2", timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed"] * 3
    for record in records:
        summary = read_summary(Path(record["_dir"]))
        requests = pd.read_parquet(Path(record["_dir"]) / "requests.parquet")
        assert summary["passed"] and all(summary["checks"].values()), summary["benchmark"]
        assert requests["score"].notna().all() and (requests["prompt_tokens"] <= 2048).all()
        if summary["benchmark"] == "pg19":
            assert math.isfinite(summary["score"]) and summary["score"] > 1
            assert summary["scored_tokens"] == int(requests["scored_tokens"].sum())
