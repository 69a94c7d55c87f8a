"""The Scheduler interface: which pool runs a request's prefill and which its decode."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.base import ServingBackend


@runtime_checkable
class Scheduler(Protocol):
    name: str

    def pools(self) -> dict[str, dict[str, Any]]:
        """Pool name -> engine-argument overrides for that pool's engine."""
        ...

    def bind(self, engines: dict[str, ServingBackend]) -> None:
        """Attach the started engine of each pool."""
        ...

    def route_prefill(self, request: GenerationRequest) -> str: ...

    def route_decode(self, request_id: str) -> str: ...

    def route_log(self) -> list[dict[str, Any]]: ...

    def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Streamed, many in flight; awaited on the process-wide loop of `serving.event_loop`."""
        ...

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """An offline batch, submitted all at once."""
        ...
