"""Local weights end to end through launch.py: a tiny checkpoint saved with save_pretrained (and the
built tokenizer) runs E0 from `model.path` with the greedy tokens of the same seeded model built from
its config, and E4's RULER from it builds and answers the prompts that the seeded model with
`model.tokenizer=built` does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from context_research.serving.model_source import build_hf_model, built_tokenizer
from tests.benchmarks.capability.conftest import write_data
from tests.conftest import compose_config, launch, manifests, read_summary

RULER_TASKS = "[niah_single_1,niah_single_2]"  # a noise haystack and an essay haystack
BUDGET = 512


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """tiny_qwen3 with seed-0 weights, saved as any checkpoint is, with the built tokenizer beside it."""
    directory = tmp_path_factory.mktemp("tiny-checkpoint")
    model = OmegaConf.to_object(compose_config([]).model)
    seeded = build_hf_model(model, tmp_path_factory.mktemp("cache"), "cpu", torch.float32, 0, "sdpa")
    seeded.save_pretrained(directory)
    built_tokenizer(model).save_pretrained(directory)
    return directory


def output_tokens(root: Path) -> list[list[int]]:
    [manifest] = manifests(root)
    assert manifest["status"] == "completed", manifest["error"]
    return [list(t) for t in pd.read_parquet(Path(manifest["_dir"]) / "requests.parquet")["output_token_ids"]]


def test_e0_from_model_path_gives_the_greedy_tokens_of_the_seeded_model(checkpoint, run_launch, tmp_path,
                                                                          model_cache):
    from_path, root = run_launch(f"model.path={checkpoint}", timeout=300)
    assert from_path.returncode == 0, from_path.stderr[-3000:]
    from_config = launch([f"hydra.run.dir={tmp_path}/from-config", f"paths.cache_dir={model_cache}"], timeout=300)
    assert from_config.returncode == 0, from_config.stderr[-3000:]
    [manifest] = manifests(root / "run")
    summary = read_summary(manifest["_dir"])
    assert summary["passed"] and summary["checks"] == {"full_outputs": True, "reproducible": True}
    tokens = output_tokens(root / "run")
    assert len(tokens) == 5 and all(len(t) == 16 for t in tokens)  # one warm-up and four measured requests
    assert tokens == output_tokens(tmp_path / "from-config")


def ruler_job(source: str, data: Path, run_dir: Path, cache: Path) -> tuple[dict, pd.DataFrame]:
    """One E4 RULER job on the hf engine: its summary and requests."""
    process = launch(["experiment=e4", "serving=hf", "model=tiny_qwen3", source, "benchmark=ruler",
                      f"benchmark.tasks={RULER_TASKS}", f"paths.data_dir={data}", f"prompt_len={BUDGET}",
                      "num_prompts=1", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}"],
                     timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr[-3000:]
    [manifest] = manifests(run_dir)
    assert manifest["status"] == "completed"
    job = Path(manifest["_dir"])
    return read_summary(job), pd.read_parquet(job / "requests.parquet")


def answers(requests: pd.DataFrame) -> list[tuple]:
    return [(r.task, r.sample_id, r.prompt_tokens, list(r.output_token_ids)) for r in requests.itertuples()]


def test_e4_ruler_from_model_path_is_the_seeded_model_with_the_built_tokenizer(checkpoint, tmp_path, model_cache):
    data = write_data(tmp_path / "data")
    summary, requests = ruler_job(f"model.path={checkpoint}", data, tmp_path / "from-path", model_cache)
    assert summary["benchmark"] == "ruler" and sorted(summary["task_scores"]) == ["niah_single_1", "niah_single_2"]
    assert summary["passed"] and all(summary["checks"].values())
    assert len(requests) == 2 and requests["score"].notna().all()
    assert requests["length"].between(0.9 * BUDGET, BUDGET).all()  # measured with the checkpoint's tokenizer
    # the same job on seeded weights with model.tokenizer=built: the same prompts, the same greedy answers
    _, built = ruler_job("model.tokenizer=built", data, tmp_path / "built", model_cache)
    assert answers(built) == answers(requests)
