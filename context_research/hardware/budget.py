"""Memory-budget emulation: a smaller card's memory on a bigger GPU, computed once for the engines
and the fit check.

A budget applies where the job names less memory than its GPU has: `hardware.memory_budget_gb`,
or a profile of another card (hardware=rtx4090 on an H200: its 24 GB). The engines then cap
themselves at it:

    vLLM          gpu_memory_utilization = configured utilization x budget / GPU total, so vLLM
                  requests the configured share of the emulated card (0.9 x 24 GB = 21.6 GB), as it
                  would on the card itself; its KV cache is what that leaves after weights and
                  activations (hardware/fit.py vllm_kv_capacity_tokens);
    transformers  torch.cuda.set_per_process_memory_fraction((budget - CUDA context) / GPU total):
                  the allocator may hold the budget less the CUDA context and cuBLAS workspace that
                  a real card of that size also keeps outside torch (fit.HF_CUDA_NON_TORCH_BYTES).

GPU total is CUDA's (NVML's total less the driver's reservation, profiles.GpuFacts), the figure
both fractions multiply. GB = 1e9 bytes: a 24 GB budget is 24e9 bytes.

What is emulated is memory only: the job computes on this GPU (its bandwidth and FLOPs, and the
batch defaults vLLM derives from its total memory), so a latency measured under a budget is this
GPU's latency with that much memory, labelled `compute_hardware` (this GPU) and `memory_hardware`
(the card or budget), never the smaller card's; that card's roofline floors are `projected_*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from context_research.config.errors import ConfigError
from context_research.config.hardware import GB, HardwareConfig
from context_research.hardware import profiles
from context_research.hardware.fit import HF_CUDA_NON_TORCH_BYTES
from context_research.hardware.profiles import GpuFacts

EMULATION_HINT = "a budget emulates a smaller card on a bigger GPU"


@dataclass(frozen=True)
class MemoryBudget:
    """The memory one engine's GPU offers the job: all of it, or an emulated budget."""

    budget_bytes: float  # what the job may use
    gpu_total_bytes: float  # the GPU's memory as CUDA counts it
    compute_hardware: str  # the GPU that computes (NVML's name)
    memory_hardware: str  # whose memory the job has: the emulated card or budget, else the GPU itself
    emulated: bool

    @property
    def fraction(self) -> float:
        return self.budget_bytes / self.gpu_total_bytes

    def vllm_gpu_memory_utilization(self, configured: float) -> float:
        """The utilization vLLM is given: the configured share of the budget, as a share of the GPU."""
        return configured * self.fraction if self.emulated else configured

    def torch_memory_fraction(self) -> float:
        """The transformers engine's allocator cap: the budget less the CUDA context, of the GPU; 1 unemulated."""
        if not self.emulated:
            return 1.0
        return max(0.0, self.budget_bytes - HF_CUDA_NON_TORCH_BYTES) / self.gpu_total_bytes

    def figures(self) -> dict[str, Any]:
        """The budget as the manifest and the summary's budget section record it (GB = 1e9 bytes)."""
        return {"memory_budget_gb": self.budget_bytes / GB, "emulated": self.emulated,
                "compute_hardware": self.compute_hardware, "memory_hardware": self.memory_hardware,
                "gpu_memory_gb": self.gpu_total_bytes / GB}


def names_gpu(profile: HardwareConfig, gpu: GpuFacts) -> bool:
    """Whether a profile describes this GPU (its datasheet lists NVML's name, or auto named it)."""
    return gpu.name in profile.nvml_names or gpu.name == profile.name


def memory_budget(hardware: HardwareConfig, gpu: Optional[GpuFacts]) -> Optional[MemoryBudget]:
    """The memory `gpu` offers a job configured with `hardware` (the profile as configured or
    resolved); None without a GPU. The smaller of `memory_budget_gb` and, for a profile of another
    card, that card's memory is the budget; one larger than the GPU is refused."""
    if gpu is None:
        return None
    total = float(gpu.cuda_total_bytes)
    limits = []  # (bytes, whose memory, the key that sets it)
    if hardware.memory_budget_gb is not None:
        limits.append((hardware.memory_budget_gb * GB, f"{hardware.memory_budget_gb:g} GB budget", "memory_budget_gb"))
    if hardware.kind == "gpu" and not names_gpu(hardware, gpu) and hardware.memory_gb is not None:
        limits.append((hardware.memory_gb * GB, hardware.name, "name"))
    if not limits:
        return MemoryBudget(total, total, gpu.name, gpu.name, emulated=False)
    budget, card, key = min(limits)
    if budget > total:
        raise ConfigError(f"hardware.{key}", getattr(hardware, key), f"{budget / GB:.2f} GB is more than this GPU's "
                          f"{total / GB:.2f} GB ({gpu.name}): {EMULATION_HINT}")
    return MemoryBudget(budget, total, gpu.name, card, emulated=True)


def engine_memory_budget(hardware: Optional[HardwareConfig], gpu_index: int) -> Optional[MemoryBudget]:
    """The budget of the engine on visible GPU `gpu_index`, from NVML; None without a GPU or a
    hardware config (an engine built without one runs on its whole GPU)."""
    if hardware is None:
        return None
    return memory_budget(hardware, profiles.nvml_gpu(gpu_index))


def roofline_profiles(hardware: HardwareConfig, gpu: Optional[GpuFacts] = None,
                      gpu_index: int = 0) -> tuple[HardwareConfig, Optional[HardwareConfig]]:
    """(the profile whose ceilings bound the measured latency, the emulated card's profile or None).

    A profile of another card on this host's GPU is emulated memory: the latency is this GPU's, so
    its floors come from this GPU's profile (`auto` resolved, with the job's calibrate option), and
    the card's own are projected. Elsewhere the profile is resolved as configured (`gpu`: NVML's
    facts, read when not given)."""
    facts = gpu if gpu is not None else profiles.nvml_gpu(gpu_index)
    if hardware.kind == "gpu" and facts is not None and not names_gpu(hardware, facts):
        return profiles.resolve(HardwareConfig(calibrate=hardware.calibrate), gpu=facts), hardware
    return profiles.resolve(hardware, gpu_index, gpu=facts), None
