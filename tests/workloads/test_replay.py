"""Trace replay on the tiny HF engine: each request's arrival is its own timestamp (scaled by
time_scale) and it is sent then, never early and within 2 ms. The machine's CPUs are shared, so some
sends come late by a descheduling (4 ms seen under load): the test holds the median send lag to 2 ms
(it is ~0.1 ms). With the engine idle at each arrival, queue_wait (dispatch - arrival) is the hand-off
to the HF worker thread: ~0.2 ms on a quiet machine, a few ms on a loaded one."""

from __future__ import annotations

import time

import numpy as np
import pytest
from tests.workloads.conftest import workload_config, write_jsonl

from context_research.workloads.arrivals import TraceReplay
from context_research.workloads.traces import mooncake_requests

# two requests at once, then gaps long enough for the engine to be idle at each arrival (a busy HF
# engine holds the GIL the sending loop needs: up to the 5 ms switch interval of extra lag)
TIMESTAMPS_MS = [0, 0] + [250 * k for k in range(1, 7)]


class SendClock:
    """Passes requests to the real scheduler, noting when the harness handed each one over."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.sent: dict[str, float] = {}

    async def generate_async(self, request):
        self.sent[request.request_id] = time.perf_counter()
        return await self.scheduler.generate_async(request)

    def generate_batch(self, requests):
        raise AssertionError("a trace replay streams its requests")


@pytest.fixture
def trace(tmp_path):
    records = [{"timestamp": t, "input_length": 16, "output_length": 2, "hash_ids": [i]}
               for i, t in enumerate(TIMESTAMPS_MS)]
    path = write_jsonl(tmp_path / "trace.jsonl", records)
    return mooncake_requests(workload_config("mooncake", path, "num_prompts=20"), (3, 8192), 4096)


@pytest.mark.parametrize("time_scale", [1.0, 0.5])
def test_requests_are_sent_at_their_scaled_timestamps(scheduler, trace, time_scale) -> None:
    scheduler.generate(trace.requests[0])  # the engine warm, as after a run's warm-up
    clock = SendClock(scheduler)
    start = time.perf_counter()
    results = TraceReplay(trace.offsets_s, time_scale=time_scale).run(trace.requests, clock)
    planned = np.array(TIMESTAMPS_MS) / 1e3 * time_scale
    arrivals = np.array([r.arrival_time for r in results])
    np.testing.assert_allclose(arrivals - arrivals[0], planned, atol=1e-9)  # arrival = the planned time
    assert arrivals[0] >= start
    lag = np.array([clock.sent[r.request_id] for r in results]) - arrivals
    assert lag.min() >= 0 and np.median(lag) < 2e-3, lag
    queue_wait = np.array([r.dispatch_time - r.arrival_time for r in results])
    assert queue_wait.min() >= 0 and np.median(queue_wait) < 10e-3, queue_wait  # no request queued behind another
    assert all(r.error is None and r.completion_tokens == 2 for r in results)
    assert [r.metadata["source_record"] for r in results] == list(range(1, len(TIMESTAMPS_MS) + 1))


def test_a_duration_cuts_the_replay_at_scaled_time(trace) -> None:
    replay = TraceReplay(trace.offsets_s, time_scale=0.5)
    np.testing.assert_allclose(replay.offsets(duration_s=0.5), [0.0, 0.0, 0.125, 0.25, 0.375])
    with pytest.raises(ValueError, match="one timestamp per request"):
        replay.run(trace.requests[:3], None)
