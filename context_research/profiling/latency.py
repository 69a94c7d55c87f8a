"""The latency collector: one row per request (requests.parquet) and, over the measured ones, the
latency distributions, the throughput of the measurement window and, where the engine counts
cached prompt tokens, the prefix-cache hit rate (the definitions are in metrics/latency.py,
metrics/load.py and metrics/prefix_cache.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from context_research.metrics import prefix_cache
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
        return [summarize(rows, self.config.percentiles), window_throughput(rows) if len(rows) else None,
                prefix_cache.summarize(rows)]
