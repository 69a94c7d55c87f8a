"""The request and result types every layer shares: what a workload asks of an engine and what
the engine gives back, with the per-request timeline every latency metric is computed from.

All times are `time.perf_counter()` seconds: one monotonic clock for the harness, the engines and
the collectors (vLLM's engine timestamps use the same clock on Linux).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class GenerationRequest:
    """One request. Synthetic workloads pass `prompt_token_ids`; text tasks pass `prompt`.
    `ignore_eos`: generate all `max_new_tokens` whatever the model samples (systems benchmarks)."""

    request_id: str
    max_new_tokens: int
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False
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

    @classmethod
    def from_outputs(cls, request: GenerationRequest, prompt_tokens: int, token_ids: Sequence[int],
                     token_times: Sequence[float], dispatch_time: float, text: str = "",
                     metadata: dict[str, Any] | None = None,
                     first_last: tuple[float, float] | None = None) -> "GenerationResult":
        """A finished request: its tokens, each output's arrival time (the first output carries the
        first token), and where no output was streamed the engine's own first and last token times."""
        first, last = first_last or (token_times[0], token_times[-1])
        return cls(request_id=request.request_id, text=text, prompt_tokens=prompt_tokens,
                   completion_tokens=len(token_ids), output_token_ids=list(token_ids), dispatch_time=dispatch_time,
                   first_token_time=first, last_token_time=last, token_times=list(token_times),
                   arrival_time=request.arrival_time, metadata=dict(metadata or {}))

    @classmethod
    def failed(cls, request: GenerationRequest, error: BaseException | str,
               dispatch_time: float | None = None) -> "GenerationResult":
        """A request the engine could not serve: no tokens, the error kept (one line)."""
        sent = dispatch_time if dispatch_time is not None else (
            request.arrival_time if request.arrival_time is not None else time.perf_counter())
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        prompt_tokens = len(request.prompt_token_ids) if request.prompt_token_ids is not None else 0
        return cls(request_id=request.request_id, text="", prompt_tokens=prompt_tokens, completion_tokens=0,
                   output_token_ids=[], dispatch_time=sent, first_token_time=math.nan, last_token_time=math.nan,
                   token_times=[], arrival_time=request.arrival_time, error=message)

    @property
    def ttft_ms(self) -> float:
        """first_token - dispatch."""
        return (self.first_token_time - self.dispatch_time) * 1e3

    @property
    def tpot_ms(self) -> float:
        """(last_token - first_token) / (output_tokens - 1); NaN for a single output token."""
        if self.completion_tokens < 2:
            return math.nan
        return (self.last_token_time - self.first_token_time) * 1e3 / (self.completion_tokens - 1)

    @property
    def e2e_ms(self) -> float:
        """last_token - dispatch."""
        return (self.last_token_time - self.dispatch_time) * 1e3
