"""Collector schemas, one per collector (conf/collectors/<name>.yaml extends `schema/collector_<name>`):
what is sampled or accounted while a benchmark runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from context_research.config.errors import require


@dataclass
class LatencyCollectorConfig:
    """Per-request timings (TTFT, TPOT, ITL, E2E, queue wait) and their percentiles."""

    _target_: str = "context_research.profiling.latency.LatencyCollector"
    percentiles: List[float] = field(default_factory=lambda: [50, 90, 95, 99])

    def __post_init__(self) -> None:
        bad = [p for p in self.percentiles if not 0 < p < 100]
        require(not bad, "percentiles", self.percentiles, "numbers strictly between 0 and 100")


@dataclass
class GpuCollectorConfig:
    """NVML sampling of each visible GPU; records `unavailable` where NVML is absent."""

    _target_: str = "context_research.profiling.gpu.NvmlCollector"
    interval_s: float = 0.05

    def __post_init__(self) -> None:
        require(0.001 <= self.interval_s <= 60, "interval_s", self.interval_s, "seconds from 0.001 to 60")


@dataclass
class MemoryCollectorConfig:
    """torch allocator peaks per phase (load, warm-up, measure) of the job's engines and the
    decomposition of its peak GPU memory (weights, KV cache, activations, CUDA graphs, non-torch)."""

    _target_: str = "context_research.profiling.memory.MemoryCollector"


@dataclass
class KVTransferCollectorConfig:
    """KV bytes moved between pools and the time spent moving and waiting for them."""

    _target_: str = "context_research.profiling.kv_transfer.KVTransferCollector"


@dataclass
class ServerMetricsCollectorConfig:
    """A server's /metrics scraped at the job's start and end and every `interval_s` between."""

    _target_: str = "context_research.profiling.server_metrics.ServerMetricsCollector"
    interval_s: float = 1.0
    timeout_s: float = 5.0  # one scrape

    def __post_init__(self) -> None:
        require(0.05 <= self.interval_s <= 600, "interval_s", self.interval_s, "seconds from 0.05 to 600")
        require(self.timeout_s > 0, "timeout_s", self.timeout_s, "seconds > 0")


@dataclass
class ClientHealthCollectorConfig:
    """The client's event-loop lag (a probe every `interval_s`) and CPU share; the thresholds above
    which an HTTP run is flagged as limited by the client."""

    _target_: str = "context_research.profiling.client_health.ClientHealthCollector"
    interval_s: float = 0.01
    max_lag_p99_ms: float = 5.0
    max_loop_cpu_share: float = 0.9  # of one core: the loop runs on one thread

    def __post_init__(self) -> None:
        require(0.001 <= self.interval_s <= 10, "interval_s", self.interval_s, "seconds from 0.001 to 10")
        require(self.max_lag_p99_ms > 0, "max_lag_p99_ms", self.max_lag_p99_ms, "milliseconds > 0")
        require(0 < self.max_loop_cpu_share <= 1, "max_loop_cpu_share", self.max_loop_cpu_share,
                "a fraction of one core in (0, 1]")
