"""The MetricCollector interface."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class MetricCollector(Protocol):
    """Started before the measured phase, stopped after it; `snapshot` gives its summary figures.

    Collectors that account per request also take `observe(result, phase)`; collectors that sample
    over time also give `timeseries()` (a DataFrame written to timeseries/<name>.parquet).
    Collectors that read the engines get them through `bind_engines(engines)` before `start`;
    `derive(summary)` adds figures that combine other collectors' (called once the summary is whole).
    """

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...
