"""Aggregated scheduling: prefill and decode of every request on one pool."""

from __future__ import annotations

from typing import Any

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.base import ServingBackend

POOL = "aggregated"


class AggregatedScheduler:
    """One pool, one engine; the baseline every disaggregated run is compared with."""

    def __init__(self, name: str = "aggregated") -> None:
        self.name = name
        self.engines: dict[str, ServingBackend] = {}
        self._log: list[dict[str, Any]] = []

    def pools(self) -> dict[str, dict[str, Any]]:
        return {POOL: {}}

    def bind(self, engines: dict[str, ServingBackend]) -> None:
        self.engines = engines

    def route_prefill(self, request: GenerationRequest) -> str:
        self._log.append({"request_id": request.request_id, "phase": "prefill", "pool": POOL})
        return POOL

    def route_decode(self, request_id: str) -> str:
        self._log.append({"request_id": request_id, "phase": "decode", "pool": POOL})
        return POOL

    def route_log(self) -> list[dict[str, Any]]:
        return list(self._log)

    def _route(self, request: GenerationRequest) -> str:
        pool = self.route_prefill(request)
        self.route_decode(request.request_id)
        return pool

    @staticmethod
    def _label(result: GenerationResult, pool: str) -> GenerationResult:
        result.metadata.update(route=f"{pool}->{pool}", prefill_pool=pool, decode_pool=pool)
        return result

    def generate(self, request: GenerationRequest) -> GenerationResult:
        pool = self._route(request)
        return self._label(self.engines[pool].generate(request), pool)

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Streamed, many in flight: await on the process-wide loop (`serving.event_loop`)."""
        pool = self._route(request)
        return self._label(await self.engines[pool].generate_async(request), pool)

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """An offline batch, submitted to the pool's engine all at once."""
        for request in requests:
            self._route(request)
        return [self._label(result, POOL) for result in self.engines[POOL].generate_batch(requests)]

    def prompt_logprobs(self, request: GenerationRequest) -> GenerationResult:
        """Score the prompt on the pool that prefills it (perplexity tasks)."""
        pool = self.route_prefill(request)
        result = self.engines[pool].prompt_logprobs(request)
        result.metadata.update(route=pool, prefill_pool=pool)
        return result
