"""Arrival processes: when each request of a load run is sent, and the driver that sends it.

    closed       N requests in flight; the next is sent the moment one finishes
    poisson      open loop: exponential inter-arrival times, mean 1/rate
    gamma        open loop: gamma inter-arrival times of shape `burstiness` and mean 1/rate, so the
                 coefficient of variation is 1/sqrt(burstiness) (1 = Poisson, < 1 burstier)
    all_at_once  every request at once, as one offline batch (`generate_batch`)

Streamed processes send through `target.generate_async` on the process-wide event loop (never
`asyncio.run` per job: vLLM's AsyncLLM is bound to its first loop). Every request's `arrival_time`
is when the workload says it arrives (open loop: its planned time, from a seeded schedule; closed
loop and batch: the moment it is sent); its dispatch is stamped by the engine, so queue_wait =
dispatch - arrival shows any lag of the harness or the engine. A run ends after the last request,
or, with `duration_s`, when no request is left whose arrival falls inside the duration; requests
in flight then finish. Results come back in the order the requests were sent.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving import event_loop

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
        return failed_result(request, error)
    if result.arrival_time is None:
        result.arrival_time = request.arrival_time
    return result


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
        return event_loop.run(self._drive(requests[:len(offsets)], offsets, target))

    async def _drive(self, requests, offsets, target):
        start = time.perf_counter()
        sent = []
        for request, offset in zip(requests, offsets):
            delay = start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            request.arrival_time = start + float(offset)
            sent.append(asyncio.ensure_future(_send(target, request)))
        return list(await asyncio.gather(*sent))


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
        for result in results:
            if result.arrival_time is None:
                result.arrival_time = now
        return results


def build_process(arrival: Any, seed: int = 0) -> ClosedLoop | OpenLoop | AllAtOnce:
    """The arrival process an `ArrivalConfig` describes."""
    if arrival.process == "closed":
        return ClosedLoop(concurrency=arrival.concurrency)
    if arrival.process == "poisson":
        return OpenLoop(rate=arrival.rate, burstiness=1.0, seed=seed, name="poisson")
    if arrival.process == "gamma":
        return OpenLoop(rate=arrival.rate, burstiness=arrival.burstiness, seed=seed, name="gamma")
    if arrival.process == "all_at_once":
        return AllAtOnce()
    raise ValueError(f"process={arrival.process!r}: allowed: closed, poisson, gamma, all_at_once")

