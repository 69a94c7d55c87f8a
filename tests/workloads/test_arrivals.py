"""Arrival processes: statistics of the seeded schedules, and the driver's in-flight bound."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from context_research.requests import GenerationRequest, GenerationResult
from context_research.workloads.arrivals import AllAtOnce, ClosedLoop, OpenLoop
from context_research.workloads.workload import LABELS


class TimedTarget:
    """A stand-in engine for driver tests: each request takes a seeded random time; the target
    counts requests in flight and stamps dispatch and completion like an engine does."""

    def __init__(self, seed: int = 0, low_s: float = 0.001, high_s: float = 0.004) -> None:
        self.rng = np.random.default_rng(seed)
        self.low_s, self.high_s = low_s, high_s
        self.in_flight = 0
        self.peak = 0
        self.batches: list[list[str]] = []

    def _result(self, request: GenerationRequest, dispatch: float) -> GenerationResult:
        done = time.perf_counter()
        return GenerationResult(request_id=request.request_id, text="", prompt_tokens=1, completion_tokens=1,
                                output_token_ids=[0], dispatch_time=dispatch, first_token_time=done,
                                last_token_time=done, token_times=[done])

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        dispatch = time.perf_counter()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(self.rng.uniform(self.low_s, self.high_s))
        self.in_flight -= 1
        return self._result(request, dispatch)

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append([r.request_id for r in requests])
        dispatch = time.perf_counter()
        return [self._result(r, dispatch) for r in requests]


def requests(count: int) -> list[GenerationRequest]:
    return [GenerationRequest(request_id=f"q{i}", prompt_token_ids=[5], max_new_tokens=1) for i in range(count)]


def test_poisson_mean_inter_arrival_within_5_percent() -> None:
    gaps = OpenLoop(rate=8.0, seed=3).inter_arrivals(2000)
    assert abs(gaps.mean() - 1 / 8.0) / (1 / 8.0) < 0.05
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.08  # exponential: CV 1


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_cv_matches_burstiness(burstiness: float) -> None:
    gaps = OpenLoop(rate=5.0, burstiness=burstiness, seed=1).inter_arrivals(2000)
    assert abs(gaps.mean() - 0.2) / 0.2 < 0.08
    expected_cv = 1 / np.sqrt(burstiness)
    assert abs(gaps.std() / gaps.mean() - expected_cv) / expected_cv < 0.1


def test_open_loop_schedule_is_seeded_and_cut_at_duration() -> None:
    process = OpenLoop(rate=10.0, burstiness=0.5, seed=7)
    assert np.array_equal(process.offsets(100), OpenLoop(rate=10.0, burstiness=0.5, seed=7).offsets(100))
    assert not np.array_equal(process.offsets(100), OpenLoop(rate=10.0, burstiness=0.5, seed=8).offsets(100))
    cut = process.offsets(100, duration_s=2.0)
    assert len(cut) < 100 and cut.max() < 2.0 and np.all(np.diff(cut) > 0)


def test_closed_loop_never_exceeds_concurrency_and_keeps_it_full() -> None:
    target = TimedTarget()
    sent = requests(40)
    results = ClosedLoop(concurrency=4).run(sent, target)
    assert target.peak == 4
    assert [r.request_id for r in results] == [r.request_id for r in sent]
    for result in results:
        assert result.arrival_time is not None and result.arrival_time <= result.dispatch_time
    arrivals = [r.arrival_time for r in results]
    assert arrivals == sorted(arrivals)  # sent in order


def test_closed_loop_stops_sending_after_duration() -> None:
    target = TimedTarget(low_s=0.004, high_s=0.006)
    start = time.perf_counter()
    results = ClosedLoop(concurrency=2).run(requests(200), target, duration_s=0.05)
    assert 2 <= len(results) < 200
    assert max(r.arrival_time for r in results) - start < 0.05 + 0.01
    assert [r.request_id for r in results] == [f"q{i}" for i in range(len(results))]


def test_open_loop_sends_at_the_planned_times() -> None:
    process = OpenLoop(rate=400.0, seed=2)
    target = TimedTarget(low_s=0.0005, high_s=0.001)
    results = process.run(requests(60), target)
    arrivals = np.array([r.arrival_time for r in results])
    assert np.allclose(np.diff(arrivals), np.diff(process.offsets(60)))
    assert all(r.dispatch_time >= r.arrival_time for r in results)  # never sent before it arrives
    assert target.peak > 1  # open loop: arrivals do not wait for completions


def test_all_at_once_is_one_batch_with_one_arrival() -> None:
    target = TimedTarget()
    results = AllAtOnce().run(requests(5), target)
    assert target.batches == [[f"q{i}" for i in range(5)]]
    assert len({r.arrival_time for r in results}) == 1
    with pytest.raises(ValueError):
        AllAtOnce().run(requests(2), target, duration_s=1.0)


class FailingTarget(TimedTarget):
    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        if request.request_id == "q1":
            raise RuntimeError("engine fell over")
        return await super().generate_async(request)


def test_every_process_puts_the_request_labels_on_its_result_row() -> None:
    def labelled_requests(count: int) -> list[GenerationRequest]:
        sent = requests(count)
        for index, request in enumerate(sent):
            request.metadata[LABELS] = {"source_record": index + 1}
        return sent

    closed = ClosedLoop(concurrency=2).run(labelled_requests(3), FailingTarget())
    assert [r.metadata["source_record"] for r in closed] == [1, 2, 3]
    assert closed[1].error == "RuntimeError: engine fell over"  # a failed request keeps its labels too
    batch = AllAtOnce().run(labelled_requests(3), TimedTarget())
    assert [r.metadata["source_record"] for r in batch] == [1, 2, 3]
    assert "source_record" not in ClosedLoop(concurrency=1).run(requests(1), TimedTarget())[0].metadata
