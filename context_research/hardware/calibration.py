"""Measured ceilings of the present GPU, for the roofline in place of the datasheet's.

- copy bandwidth: a device-to-device copy of `copy_bytes` (bytes read + bytes written per copy);
- BF16 matmul rate: an n x n x n `torch.matmul` (2 n^3 FLOPs);
- FP8 matmul rate: the same shape through `torch._scaled_mm` (E4M3 inputs, per-tensor float32
  scales, BF16 output), where the GPU has FP8 tensor cores (compute capability >= 8.9); null with
  the reason otherwise.

Each is timed with CUDA events around every repeat after a warm-up; the figure is the median. The
whole calibration takes seconds. `python -m context_research.calibrate` prints the record (JSON);
`hardware.calibrate=true` runs it in a child process once per launch process (so no CUDA context
stays in the process that starts the engines) and the roofline uses its figures.
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional

from context_research.config.hardware import FP8_COMPUTE_CAPABILITY, HardwareConfig

DEFAULT_COPY_BYTES = 2_000_000_000  # 2 GB copied: 4 GB allocated, 4 GB moved per repeat
DEFAULT_MATMUL_SIZE = 8192
DEFAULT_REPEATS = 20
FREE_MEMORY_SHARE = 0.25  # the copy's two buffers use at most half of the free memory


def bandwidth(bytes_per_copy: int, seconds: list[float]) -> float:
    """Copy bandwidth in bytes/s: each copy reads and writes `bytes_per_copy`; median time."""
    return 2.0 * bytes_per_copy / statistics.median(seconds)


def matmul_rate(size: int, seconds: list[float]) -> float:
    """FLOP/s of an n x n x n matmul (2 n^3 FLOPs) at the median time."""
    return 2.0 * size ** 3 / statistics.median(seconds)


def calibration_record(device: str, compute_capability: str, copy_bytes: int, copy_seconds: list[float],
                       matmul_size: int, bf16_seconds: list[float], fp8_seconds: Optional[list[float]],
                       fp8_reason: Optional[str], versions: dict[str, Optional[str]], wall_s: float) -> dict[str, Any]:
    """The calibration's JSON record from its timings (pure: the shape is testable without a GPU)."""
    return {
        "device": device,
        "compute_capability": compute_capability,
        "hbm_bytes_per_s": bandwidth(copy_bytes, copy_seconds),
        "bf16_flops_per_s": matmul_rate(matmul_size, bf16_seconds),
        "fp8_flops_per_s": matmul_rate(matmul_size, fp8_seconds) if fp8_seconds else None,
        "fp8_reason": None if fp8_seconds else fp8_reason,
        "copy": {"bytes": copy_bytes, "bytes_moved_per_repeat": 2 * copy_bytes, "seconds": copy_seconds},
        "bf16_matmul": {"m": matmul_size, "n": matmul_size, "k": matmul_size, "seconds": bf16_seconds},
        "fp8_matmul": ({"m": matmul_size, "n": matmul_size, "k": matmul_size, "seconds": fp8_seconds}
                       if fp8_seconds else None),
        "repeats": len(copy_seconds),
        "versions": versions,
        "wall_s": wall_s,
    }


def _timed(operation, repeats: int) -> list[float]:
    """Seconds of each of `repeats` runs of `operation` on the current CUDA stream, after one warm-up."""
    import torch

    operation()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        operation()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return times


def _copy_seconds(device: Any, copy_bytes: int, repeats: int) -> list[float]:
    import torch

    source = torch.empty(copy_bytes, dtype=torch.uint8, device=device).fill_(1)
    target = torch.empty_like(source)
    return _timed(lambda: target.copy_(source), repeats)


