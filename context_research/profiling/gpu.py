"""NVML sampling (nvidia-ml-py) of each visible GPU on the job's clock.

Every `interval_s` a background thread records, per GPU, the memory used (NVML's `used`: the whole
device, every process), utilisation, power and SM clock into `timeseries/gpu.parquet`; the summary
gets their peaks and means. A metric the GPU does not report (power or clocks under MIG, say) is
NaN in its column while the others keep sampling.

Where NVML is absent (CPU machines, no driver, no visible GPU) the collector records
`gpu_available: false` and the reason, and never fails the job.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any, Callable

import pandas as pd

from context_research import devices
from context_research.metrics.schema import GpuSection, Section
from context_research.profiling.base import MetricCollector


def optional_reading(read: Callable[[], float]) -> float:
    """One NVML reading, NaN where the GPU does not support it (NVMLError_NotSupported and kin)."""
    import pynvml

    try:
        return float(read())
    except pynvml.NVMLError:
        return math.nan


class NvmlCollector(MetricCollector):
    """Samples memory used, utilisation, power and SM clock every `config.interval_s` in a thread."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.interval_s = config.interval_s
        self.samples: list[dict[str, Any]] = []
        self.unavailable: str | None = None
        self.sampling_error: str | None = None
        self._handles: list[tuple[int, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as error:  # nvidia-ml-py missing, no driver: record why, never fail
            self.unavailable = f"{type(error).__name__}: {error}"
            return
        try:
            host = devices.host_gpus()
            self._handles = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in devices.visible_nvml_indices(host)]
            if not self._handles:
                raise RuntimeError(f"no visible GPU (NVML sees {len(host)}; CUDA_VISIBLE_DEVICES="
                                   f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        except Exception as error:
            self.unavailable = f"{type(error).__name__}: {error}"
            self._shutdown()
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import pynvml

        now = time.perf_counter() - self.origin
        for index, handle in self._handles:
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            self.samples.append({
                "t_s": now, "gpu": index, "memory_used_bytes": int(memory.used),
                "memory_total_bytes": int(memory.total),
                "util_pct": optional_reading(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                "power_w": optional_reading(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),
                "sm_clock_mhz": optional_reading(lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
            })

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except Exception as error:  # the samples so far stay; the summary says sampling stopped
                self.sampling_error = f"sampling stopped: {type(error).__name__}: {error}"
                return
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        if self.sampling_error is None:
            try:  # the state at the end of the window
                self._sample()
            except Exception as error:
                self.sampling_error = f"last sample failed: {type(error).__name__}: {error}"
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            import pynvml

            pynvml.nvmlShutdown()
        except Exception:  # already shut down or never initialised: nothing to release
            pass
        self._handles = []

    def timeseries(self) -> pd.DataFrame | None:
        return pd.DataFrame(self.samples) if self.samples else None

    def snapshot(self) -> list[Section]:
        if not self.samples:
            return [GpuSection(gpu_available=False,
                               gpu_unavailable_reason=self.unavailable or self.sampling_error or "no samples")]
        frame = pd.DataFrame(self.samples)
        return [GpuSection(
            gpu_available=True,
            gpu_count=int(frame["gpu"].nunique()),
            gpu_samples=int(len(frame)),
            # the fullest GPU, and all GPUs together at their fullest moment
            gpu_mem_peak_gb=float(frame.groupby("gpu")["memory_used_bytes"].max().max() / 1e9),
            gpu_mem_total_peak_gb=float(frame.groupby("t_s")["memory_used_bytes"].sum().max() / 1e9),
            gpu_mem_mean_gb=float(frame["memory_used_bytes"].mean() / 1e9),
            gpu_util_mean_pct=float(frame["util_pct"].mean()),
            gpu_power_peak_w=float(frame["power_w"].max()),
            gpu_power_mean_w=float(frame["power_w"].mean()),
            gpu_sm_clock_mean_mhz=float(frame["sm_clock_mhz"].mean()),
            gpu_sampling_error=self.sampling_error,
        )]
