"""NVML sampling (nvidia-ml-py) of each visible GPU on the job's clock.

Where NVML is absent (CPU machines) the collector records `gpu_available: false` and the reason,
and never fails the job.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pandas as pd


def visible_nvml_indices(count: int) -> list[int]:
    """NVML indices of the GPUs this process may use (numeric CUDA_VISIBLE_DEVICES respected)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or visible.strip() == "":
        return list(range(count))
    indices = []
    for item in visible.split(","):
        item = item.strip()
        if item.isdigit() and int(item) < count:
            indices.append(int(item))
    return indices


class NvmlCollector:
    """Samples memory used, utilisation, power and SM clock every `interval_s` in a thread."""

    name = "gpu"

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.origin = time.perf_counter()
        self.samples: list[dict[str, Any]] = []
        self.unavailable: str | None = None
        self._handles: list[tuple[int, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_origin(self, origin: float) -> None:
        self.origin = origin

    def start(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in visible_nvml_indices(count)]
            if not self._handles:
                raise RuntimeError("no visible GPU")
        except Exception as error:  # NVML missing, no driver, no GPU: record why, never fail
            self.unavailable = f"{type(error).__name__}: {error}"
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import pynvml

        now = time.perf_counter() - self.origin
        for index, handle in self._handles:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            self.samples.append({
                "t_s": now, "gpu": index, "memory_used_bytes": int(memory.used),
                "memory_total_bytes": int(memory.total), "util_pct": int(util.gpu),
                "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            })

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except Exception as error:
                self.unavailable = f"sampling stopped: {type(error).__name__}: {error}"
                return
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            self._sample_once_safely()

    def _sample_once_safely(self) -> None:
        try:
            self._sample()
        except Exception:
            pass

    def timeseries(self) -> pd.DataFrame | None:
        return pd.DataFrame(self.samples) if self.samples else None

    def snapshot(self) -> dict[str, Any]:
        if not self.samples:
            return {"gpu_available": False, "gpu_unavailable_reason": self.unavailable or "no samples"}
        frame = pd.DataFrame(self.samples)
        per_gpu = frame.groupby("gpu")
        return {
            "gpu_available": True,
            "gpu_count": int(frame["gpu"].nunique()),
            "gpu_samples": int(len(frame)),
            "gpu_mem_peak_gb": float(per_gpu["memory_used_bytes"].max().max() / 1e9),
            "gpu_mem_mean_gb": float(frame["memory_used_bytes"].mean() / 1e9),
            "gpu_util_mean_pct": float(frame["util_pct"].mean()),
            "gpu_power_peak_w": float(frame["power_w"].max()),
            "gpu_power_mean_w": float(frame["power_w"].mean()),
            "gpu_sm_clock_mean_mhz": float(frame["sm_clock_mhz"].mean()),
        }
