"""Arrival processes: when each request of a load run is sent, and the driver that sends it.

    closed       N requests in flight; the next is sent the moment one finishes
    poisson      open loop: exponential inter-arrival times, mean 1/rate
    gamma        open loop: gamma inter-arrival times of shape `burstiness` and mean 1/rate, so the
                 coefficient of variation is 1/sqrt(burstiness) (1 = Poisson, < 1 burstier)
    all_at_once  every request at once, as one offline batch (`generate_batch`)
    trace        open loop at the workload's own timestamps (a trace's), gaps scaled by `time_scale`
    sessions     multi-turn sessions, `concurrency` at once: each turn is sent a think time after the
                 reply to the one before arrived, with the conversation so far as its prompt

Streamed processes send through `target.generate_async` on the process-wide event loop (never
`asyncio.run` per job: vLLM's AsyncLLM is bound to its first loop). Every request's `arrival_time`
is when the workload says it arrives (open loop: its planned time, from a seeded schedule; closed
loop and batch: the moment it is sent); its dispatch is stamped by the engine, so queue_wait =
dispatch - arrival shows any lag of the harness or the engine (sessions: a turn arrives when its
think time is over). A run ends after the last request, or, with `duration_s`, when no request is
left whose arrival falls inside the duration; requests in flight then finish. Results come back in
the order the requests were sent, each with its request's labels (`workload.LABELS`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving import event_loop
from context_research.workloads.workload import LABELS, labelled

SPIN_S = 1e-3  # how long before a planned send the driver stops sleeping and yields to the loop instead


class LoadTarget(Protocol):
    """What a load is sent to: a scheduler (or an engine)."""

    async def generate_async(self, request: GenerationRequest) -> GenerationResult: ...

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...


def failed_result(request: GenerationRequest, error: BaseException) -> GenerationResult:
    """The result row of a request the engine raised on: no tokens, the error kept."""
    sent = request.arrival_time if request.arrival_time is not None else time.perf_counter()
    prompt_tokens = len(request.prompt_token_ids) if request.prompt_token_ids is not None else 0
    return GenerationResult(
        request_id=request.request_id, text="", prompt_tokens=prompt_tokens, completion_tokens=0,
        output_token_ids=[], dispatch_time=sent, first_token_time=math.nan, last_token_time=math.nan,
        token_times=[], arrival_time=request.arrival_time, error=f"{type(error).__name__}: {error}")


async def _send(target: LoadTarget, request: GenerationRequest) -> GenerationResult:
    try:
        result = await target.generate_async(request)
    except Exception as error:  # one failed request is recorded, the run goes on
        return labelled(failed_result(request, error), request)
    if result.arrival_time is None:
        result.arrival_time = request.arrival_time
    return labelled(result, request)


async def _sleep_until(moment: float) -> None:
    """Wait until `time.perf_counter()` reaches `moment`. The loop's timers wake up to a millisecond
    late (epoll's timeout is in milliseconds), so the last `SPIN_S` is waited by yielding to the loop."""
    while (left := moment - time.perf_counter()) > 0:
        await asyncio.sleep(left - SPIN_S if left > SPIN_S else 0)


async def _send_at(requests: list[GenerationRequest], offsets: np.ndarray, target: LoadTarget
                   ) -> list[GenerationResult]:
    """Send each request `offset` seconds after the start, whatever the engine's state; its
    arrival is that planned time."""
    start = time.perf_counter()
    sent = []
    for request, offset in zip(requests, offsets):
        await _sleep_until(start + offset)
        request.arrival_time = start + float(offset)
        sent.append(asyncio.ensure_future(_send(target, request)))
    return list(await asyncio.gather(*sent))


@dataclass
class ClosedLoop:
    """`concurrency` clients, each sending its next request as soon as its last one finished."""

    concurrency: int
    name: str = "closed"

    def run(self, requests: list[GenerationRequest], target: LoadTarget,
            duration_s: float | None = None) -> list[GenerationResult]:
        return event_loop.run(self._drive(requests, target, duration_s))

    async def _drive(self, requests, target, duration_s):
        start = time.perf_counter()
        results: list[GenerationResult | None] = [None] * len(requests)
        cursor = iter(range(len(requests)))

        async def client() -> None:
            for index in cursor:  # the shared iterator hands each index to one client
                now = time.perf_counter()
                if duration_s is not None and now - start >= duration_s:
                    return
                requests[index].arrival_time = now
                results[index] = await _send(target, requests[index])

        await asyncio.gather(*(client() for _ in range(min(self.concurrency, len(requests)))))
        return [r for r in results if r is not None]


@dataclass
class OpenLoop:
    """Requests arrive at planned times, whatever the engine's state: gamma inter-arrival times of
    shape `burstiness` and mean 1/`rate` (burstiness 1 is a Poisson process)."""

    rate: float
    burstiness: float = 1.0
    seed: int = 0
    name: str = "poisson"

    def inter_arrivals(self, count: int) -> np.ndarray:
        """`count` seeded gaps in seconds (the first request arrives after the first gap)."""
        rng = np.random.default_rng(self.seed)
        if self.burstiness == 1.0:
            return rng.exponential(1.0 / self.rate, size=count)
        return rng.gamma(shape=self.burstiness, scale=1.0 / (self.rate * self.burstiness), size=count)

    def offsets(self, count: int, duration_s: float | None = None) -> np.ndarray:
        """Arrival times in seconds from the start of the run, cut at `duration_s`."""
        offsets = np.cumsum(self.inter_arrivals(count))
        return offsets if duration_s is None else offsets[offsets < duration_s]

    def run(self, requests: list[GenerationRequest], target: LoadTarget,
            duration_s: float | None = None) -> list[GenerationResult]:
        offsets = self.offsets(len(requests), duration_s)
        return event_loop.run(_send_at(requests[:len(offsets)], offsets, target))


@dataclass
class TraceReplay:
    """Requests arrive at their own times: `offsets_s` (each request's timestamp minus the first's),
    multiplied by `time_scale` (0.5 replays the trace twice as fast)."""

    offsets_s: np.ndarray = field(repr=False)
    time_scale: float = 1.0
    name: str = "trace"

    def offsets(self, duration_s: float | None = None) -> np.ndarray:
        """The scaled arrival times in seconds from the start of the run, cut at `duration_s`."""
        offsets = np.asarray(self.offsets_s, dtype=np.float64) * self.time_scale
        return offsets if duration_s is None else offsets[offsets < duration_s]

    def run(self, requests: list[GenerationRequest], target: LoadTarget,
            duration_s: float | None = None) -> list[GenerationResult]:
        if len(self.offsets_s) != len(requests):
            raise ValueError(f"a trace replay needs one timestamp per request: {len(self.offsets_s)} for "
                             f"{len(requests)} requests")
        offsets = self.offsets(duration_s)
        return event_loop.run(_send_at(requests[:len(offsets)], offsets, target))


def think_time_s(spec: Any, rng: np.random.Generator) -> float:
    """One pause of a user between a reply and their next message: `fixed` (mean_s), `uniform`
    (low_s..high_s) or `exponential` (mean mean_s)."""
    if spec.distribution == "fixed":
        return float(spec.mean_s)
    if spec.distribution == "uniform":
        return float(rng.uniform(spec.low_s, spec.high_s))
    if spec.distribution == "exponential":
        return float(rng.exponential(spec.mean_s))
    raise ValueError(f"distribution={spec.distribution!r}: allowed: fixed, uniform, exponential")


def sessions_of(requests: list[GenerationRequest]) -> list[list[GenerationRequest]]:
    """The turns of each session (its `session_id` label), sessions in first-seen order."""
    grouped: dict[str, list[GenerationRequest]] = {}
    for request in requests:
        grouped.setdefault(request.metadata[LABELS]["session_id"], []).append(request)
    return list(grouped.values())


@dataclass
class SessionLoop:
    """Multi-turn sessions, `concurrency` at once: a new session starts when one ends. Turn k+1 is
    sent a think time (drawn for each session from a generator seeded by (seed, session index))
    after the reply to turn k arrived; its prompt is turn k's prompt, the reply's token ids, then
    turn k+1's own tokens. The requests are the turns, holding only the tokens each adds. A session
    ends at a failed turn (no reply to build on)."""

    concurrency: int
    think_time: Any
    seed: int = 0
    name: str = "sessions"

    def run(self, requests: list[GenerationRequest], target: LoadTarget,
            duration_s: float | None = None) -> list[GenerationResult]:
        return event_loop.run(self._drive(sessions_of(requests), target, duration_s))

    async def _drive(self, sessions, target, duration_s):
        start = time.perf_counter()
        results: list[GenerationResult] = []
        cursor = iter(enumerate(sessions))

        def over(moment: float) -> bool:
            return duration_s is not None and moment - start >= duration_s

        async def user() -> None:
            for index, turns in cursor:  # the shared iterator hands each session to one user
                rng = np.random.default_rng([self.seed, index])
                history: list[int] = []
                for number, turn in enumerate(turns):
                    pause = think_time_s(self.think_time, rng) if number else 0.0
                    arrival = time.perf_counter() + pause
                    if over(arrival):
                        break
                    if pause:
                        await asyncio.sleep(pause)
                    request = dataclasses.replace(turn, prompt_token_ids=history + turn.prompt_token_ids,
                                                  arrival_time=arrival)
                    result = await _send(target, request)
                    results.append(result)
                    if result.error is not None:
                        break
                    history = request.prompt_token_ids + list(result.output_token_ids)

        await asyncio.gather(*(user() for _ in range(min(self.concurrency, len(sessions)))))
        return sorted(results, key=lambda result: result.arrival_time)


@dataclass
class AllAtOnce:
    """Every request arrives at the same moment and goes to the engine as one offline batch."""

    name: str = "all_at_once"

    def run(self, requests: list[GenerationRequest], target: LoadTarget,
            duration_s: float | None = None) -> list[GenerationResult]:
        if duration_s is not None:
            raise ValueError("an offline batch is bounded by its request count, not a duration")
        now = time.perf_counter()
        for request in requests:
            request.arrival_time = now
        results = target.generate_batch(requests)
        for result, request in zip(results, requests):
            if result.arrival_time is None:
                result.arrival_time = now
            labelled(result, request)
        return results


def build_process(arrival: Any, seed: int = 0, offsets_s: np.ndarray | None = None
                  ) -> ClosedLoop | OpenLoop | AllAtOnce | TraceReplay | SessionLoop:
    """The arrival process an `ArrivalConfig` describes; `offsets_s`: the workload's own arrival
    times (a trace's), which `trace` replays."""
    if arrival.process == "closed":
        return ClosedLoop(concurrency=arrival.concurrency)
    if arrival.process == "poisson":
        return OpenLoop(rate=arrival.rate, burstiness=1.0, seed=seed, name="poisson")
    if arrival.process == "gamma":
        return OpenLoop(rate=arrival.rate, burstiness=arrival.burstiness, seed=seed, name="gamma")
    if arrival.process == "all_at_once":
        return AllAtOnce()
    if arrival.process == "trace":
        if offsets_s is None:
            raise ValueError("process='trace' replays a workload's timestamps: use a trace source")
        return TraceReplay(offsets_s=offsets_s, time_scale=arrival.time_scale)
    if arrival.process == "sessions":
        return SessionLoop(concurrency=arrival.concurrency, think_time=arrival.think_time, seed=seed)
    raise ValueError(f"process={arrival.process!r}: allowed: closed, poisson, gamma, all_at_once, trace, sessions")

