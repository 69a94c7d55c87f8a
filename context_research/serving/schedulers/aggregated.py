"""Aggregated scheduling: prefill and decode of every request on one pool."""

from __future__ import annotations

from typing import Any

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.schedulers.base import Scheduler

POOL = "aggregated"


class AggregatedScheduler(Scheduler):
    """One pool, one engine; the baseline every disaggregated run is compared with."""

    def pools(self) -> dict[str, dict[str, Any]]:
        return {POOL: {}}

    def route_prefill(self, request: GenerationRequest) -> str:
        return self._route(request.request_id, "prefill", POOL)

    def route_decode(self, request_id: str) -> str:
        return self._route(request_id, "decode", POOL)

    def _engine_for(self, request: GenerationRequest):
        self.route_prefill(request)
        return self.engines[self.route_decode(request.request_id)]

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self._engine_for(request).generate(request)

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        return await self._engine_for(request).generate_async(request)

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        for request in requests:
            self._engine_for(request)
        return self.engines[POOL].generate_batch(requests)
