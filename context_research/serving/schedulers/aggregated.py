"""Aggregated scheduling: prefill and decode of every request on one pool."""

from __future__ import annotations

from typing import Any

from context_research.serving.backends.base import GenerationRequest, GenerationResult, ServingBackend

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

    def generate(self, request: GenerationRequest) -> GenerationResult:
        pool = self.route_prefill(request)
        self.route_decode(request.request_id)
        result = self.engines[pool].generate(request)
        result.metadata.update(route=f"{pool}->{pool}", prefill_pool=pool, decode_pool=pool)
        return result
