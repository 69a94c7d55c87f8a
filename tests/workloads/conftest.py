"""Fixtures for the workload tests: a locally built tokenizer, tiny data files written in their
published formats, the typed workload config of a source, and the tiny model on the HF engine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.benchmarks.capability.conftest import build_tokenizer
from tests.conftest import aggregated, compose_config, hf_engine


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("workload-tokenizer"))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def typed(*overrides: str):
    """The typed benchmark and model configs of `benchmark=throughput` with these overrides."""
    cfg = compose_config(["benchmark=throughput", *overrides])
    return OmegaConf.to_object(cfg.benchmark), OmegaConf.to_object(cfg.model)


def workload_config(source: str, path: Path, *overrides: str):
    """The typed workload config of a file source."""
    benchmark, _ = typed(f"benchmark.workload.source={source}", f"benchmark.workload.path={path}", *overrides)
    return benchmark.workload


USER = ["Where does the red fox sleep at night near the river?", "And what does the lazy dog do then?",
        "Why would the big cat watch them both from the tree?"]
MODEL = ["The fox sleeps under the old bridge, and then it rested.", "The dog barks 12 times at the moon!",
         "Because the cat is curious about the quiet river bank."]


def conversation(index: int, turns: int = 3) -> dict:
    """A ShareGPT record of `turns` exchanges (human, then gpt), its user turns numbered by `index`."""
    messages = []
    for user, reply in list(zip(USER, MODEL))[:turns]:
        messages += [{"from": "human", "value": f"{user} ({index})"}, {"from": "gpt", "value": reply}]
    return {"id": f"conv_{index}", "conversations": messages}


@pytest.fixture(scope="module")
def scheduler(model_cache):
    """The tiny model on the HF engine (CPU, float32), behind the aggregated scheduler."""
    engine = hf_engine(model_cache, ["serving.max_batch_size=4", "serving.dtype=float32"])
    engine.start()
    yield aggregated(engine)
    engine.stop()
