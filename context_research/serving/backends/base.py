"""The serving interfaces every engine implements (DESIGN.md, Interfaces).

All times are `time.perf_counter()` seconds: one monotonic clock for the harness, the engines
and the collectors (vLLM's engine timestamps use the same clock on Linux).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ServingBackend(Protocol):
    """An engine: started once, reused across the jobs that share its configuration.

    Besides the blocking `generate`, engines serve load through `generate_async` (streamed,
    many requests in flight; awaited on the process-wide loop of `serving.event_loop`) and
    `generate_batch` (an offline batch submitted all at once).
    """

    engine_key: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def warmup(self) -> None: ...

    def prefill(self, request: GenerationRequest) -> GenerationResult: ...

    def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def generate_async(self, request: GenerationRequest) -> GenerationResult: ...

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...

    def prompt_logprobs(self, request: GenerationRequest) -> GenerationResult:
        """Score the prompt (perplexity): a prefill with one output token whose
        `metadata["prompt_logprobs"]` lists, for each prompt token i, the natural-log probability of
        token i given tokens < i (None for i = 0), in prompt order. vLLM: SamplingParams(max_tokens=1,
        prompt_logprobs=0, temperature=0) and, per position, RequestOutput.prompt_logprobs[i][ids[i]].logprob."""
        ...

    def describe(self) -> dict[str, Any]: ...
