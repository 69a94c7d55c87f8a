"""The request and result types every layer shares: what a workload asks of an engine and what
the engine gives back, with the per-request timeline every latency metric is computed from.

All times are `time.perf_counter()` seconds: one monotonic clock for the harness, the engines and
the collectors (vLLM's engine timestamps use the same clock on Linux).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
