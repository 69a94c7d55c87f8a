"""The BenchmarkTask interface and the observer a benchmark reports each finished request to."""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from context_research.requests import GenerationResult

# observe(result, phase): phase is "warmup" or "measure"; warm-up rows never enter the figures
Observer = Callable[[GenerationResult, str], None]


@runtime_checkable
class BenchmarkTask(Protocol):
    name: str

    def load(self, split: str = "test") -> Any:
        """The samples (for systems benchmarks: the synthetic requests)."""
        ...

    def evaluate(self, backend: Any, samples: Any, observe: Observer) -> dict[str, Any]:
        """Run the samples through `backend` (a scheduler); return summary figures and checks."""
        ...
