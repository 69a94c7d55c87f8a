"""HF engine under load: batched greedy outputs equal unbatched ones (float32), each request
keeps its own timeline, and the async worker batches what is queued; the aggregated scheduler
passes both entry points through with its route log."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from context_research.requests import GenerationRequest
from context_research.serving import event_loop
from tests.conftest import aggregated, hf_engine

# (prompt length, output budget): ragged prompts, ragged outputs, a one-token output
SHAPES = [(5, 4), (17, 2), (9, 5), (30, 3), (12, 1)]


@pytest.fixture(scope="module")
def engine(model_cache):
    backend = hf_engine(model_cache, ["serving.max_batch_size=3", "serving.dtype=float32"])
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def unbatched(engine) -> dict[str, list[int]]:
    """Each request's greedy output run alone."""
    return {r.request_id: engine.generate(r).output_token_ids for r in make_requests()}


def make_requests(ignore_eos: bool = True) -> list[GenerationRequest]:
    rng = np.random.default_rng(0)
    return [GenerationRequest(request_id=f"r{i}", prompt_token_ids=rng.integers(3, 8000, size=n).tolist(),
                              max_new_tokens=m, ignore_eos=ignore_eos)
            for i, (n, m) in enumerate(SHAPES)]


def test_batched_greedy_outputs_equal_unbatched(engine, unbatched) -> None:
    batched = engine.generate_batch(make_requests())
    assert [r.request_id for r in batched] == list(unbatched)
    assert [r.output_token_ids for r in batched] == list(unbatched.values())
    assert [r.completion_tokens for r in batched] == [m for _, m in SHAPES]
    assert [r.metadata["batch_size"] for r in batched] == [3, 3, 3, 2, 2]  # max_batch_size=3


def test_each_request_in_a_batch_keeps_its_own_timeline(engine) -> None:
    results = engine.generate_batch(make_requests())
    first_batch = results[:3]
    assert len({r.dispatch_time for r in first_batch}) == 1  # one batch, one dispatch
    for result in results:
        assert len(result.token_times) == result.completion_tokens
        assert result.dispatch_time < result.first_token_time == result.token_times[0]
        assert result.last_token_time == result.token_times[-1]
        assert np.all(np.diff(result.token_times) > 0)
    # r1 stops after 2 tokens while r2 runs to 5 in the same batch
    assert first_batch[1].last_token_time < first_batch[2].last_token_time
    assert results[3].dispatch_time >= max(r.last_token_time for r in first_batch)  # the next batch


def test_async_worker_batches_queued_requests(engine, unbatched) -> None:
    async def all_in_flight():
        return await asyncio.gather(*(engine.generate_async(r) for r in make_requests()))

    results = event_loop.run(all_in_flight())
    assert {r.request_id: r.output_token_ids for r in results} == unbatched
    assert max(r.metadata["batch_size"] for r in results) > 1
    assert all(r.metadata["batch_size"] <= 3 for r in results)


def test_aggregated_scheduler_passes_batch_and_async_through(engine) -> None:
    scheduler = aggregated(engine)
    batch = scheduler.generate_batch(make_requests()[:2])
    streamed = event_loop.run(scheduler.generate_async(make_requests()[2]))
    assert [r.request_id for r in [*batch, streamed]] == ["r0", "r1", "r2"]
    assert (scheduler.route_table()["route"] == "aggregated->aggregated").all()
    routed = [(entry["request_id"], entry["phase"]) for entry in scheduler.route_log()]
    assert routed == [("r0", "prefill"), ("r0", "decode"), ("r1", "prefill"), ("r1", "decode"),
                      ("r2", "prefill"), ("r2", "decode")]
