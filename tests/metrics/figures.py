"""The metrics' sections as one flat dict of metric names, as the report reads a summary."""

from __future__ import annotations

from typing import Any

import pandas as pd

from context_research.metrics.latency import PERCENTILES, summarize
from context_research.metrics.load import load_figures, window_throughput
from context_research.metrics.schema import LoadSection, Summary


def latency_figures(rows: pd.DataFrame, percentiles=PERCENTILES) -> dict[str, Any]:
    """What the latency collector puts in a summary: distributions and window throughput."""
    return Summary().add(summarize(rows, percentiles), window_throughput(rows)).columns()


def load_summary(rows: pd.DataFrame, slo: Any, kv_capacity_tokens: float | None) -> dict[str, Any]:
    """What a load run's summary holds: window throughput, load and SLO figures."""
    load, slo_section = load_figures(rows, slo, kv_capacity_tokens, LoadSection())
    return Summary().add(window_throughput(rows), load, slo_section).columns()
