"""The latency collector: one row per request (requests.parquet) and, over the measured ones, the
latency distributions and the throughput of the measurement window (the definitions are in
metrics/latency.py and metrics/load.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from context_research.metrics.latency import request_row, summarize
from context_research.metrics.load import window_throughput
from context_research.metrics.schema import Section
from context_research.profiling.base import MetricCollector
from context_research.requests import GenerationResult


class LatencyCollector(MetricCollector):
    """Keeps one row per request (`observe`) and summarises the measured ones (`snapshot`)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.rows: list[dict[str, Any]] = []

    def observe(self, result: GenerationResult, phase: str) -> None:
        self.rows.append(request_row(result, phase, self.origin))

    def requests(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def snapshot(self) -> list[Section]:
        rows = self.requests()
        return [summarize(rows, self.config.percentiles), window_throughput(rows) if len(rows) else None]
