"""E8 at CI scale: the generator's files under paths.data_dir, then `launch.py -m experiment=e8` through
`transformers serve` on the tiny model (CPU): the Mooncake trace replayed on its timestamps with prompts
whose equal hash_ids are equal token blocks, and the ShareGPT conversations as multi-turn sessions
whose text the built tokenizer encodes as the server does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from context_research.app import build
from context_research.cli.make_workload_files import main as make_workload_files
from context_research.workloads.generator import MOONCAKE_FILE, TraceShape
from context_research.workloads.synthetic import workload_hash
from context_research.workloads.traces import MOONCAKE_BLOCK_TOKENS
from tests.conftest import compose_config, manifests, read_summary
from tests.workloads.test_generator import TINY_ARGS

B = MOONCAKE_BLOCK_TOKENS
CPU_SCALE = ["concurrency=2", "benchmark.arrival.think_time.mean_s=0.05"]


def rebuilt_workload(data_dir: Path, part: str):
    """The requests the job of `part` built, rebuilt in this process from the same config."""
    cfg = compose_config(["experiment=e8", f"e8_workload={part}", f"paths.data_dir={data_dir}", *CPU_SCALE])
    benchmark = build(OmegaConf.to_object(cfg.benchmark), model=OmegaConf.to_object(cfg.model))
    return benchmark.load()


def test_e8_runs_the_trace_and_the_sessions_over_transformers_serve(run_launch, tmp_path) -> None:
    data = tmp_path / "data"
    assert make_workload_files(["--out", str(data / "e8"), *TINY_ARGS]) == 0
    process, root = run_launch("-m", "experiment=e8", f"paths.data_dir={data}", *CPU_SCALE, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    trace_job, sessions_job = manifests(root / "sweep")
    assert [m["status"] for m in (trace_job, sessions_job)] == ["completed", "completed"]
    assert trace_job["engine_key"] == sessions_job["engine_key"]  # one server for both parts
    assert trace_job["engines"]["aggregated"]["engine"] == "transformers_server"

    # the trace: every record, at its own time, each prompt the one its hash_ids describe
    records = [json.loads(line) for line in (data / "e8" / MOONCAKE_FILE).read_text().splitlines()]
    summary = read_summary(trace_job["_dir"])
    assert summary["passed"] and summary["workload_source"] == "mooncake" and summary["arrival_process"] == "trace"
    rows = pd.read_parquet(Path(trace_job["_dir"]) / "requests.parquet")
    assert rows["source_record"].tolist() == list(range(1, len(records) + 1))
    assert rows["prompt_tokens_sent"].tolist() == [r["input_length"] for r in records]
    assert rows["completion_tokens"].tolist() == [r["output_length"] for r in records]
    offsets = (rows["arrival_s"] - rows["arrival_s"].iloc[0]).to_numpy()
    np.testing.assert_allclose(offsets, [r["timestamp"] / 1e3 for r in records], atol=1e-6)
    sent = rebuilt_workload(data, "trace")
    assert workload_hash(sent.requests) == trace_job["workload_hash"]  # what the job sent, token for token
    blocks: dict[int, list[int]] = {}
    shared = 0
    for request, record in zip(sent.requests, records):
        for index, hash_id in enumerate(record["hash_ids"]):
            block = request.prompt_token_ids[index * B:(index + 1) * B]
            if hash_id in blocks:  # the same tokens (a record's last block is cut to its length)
                common = min(len(block), len(blocks[hash_id]))
                assert block[:common] == blocks[hash_id][:common]
                shared += 1
            blocks[hash_id] = max(block, blocks.get(hash_id, []), key=len)
    # every prompt starts with one of the 4 system prompts' block: all but the first of each share it
    assert shared >= len(records) - TraceShape().system_prompts

    # the sessions: each turn's prompt the conversation so far, the text encoded as the server encodes it
    summary = read_summary(sessions_job["_dir"])
    assert summary["passed"] and summary["arrival_process"] == "sessions" and summary["n_sessions"] == 4
    rows = pd.read_parquet(Path(sessions_job["_dir"]) / "requests.parquet")
    assert rows["ok"].all() and len(rows) == len(rebuilt_workload(data, "sessions").requests)
    assert (rows["prompt_tokens_sent"] == rows["usage_prompt_tokens"]).all()
    for _, turns in rows.sort_values("turn").groupby("session_id"):
        assert turns["turn"].tolist() == list(range(1, len(turns) + 1))
        grown = turns["prompt_tokens"].to_numpy()
        assert (grown[1:] > grown[:-1] + turns["completion_tokens"].to_numpy()[:-1]).all()
    # transformers serve keeps no /metrics: the server's hit rate is null with the reason
    assert summary["server_metrics_available"] is False and "/metrics" in summary["server_metrics_reason"]
