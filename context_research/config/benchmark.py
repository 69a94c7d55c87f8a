"""Benchmark schemas: the workload a benchmark drives and how it is measured."""

from __future__ import annotations

from dataclasses import dataclass, field

from context_research.config.errors import require


@dataclass
class WorkloadConfig:
    """Synthetic requests: exact prompt lengths in tokens, seeded token ids."""

    prompt_len: int = 64
    output_len: int = 16
    num_prompts: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.prompt_len >= 1, "prompt_len", self.prompt_len, "an integer >= 1")
        require(self.output_len >= 1, "output_len", self.output_len, "an integer >= 1")
        require(self.num_prompts >= 1, "num_prompts", self.num_prompts, "an integer >= 1")
        require(self.seed >= 0, "seed", self.seed, "an integer >= 0")


@dataclass
class HardwarePeaks:
    """Measured ceilings for the roofline floors (defaults: one H200, measured here)."""

    name: str = "H200"
    hbm_bytes_per_s: float = 4.3e12
    matmul_flops_per_s: float = 790e12

    def __post_init__(self) -> None:
        require(self.hbm_bytes_per_s > 0, "hbm_bytes_per_s", self.hbm_bytes_per_s, "a number > 0")
        require(self.matmul_flops_per_s > 0, "matmul_flops_per_s", self.matmul_flops_per_s, "a number > 0")


@dataclass
class LatencyBenchmarkConfig:
    """Requests one at a time: TTFT, TPOT, ITL and E2E per request after warm-up."""

    _target_: str = "context_research.benchmarks.latency.LatencyBenchmark"
    name: str = "latency"
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    warmup: int = 1
    repeats: int = 1
    check_reproducibility: bool = True
    hardware: HardwarePeaks = field(default_factory=HardwarePeaks)

    def __post_init__(self) -> None:
        require(self.warmup >= 0, "warmup", self.warmup, "an integer >= 0")
        require(self.repeats >= 1, "repeats", self.repeats, "an integer >= 1")
