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
