"""The benchmark contract: what a job runs against its scheduler, and what it reports.

A benchmark is built as `Benchmark(config, model)` from its typed config and the typed model
config. `load(split)` gives its samples (anything with `.requests`, the GenerationRequests it will
send, which the record hashes); `evaluate(scheduler, samples, observe)` sends them through the
scheduler, reports every finished request to `observe(result, phase)` (phase: warmup, measure or
cooldown; only measured requests enter the figures) and returns a `BenchmarkOutcome`: its checks
(all must hold for the job to pass) and its summary sections (metrics/schema.py).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable

from context_research.metrics.schema import Section
from context_research.requests import GenerationResult

# observe(result, phase): phase is "warmup", "measure" or "cooldown"; warm-up rows never enter the figures
Observer = Callable[[GenerationResult, str], None]


@dataclass
class BenchmarkOutcome:
    """What a benchmark adds to the summary: checks that must hold, and sections of figures."""

    checks: dict[str, bool] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)


class BenchmarkTask(abc.ABC):
    """A benchmark (see the module doc). Subclasses call `super().__init__(config, model)`."""

    # its measured requests repeat one measurement (the same kind of request, one at a time), so their
    # spread is noise: a CV above the plan's bar is warned (metrics/measurement_warnings.py)
    alike_requests: bool = False

    def __init__(self, config: Any, model: Any) -> None:
        self.config = config
        self.model = model

    @property
    def name(self) -> str:
        return self.config.name

    @abc.abstractmethod
    def load(self, split: str = "test") -> Any:
        """The samples (for systems benchmarks: the synthetic requests); `.requests` lists them."""

    @abc.abstractmethod
    def evaluate(self, scheduler: Any, samples: Any, observe: Observer) -> BenchmarkOutcome:
        """Run the samples through `scheduler`; return the checks and summary sections."""
