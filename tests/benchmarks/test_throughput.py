"""Throughput benchmark end to end on the tiny HF engine: each arrival process in-process (ShareGPT
sessions too), a small E2 sweep and a Mooncake trace replay through launch.py leaving completed
records with the load figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from context_research.app import build
from tests.conftest import aggregated, hf_engine, manifests, outcome_figures, read_summary, typed

LOAD_FIELDS = ("req_s", "out_tok_s", "total_tok_s", "ttft_p95_ms", "tpot_p95_ms", "itl_p95_ms", "e2e_p95_ms",
               "queue_wait_p95_ms", "slo_attainment", "goodput_req_s", "peak_concurrency", "mean_concurrency",
               "kv_tokens_peak", "kv_load", "kv_load_peak", "concurrency", "prompt_len")


@pytest.fixture(scope="module")
def scheduler(model_cache):
    engine = hf_engine(model_cache, ["serving.max_batch_size=4"])
    engine.start()
    yield aggregated(engine)
    engine.stop()


def run_benchmark(scheduler, *overrides: str):
    chosen = ["benchmark=throughput", "prompt_len=12", "output_len=4", *overrides]
    benchmark = build(typed(chosen, "benchmark"), model=typed(chosen, "model"))
    samples = benchmark.load()
    seen = []
    outcome = benchmark.evaluate(scheduler, samples, lambda result, phase: seen.append((result, phase)))
    return benchmark, samples, seen, outcome_figures(outcome)


def test_poisson_arrivals_follow_the_seeded_schedule(scheduler) -> None:
    benchmark, samples, seen, outcome = run_benchmark(
        scheduler, "benchmark.arrival.process=poisson", "benchmark.arrival.rate=50", "num_prompts=12",
        "benchmark.arrival.warmup_requests=2")
    from context_research.workloads.arrivals import build_process

    planned = build_process(benchmark.arrival, seed=benchmark.workload.seed).offsets(12)
    arrivals = np.array([result.arrival_time for result, _ in seen])
    assert np.allclose(arrivals - arrivals[0], planned - planned[0])
    assert all(result.dispatch_time >= result.arrival_time for result, _ in seen)
    assert [phase for _, phase in seen] == ["warmup"] * 2 + ["measure"] * 10
    assert outcome["arrival_process"] == "poisson" and outcome["request_rate"] == 50
    assert outcome["checks"] == {"full_outputs": True}
    assert outcome["goodput_req_s"] > 0 and outcome["slo_attainment"] == 1.0
    # a synthetic workload's figures and rows are what they were before file sources came
    assert all(outcome[key] is None for key in ("workload_source", "n_skipped_records", "time_scale"))
    assert not {"source_record", "session_id"} & set(seen[0][0].metadata)


def test_all_at_once_goes_through_generate_batch(scheduler) -> None:
    _, samples, seen, outcome = run_benchmark(scheduler, "benchmark.arrival.process=all_at_once",
                                              "num_prompts=6")
    results = [result for result, _ in seen]
    assert [r.request_id for r in results] == [r.request_id for r in samples.requests]
    assert [r.metadata["batch_size"] for r in results] == [4, 4, 4, 4, 2, 2]  # max_batch_size=4
    assert len({r.arrival_time for r in results}) == 1
    assert results[4].dispatch_time > results[0].dispatch_time  # the second batch queued: queue_wait > 0
    assert outcome["peak_concurrency"] == 6 and outcome["n_sent"] == 6


def test_gamma_arrivals_with_varied_lengths_and_a_shared_prefix(scheduler) -> None:
    _, samples, seen, outcome = run_benchmark(
        scheduler, "benchmark.arrival.process=gamma", "benchmark.arrival.rate=80", "benchmark.arrival.burstiness=0.5",
        "num_prompts=8", "benchmark.workload.prompt_len.distribution=uniform", "benchmark.workload.prompt_len.low=8",
        "benchmark.workload.prompt_len.high=20", "benchmark.workload.shared_prefix_len=6")
    assert {len(r.prompt_token_ids) for r in samples.requests} != {12}
    assert [result.prompt_tokens for result, _ in seen] == [len(r.prompt_token_ids) for r in samples.requests]
    assert outcome["burstiness"] == 0.5 and outcome["checks"]["full_outputs"]


def test_sharegpt_sessions_through_the_benchmark(scheduler, tmp_path) -> None:
    from tests.benchmarks.capability.conftest import build_tokenizer
    from tests.workloads.conftest import conversation

    tokenizer = build_tokenizer(tmp_path / "tokenizer")
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([conversation(i, turns=2 + i % 2) for i in range(4)]), encoding="utf-8")
    benchmark, samples, seen, outcome = run_benchmark(
        scheduler, f"model.tokenizer={tokenizer}", "benchmark.workload.source=sharegpt",
        f"benchmark.workload.path={path}", "benchmark.workload.fixed_output_len=4", "num_prompts=4",
        "benchmark.arrival.process=sessions", "concurrency=2", "benchmark.arrival.think_time.mean_s=0.01",
        "benchmark.arrival.warmup_requests=1")
    results = [result for result, _ in seen]
    assert len(results) == len(samples.requests) == 2 + 3 + 2 + 3
    assert [phase for _, phase in seen] == ["warmup"] + ["measure"] * 9
    turns = {}
    for result in results:
        turns.setdefault(result.metadata["session_id"], []).append((result.metadata["turn"], result.prompt_tokens))
    for session in turns.values():  # every turn's prompt is longer than the one before
        assert [turn for turn, _ in session] == list(range(1, len(session) + 1))
        assert all(a < b for (_, a), (_, b) in zip(session, session[1:]))
    assert outcome["arrival_process"] == "sessions" and outcome["concurrency"] == 2
    assert outcome["n_sessions"] == 4 and outcome["turns_per_session_mean"] == 2.5
    assert 0 < outcome["session_p50_s"] <= outcome["session_p95_s"]
    assert outcome["workload_source"] == "sharegpt" and outcome["n_skipped_records"] == 0
    assert outcome["think_time"] == "fixed" and outcome["think_time_mean_s"] == 0.01
    assert outcome["checks"] == {"full_outputs": True}


def test_mooncake_trace_replay_through_launch(run_launch, tmp_path) -> None:
    records = [{"timestamp": t, "input_length": n, "output_length": m, "hash_ids": h} for t, n, m, h in [
        (0, 600, 4, [0, 1]), (0, 1100, 3, [0, 1, 2]), (40, 300, 2, [0]), (90, 5000, 8, list(range(10, 20))),
        (150, 700, 5, [0, 3])]]
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    process, root = run_launch("benchmark=throughput", "benchmark.workload.source=mooncake",
                               f"benchmark.workload.path={trace}", "benchmark.arrival.process=trace",
                               "benchmark.arrival.time_scale=2.0", "num_prompts=10", "serving.device=cpu")
    assert process.returncode == 0, process.stderr[-3000:]
    [manifest] = manifests(root / "run")
    assert manifest["status"] == "completed"
    summary = read_summary(manifest["_dir"])
    assert summary["passed"] and summary["n_requests"] == 4 and summary["n_skipped_records"] == 1  # 5000 > 4096
    assert (summary["arrival_process"], summary["time_scale"], summary["workload_source"]) == ("trace", 2.0, "mooncake")
    rows = pd.read_parquet(Path(manifest["_dir"]) / "requests.parquet")
    assert rows["source_record"].tolist() == [1, 2, 3, 5]
    assert rows["prompt_tokens"].tolist() == [600, 1100, 300, 700]
    assert rows["completion_tokens"].tolist() == [4, 3, 2, 5]
    offsets = (rows["arrival_s"] - rows["arrival_s"].iloc[0]).to_numpy()
    np.testing.assert_allclose(offsets, [0.0, 0.0, 0.08, 0.3], atol=1e-6)  # the trace's ms, doubled
    assert (rows["queue_wait_ms"] >= 0).all()


def test_a_bad_trace_fails_the_job_in_one_line_before_any_engine_starts(run_launch, tmp_path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(json.dumps({"timestamp": 0, "input_length": 600, "output_length": 4, "hash_ids": [0]}) + "\n",
                     encoding="utf-8")
    process, root = run_launch("benchmark=throughput", "benchmark.workload.source=mooncake",
                               f"benchmark.workload.path={trace}", "benchmark.arrival.process=trace")
    assert process.returncode == 1
    line = f"{trace}: record 1: hash_ids: 1 ids, but input_length 600 spans 2 blocks of 512 tokens"
    assert f"error: job failed: WorkloadFileError: {line}" in process.stderr
    [manifest] = manifests(root / "run")
    assert manifest["status"] == "failed" and manifest["engine_key"] is None  # no engine was built


def test_e2_sweep_on_cpu_leaves_completed_records(run_launch) -> None:
    process, root = run_launch("-m", "experiment=e2", "serving=hf", "serving.device=cpu",
                               "concurrency=1,4", "prompt_len=32", "output_len=8")
    assert process.returncode == 0, process.stderr[-3000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed", "completed"]
    for manifest, concurrency in zip(records, (1, 4)):
        summary = read_summary(Path(manifest["_dir"]))
        missing = [key for key in LOAD_FIELDS if key not in summary]
        assert not missing, missing
        assert summary["concurrency"] == concurrency and summary["prompt_len"] == 32
        ramp = concurrency // 2  # ramp-up and drain, each half a round
        assert summary["passed"] and summary["n_requests"] == 16 - 2 * ramp
        assert 1 <= summary["peak_concurrency"] <= concurrency
        assert summary["kv_load"] is None  # the HF engine reports no KV capacity
        requests = pd.read_parquet(f"{manifest['_dir']}/requests.parquet")
        assert requests["phase"].value_counts().to_dict() == {
            "measure": 16 - 2 * ramp, **({"warmup": ramp, "cooldown": ramp} if ramp else {})}
        assert (requests["queue_wait_ms"] >= 0).all()


@pytest.mark.gpu
def test_e2_sweep_on_vllm_reports_the_kv_load(run_launch) -> None:
    from tests.serving.test_vllm_gpu import TINY_VLLM

    process, root = run_launch("-m", "experiment=e2", "concurrency=1,8", "prompt_len=256", "output_len=32",
                               *TINY_VLLM, timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed", "completed"]
    for manifest, concurrency in zip(records, (1, 8)):
        summary = read_summary(Path(manifest["_dir"]))
        assert summary["concurrency"] == concurrency and summary["passed"]
        assert summary["kv_capacity_tokens"] == manifest["engines"]["aggregated"]["kv_capacity_tokens"] > 0
        assert 0 < summary["kv_load"] <= summary["kv_load_peak"]
        assert summary["peak_concurrency"] == concurrency  # AsyncLLM: every request in flight at once
        assert summary["num_preemptions"] == 0  # a tiny load fits the cache
        requests = pd.read_parquet(Path(manifest["_dir"]) / "requests.parquet")
        assert (requests["num_cached_tokens"] == 0).all()
