"""Hardware schema: the device a job runs on, its ceilings for the roofline and its memory for the
fit check. One YAML per device in conf/hardware/ (datasheet figures, each citing its datasheet);
`hardware=auto` (the default) is resolved from NVML when the job is validated and run
(context_research/hardware/profiles.py), `cpu` when there is no GPU.

Units: memory in GB = 1e9 bytes (`memory_gb`, `memory_budget_gb`), bandwidth in bytes/s, matmul
rates in dense FLOP/s (no 2:4 sparsity) with FP32 accumulation, as LLM kernels run them. A null
ceiling means none is known: the roofline then reports no floor for it, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

from context_research.config.errors import require, require_choice

GB = 1e9  # the unit of memory_gb and memory_budget_gb
HARDWARE_KINDS = ("gpu", "cpu", "auto")
COMPUTE_CAPABILITY = re.compile(r"^\d+\.\d+$")
FP8_COMPUTE_CAPABILITY = (8, 9)  # Ada and Hopper onwards have FP8 tensor cores


@dataclass
class HardwareConfig:
    """One device: a datasheet profile (kind gpu), the host (kind cpu) or `auto` (resolved at run time).

    `memory_budget_gb` caps the memory the fit check may plan with (emulating a smaller device);
    `fit_check: false` skips the check; `calibrate: true` measures the GPU's copy bandwidth and
    matmul rates (python -m context_research.calibrate) and uses them for the roofline instead of
    the datasheet's.
    """

    name: str = "auto"
    kind: str = "auto"
    nvml_names: List[str] = field(default_factory=list)  # what NVML reports for this board (auto matches it)
    compute_capability: Optional[str] = None  # CUDA compute capability, "major.minor"
    memory_gb: Optional[float] = None  # device memory (GB); null = read from NVML or the host
    hbm_bytes_per_s: Optional[float] = None  # device memory bandwidth (HBM or GDDR)
    bf16_flops_per_s: Optional[float] = None  # dense BF16 tensor-core matmul, FP32 accumulate
    fp8_flops_per_s: Optional[float] = None  # dense FP8 (E4M3) tensor-core matmul, FP32 accumulate
    memory_budget_gb: Optional[float] = None
    fit_check: bool = True
    calibrate: bool = False

    def __post_init__(self) -> None:
        require_choice("kind", self.kind, HARDWARE_KINDS)
        require(self.compute_capability is None or bool(COMPUTE_CAPABILITY.match(self.compute_capability)),
                "compute_capability", self.compute_capability, 'null or "major.minor", e.g. "8.9"')
        for key in ("memory_gb", "hbm_bytes_per_s", "bf16_flops_per_s", "fp8_flops_per_s", "memory_budget_gb"):
            value = getattr(self, key)
            require(value is None or value > 0, key, value, "a number > 0, or null")
        if self.memory_budget_gb is not None and self.memory_gb is not None:
            require(self.memory_budget_gb <= self.memory_gb, "memory_budget_gb", self.memory_budget_gb,
                    f"at most the device's memory_gb ({self.memory_gb:g})")
        if self.kind == "cpu":
            for key in ("hbm_bytes_per_s", "bf16_flops_per_s", "fp8_flops_per_s", "compute_capability"):
                require(getattr(self, key) is None, key, getattr(self, key), "null for a cpu profile (no GPU)")

    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"

    @property
    def capability(self) -> Optional[tuple[int, int]]:
        """The compute capability as (major, minor), or None where it is not known."""
        if self.compute_capability is None:
            return None
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def has_fp8(self) -> bool:
        """FP8 tensor cores (compute capability >= 8.9), as far as the profile knows."""
        return self.capability is not None and self.capability >= FP8_COMPUTE_CAPABILITY

    @property
    def usable_memory_gb(self) -> Optional[float]:
        """The memory the fit check plans with: the budget where one is set, else the device's."""
        return self.memory_budget_gb if self.memory_budget_gb is not None else self.memory_gb
