"""The collector contract: what is measured beside the benchmark while a job runs.

A collector is built as `Collector(config)` from its typed config (one file per collector in
conf/collectors/, composed into `collectors`: adding a collector is adding a file). The job calls,
in order: `set_origin` (the job's clock origin, perf_counter seconds), `bind_engines` (the started
engines by pool), `start`, `observe` for every finished request, `stop`, then `snapshot` (its
summary sections), `requests` and `timeseries` (what it writes to the record), and `derive` once
every collector's sections are in (figures that combine another collector's). Every step but
`snapshot` defaults to nothing.
"""

from __future__ import annotations

import abc
from typing import Any

import pandas as pd

from context_research.metrics.schema import Section, Summary
from context_research.requests import GenerationResult


class MetricCollector(abc.ABC):
    """A collector (see the module doc). Subclasses call `super().__init__(config)`."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.origin = 0.0

    def set_origin(self, origin: float) -> None:
        """The job's clock origin: recorded times are seconds from it."""
        self.origin = origin

    def bind_engines(self, engines: dict[str, Any]) -> None:
        """The job's started engines, by pool, for collectors that read them."""

    def start(self) -> None:
        """The measured phase begins."""

    def observe(self, result: GenerationResult, phase: str) -> None:
        """A request finished (`phase`: warmup, measure or cooldown)."""

    def stop(self) -> None:
        """The measured phase ended (also when it failed or was interrupted)."""

    @abc.abstractmethod
    def snapshot(self) -> list[Section]:
        """The collector's summary sections (None entries are skipped)."""

    def derive(self, summary: Summary) -> list[Section]:
        """Sections that need other collectors' figures, once the summary holds them all."""
        return []

    def requests(self) -> pd.DataFrame | None:
        """One row per request, if this collector keeps them (requests.parquet)."""
        return None

    def timeseries(self) -> pd.DataFrame | None:
        """Samples over time, written to timeseries/<collector>.parquet."""
        return None