def _matmul_seconds(device: Any, size: int, repeats: int) -> tuple[list[float], Optional[list[float]], Optional[str]]:
    """BF16 and FP8 matmul timings (FP8 None, with the reason, where the GPU or torch lacks it)."""
    import torch

    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16, generator=generator)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16, generator=generator)
    bf16_seconds = _timed(lambda: torch.matmul(a, b), repeats)
    capability = torch.cuda.get_device_capability(device)
    if capability < FP8_COMPUTE_CAPABILITY:
        return bf16_seconds, None, (f"compute capability {capability[0]}.{capability[1]} has no FP8 tensor cores "
                                    f"(needs >= {FP8_COMPUTE_CAPABILITY[0]}.{FP8_COMPUTE_CAPABILITY[1]})")
    a8 = a.to(torch.float8_e4m3fn)
    b8 = b.to(torch.float8_e4m3fn).t()  # _scaled_mm takes its second operand column-major
    scale = torch.tensor(1.0, device=device)
    try:
        fp8_seconds = _timed(lambda: torch._scaled_mm(a8, b8, scale_a=scale, scale_b=scale, out_dtype=torch.bfloat16),
                             repeats)
    except RuntimeError as error:  # a torch build without FP8 GEMMs for this GPU
        return bf16_seconds, None, f"torch._scaled_mm: {str(error).splitlines()[0]}"
    return bf16_seconds, fp8_seconds, None


def measure(device_index: int = 0, copy_bytes: int = DEFAULT_COPY_BYTES, matmul_size: int = DEFAULT_MATMUL_SIZE,
            repeats: int = DEFAULT_REPEATS) -> dict[str, Any]:
    """Measure the copy bandwidth and the BF16 and FP8 matmul rates of one CUDA GPU."""
    import torch

    began = time.perf_counter()
    device = torch.device("cuda", device_index)
    torch.cuda.set_device(device)
    free, _ = torch.cuda.mem_get_info(device)
    copy_bytes = min(copy_bytes, int(free * FREE_MEMORY_SHARE))
    copy_seconds = _copy_seconds(device, copy_bytes, repeats)
    bf16_seconds, fp8_seconds, fp8_reason = _matmul_seconds(device, matmul_size, repeats)
    torch.cuda.empty_cache()
    major, minor = torch.cuda.get_device_capability(device)
    return calibration_record(torch.cuda.get_device_name(device), f"{major}.{minor}", copy_bytes, copy_seconds,
                              matmul_size, bf16_seconds, fp8_seconds, fp8_reason,
                              {"torch": torch.__version__, "cuda": torch.version.cuda}, time.perf_counter() - began)


@functools.cache
def calibrated(device_index: int = 0) -> dict[str, Any]:
    """The calibration of a visible GPU, run once per process in a child process (its CUDA context
    and buffers go when it exits). `{"error": ...}` where it could not run."""
    command = [sys.executable, "-m", "context_research.calibrate", "--device", str(device_index)]
    process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        lines = (process.stdout + process.stderr).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {process.returncode}"}
    return json.loads(process.stdout)


@dataclass(frozen=True)
class RooflinePeaks:
    """The ceilings the roofline uses, and where they come from (`measured` or `datasheet`)."""

    hbm_bytes_per_s: Optional[float]
    bf16_flops_per_s: Optional[float]
    fp8_flops_per_s: Optional[float]
    source: Optional[str]  # "measured", "datasheet", or None without a GPU
    reason: Optional[str] = None  # why a ceiling is missing


def roofline_peaks(hardware: HardwareConfig, measurement: Optional[dict[str, Any]] = None) -> RooflinePeaks:
    """Measured ceilings where `hardware.calibrate` is set and a measurement is given, else the profile's."""
    if not hardware.is_gpu:
        return RooflinePeaks(None, None, None, None, f"{hardware.name}: no GPU, so no GPU roofline")
    if hardware.calibrate and measurement is not None:
        if "error" in measurement:
            return RooflinePeaks(None, None, None, "measured", f"calibration failed: {measurement['error']}")
        return RooflinePeaks(measurement["hbm_bytes_per_s"], measurement["bf16_flops_per_s"],
                             measurement["fp8_flops_per_s"], "measured", measurement.get("fp8_reason"))
    return RooflinePeaks(hardware.hbm_bytes_per_s, hardware.bf16_flops_per_s, hardware.fp8_flops_per_s, "datasheet")
