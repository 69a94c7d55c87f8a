"""Which GPUs a process may use: CUDA's reading of CUDA_VISIBLE_DEVICES, in one place.

CUDA's rules, which every part of the harness follows:
- unset: every GPU of the host is visible;
- set but empty: no GPU is visible;
- otherwise a comma-separated list of GPU indices or UUIDs (`GPU-...`, `MIG-...`); CUDA reads it up
  to the first entry that names no GPU (`-1`, an index past the host's GPUs, an unknown UUID) and
  ignores that entry and every one after it.

`cuda:N` in the configs is the N-th visible GPU (CUDA's numbering). NVML numbers GPUs in PCI bus
order and ignores CUDA_VISIBLE_DEVICES, so figures read through NVML go through
`visible_nvml_indices`. Nothing here initialises CUDA: vLLM starts its engine processes after
these reads, and they inherit the environment.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

VARIABLE = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def host_gpus() -> list[str]:
    """UUIDs of the host's GPUs in NVML's order (PCI bus order); empty without NVML or a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no NVML library or no driver: a host without GPUs
        return []
    try:
        uuids = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
            uuids.append(uuid.decode() if isinstance(uuid, bytes) else uuid)
        return uuids
    finally:
        pynvml.nvmlShutdown()


def visible_nvml_indices(host: list[str] | int, environ: Mapping[str, str] = os.environ) -> list[int]:
    """NVML indices of the GPUs this process may use, in CUDA's order (see the module doc).

    `host` is the host's GPU UUIDs (`host_gpus()`), or only their count when UUIDs are not needed.
    """
    uuids = host if isinstance(host, list) else None
    count = len(host) if isinstance(host, list) else int(host)
    listed = environ.get(VARIABLE)
    if listed is None:
        return list(range(count))
    indices: list[int] = []
    for entry in (item.strip() for item in listed.split(",")):
        index = _nvml_index(entry, count, uuids)
        if index is None or index in indices:  # CUDA stops at the first entry naming no GPU
            break
        indices.append(index)
    return indices


def _nvml_index(entry: str, count: int, uuids: list[str] | None) -> int | None:
    if entry.isdigit():
        index = int(entry)
        return index if index < count else None
    if uuids and entry.startswith(("GPU-", "MIG-")):
        matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
        return matches[0] if len(matches) == 1 else None
    return None


def visible_gpu_count(environ: Mapping[str, str] = os.environ) -> int:
    """How many GPUs this process may use."""
    return len(visible_nvml_indices(host_gpus(), environ))


def visible_entries(environ: Mapping[str, str] = os.environ, host: list[str] | None = None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES entries naming the GPUs this process may use (indices when unset):
    what to write into CUDA_VISIBLE_DEVICES to show a child process one of them."""
    host = host_gpus() if host is None else host
    listed = environ.get(VARIABLE)
    indices = visible_nvml_indices(host, environ)
    if listed is None:
        return [str(index) for index in indices]
    return [item.strip() for item in listed.split(",")][:len(indices)]


def cuda_index(device: str) -> int:
    """N of `cuda:N` (`cuda` alone is cuda:0)."""
    match = CUDA_DEVICE.match(device)
    if match is None:
        raise ValueError(f"{device!r} is not a CUDA device (cuda or cuda:N)")
    return int(match.group(1) or 0)


def entry_for(device: str, environ: Mapping[str, str] = os.environ, host: list[str] | None = None) -> str:
    """The CUDA_VISIBLE_DEVICES entry that shows a child process only `device` (cuda:N of this process)."""
    entries = visible_entries(environ, host)
    index = cuda_index(device)
    if index >= len(entries):
        raise ValueError(f"{device}: this process sees {len(entries)} GPU(s) "
                         f"({VARIABLE}={environ.get(VARIABLE)!r})")
    return entries[index]
