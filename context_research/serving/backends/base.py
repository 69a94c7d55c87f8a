"""The serving interfaces every engine implements (DESIGN.md, Interfaces).

All times are `time.perf_counter()` seconds: one monotonic clock for the harness, the engines
and the collectors (vLLM's engine timestamps use the same clock on Linux).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class GenerationRequest:
    """One request. Synthetic workloads pass `prompt_token_ids`; text tasks pass `prompt`."""

    request_id: str
    max_new_tokens: int
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    # when the workload says the request arrives (perf_counter s); None = when dispatched
    arrival_time: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.prompt_token_ids is None):
            raise ValueError(f"request {self.request_id}: give exactly one of prompt, prompt_token_ids")


@dataclass
class GenerationResult:
    """What an engine returns, with the per-request timeline the metrics are computed from."""

    request_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    output_token_ids: list[int]
    dispatch_time: float
    first_token_time: float
    last_token_time: float
    token_times: list[float]  # arrival of each streamed output (first entry = first token)
    arrival_time: float | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ttft_ms(self) -> float:
        """first_token - dispatch."""
        return (self.first_token_time - self.dispatch_time) * 1e3

    @property
    def tpot_ms(self) -> float:
        """(last_token - first_token) / (output_tokens - 1); NaN for a single output token."""
        if self.completion_tokens < 2:
            return float("nan")
        return (self.last_token_time - self.first_token_time) * 1e3 / (self.completion_tokens - 1)


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
