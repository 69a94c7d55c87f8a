"""Hardware profiles: the datasheet YAMLs of conf/hardware/, the host, and `hardware=auto` resolved
from NVML's name for the job's GPU (nvidia-ml-py; torch is never imported here).

`resolve(config)` returns the profile a job runs with:
  - kind gpu: the profile as configured (a datasheet, or one given on the command line);
  - kind cpu: the host, its RAM as memory_gb where none is given;
  - kind auto: NVML's GPU matched by name to a profile's `nvml_names`, with NVML's memory (what the
    device really has; datasheets round it); `cpu` where NVML finds no GPU; a GPU no profile names
    gets its NVML name, memory and compute capability and null ceilings (never another GPU's).
    Values set on the auto config (non-null) win over the resolved ones; the job options
    (memory_budget_gb, fit_check, calibrate) always come from the config.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from context_research.config.hardware import GB, HardwareConfig

PROFILE_DIR = Path(__file__).resolve().parents[2] / "conf" / "hardware"
JOB_OPTIONS = ("memory_budget_gb", "fit_check", "calibrate")
IDENTITY = ("name", "kind", "nvml_names")  # what a resolved profile is, never overridden


@dataclass(frozen=True)
class GpuFacts:
    """What NVML says about one GPU."""

    name: str
    memory_bytes: int
    compute_capability: Optional[str]


def load_profile(option: str) -> HardwareConfig:
    """The profile of conf/hardware/<option>.yaml, typed and checked."""
    path = PROFILE_DIR / f"{option}.yaml"
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HardwareConfig), node))


@functools.cache
def datasheet_profiles() -> tuple[HardwareConfig, ...]:
    """Every GPU profile of conf/hardware/, in file-name order."""
    profiles = (load_profile(path.stem) for path in sorted(PROFILE_DIR.glob("*.yaml")))
    return tuple(p for p in profiles if p.is_gpu)


def profile_for_gpu(gpu: GpuFacts) -> HardwareConfig:
    """The datasheet profile NVML's name matches, with NVML's memory; an unknown GPU's own facts
    and no ceilings otherwise."""
    match = next((p for p in datasheet_profiles() if gpu.name in p.nvml_names), None)
    if match is None:
        return HardwareConfig(name=gpu.name, kind="gpu", compute_capability=gpu.compute_capability,
                              memory_gb=gpu.memory_bytes / GB)
    return dataclasses.replace(match, memory_gb=gpu.memory_bytes / GB)


def host_memory_bytes() -> int:
    """The host's physical RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """RAM available to a new process now: MemAvailable from /proc/meminfo (free + reclaimable
    caches), else the free pages os.sysconf reports."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def host_profile() -> HardwareConfig:
    return HardwareConfig(name="cpu", kind="cpu", memory_gb=host_memory_bytes() / GB)


def nvml_gpu(index: int = 0) -> Optional[GpuFacts]:
    """NVML's facts about the index-th GPU this process may use (CUDA_VISIBLE_DEVICES respected);
    None where there is no NVML, no driver or no such GPU."""
    return _nvml_gpu(index, os.environ.get("CUDA_VISIBLE_DEVICES"))


@functools.cache
def _nvml_gpu(index: int, visible_devices: Optional[str]) -> Optional[GpuFacts]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # nvidia-ml-py missing, no driver: no GPU to describe
        return None
    try:
        from context_research import devices

        visible = devices.visible_nvml_indices(devices.host_gpus())
        if index >= len(visible):
            return None
        handle = pynvml.nvmlDeviceGetHandleByIndex(visible[index])
        name = pynvml.nvmlDeviceGetName(handle)
        try:
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            capability = f"{major}.{minor}"
        except pynvml.NVMLError:
            capability = None
        return GpuFacts(name=name.decode() if isinstance(name, bytes) else name,
                        memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                        compute_capability=capability)
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def resolve(config: HardwareConfig, gpu_index: int = 0, gpu: Optional[GpuFacts] = None) -> HardwareConfig:
    """The profile a job runs with (see the module docstring). `gpu_index` picks the visible GPU
    `auto` describes; `gpu` gives its facts directly (otherwise NVML is asked)."""
    if config.kind == "gpu":
        return config
    if config.kind == "cpu":
        if config.memory_gb is not None:
            return config
        return dataclasses.replace(config, memory_gb=host_memory_bytes() / GB)
    facts = gpu if gpu is not None else nvml_gpu(gpu_index)
    base = profile_for_gpu(facts) if facts is not None else host_profile()
    chosen = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if f.name not in IDENTITY and (f.name in JOB_OPTIONS or getattr(config, f.name) is not None)}
    return dataclasses.replace(base, **chosen)
