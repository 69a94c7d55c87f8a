"""The NVML collector: on a machine without NVML it records why and never fails; its sampling
thread, per-GPU figures and unsupported metrics, against a stand-in for nvidia-ml-py."""

from __future__ import annotations

import math
import sys
import time
from types import SimpleNamespace

import pytest

from context_research.config.collectors import GpuCollectorConfig
from context_research.profiling.gpu import NvmlCollector
from tests.conftest import snapshot_figures


def has_working_nvml() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


@pytest.mark.skipif(has_working_nvml(), reason="this machine has a working NVML")
def test_without_a_driver_the_job_goes_on_and_says_why():
    collector = NvmlCollector(GpuCollectorConfig(interval_s=0.01))
    collector.start()
    collector.stop()
    snapshot = snapshot_figures(collector)
    assert snapshot["gpu_available"] is False
    assert "NVML" in snapshot["gpu_unavailable_reason"] or "nvml" in snapshot["gpu_unavailable_reason"].lower()
    assert collector.timeseries() is None


def test_without_nvidia_ml_py_the_job_goes_on_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    collector = NvmlCollector(GpuCollectorConfig())
    collector.start()
    collector.stop()
    figures = snapshot_figures(collector)
    assert figures["gpu_available"] is False and figures["gpu_unavailable_reason"] == collector.unavailable
    assert figures["gpu_samples"] is None and figures["gpu_mem_peak_gb"] is None  # unknown, never zero
    assert collector.unavailable.startswith("ModuleNotFoundError")


class NotSupported(Exception):
    pass


def stand_in_nvml(used_by_gpu: dict[int, list[int]], power_supported: bool = True):
    """A minimal nvidia-ml-py: GPU i reports used_by_gpu[i][k] bytes at its k-th reading."""
    reads = {i: 0 for i in used_by_gpu}
    calls = {"shutdown": 0}

    def memory(handle):
        values = used_by_gpu[handle]
        value = values[min(reads[handle], len(values) - 1)]
        reads[handle] += 1
        return SimpleNamespace(used=value, total=100)

    def power(handle):
        if not power_supported:
            raise NotSupported("power")
        return 250_000

    module = SimpleNamespace(
        NVMLError=NotSupported, NVML_CLOCK_SM=0,
        nvmlInit=lambda: None, nvmlShutdown=lambda: calls.__setitem__("shutdown", calls["shutdown"] + 1),
        nvmlDeviceGetCount=lambda: len(used_by_gpu), nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda handle: f"GPU-{handle}",
        nvmlDeviceGetMemoryInfo=memory, nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=50),
        nvmlDeviceGetPowerUsage=power, nvmlDeviceGetClockInfo=lambda h, clock: 1980)
    return module, calls


def test_samples_each_gpu_on_the_job_clock_and_sums_gpus_at_their_peak(monkeypatch):
    module, calls = stand_in_nvml({0: [10, 40, 20], 1: [30, 30, 30]}, power_supported=False)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    collector = NvmlCollector(GpuCollectorConfig(interval_s=0.01))
    collector.set_origin(time.perf_counter())
    collector.start()
    time.sleep(0.1)
    collector.stop()
    frame = collector.timeseries()
    assert set(frame.columns) >= {"t_s", "gpu", "memory_used_bytes", "util_pct", "power_w", "sm_clock_mhz"}
    assert (frame["t_s"] >= 0).all() and frame["t_s"].is_monotonic_increasing
    assert frame["power_w"].isna().all()  # unsupported: NaN, while memory keeps sampling
    snapshot = snapshot_figures(collector)
    assert snapshot["gpu_available"] is True and snapshot["gpu_count"] == 2
    assert snapshot["gpu_mem_peak_gb"] == pytest.approx(40 / 1e9)
    assert snapshot["gpu_mem_total_peak_gb"] == pytest.approx(70 / 1e9)  # 40 + 30 at the same moment
    assert snapshot["gpu_sm_clock_mean_mhz"] == 1980 and math.isnan(snapshot["gpu_power_peak_w"])
    assert calls["shutdown"] == 2  # the visible-GPU inventory, then the sampling session


def test_a_failing_read_stops_sampling_but_keeps_the_samples(monkeypatch):
    module, _ = stand_in_nvml({0: [10]})
    taken = []

    def memory(handle):
        if taken:
            raise RuntimeError("GPU lost")
        taken.append(1)
        return SimpleNamespace(used=10, total=100)

    module.nvmlDeviceGetMemoryInfo = memory
    monkeypatch.setitem(sys.modules, "pynvml", module)
    collector = NvmlCollector(GpuCollectorConfig(interval_s=0.01))
    collector.start()
    time.sleep(0.05)
    collector.stop()
    snapshot = snapshot_figures(collector)
    assert snapshot["gpu_samples"] == 1 and "GPU lost" in snapshot["gpu_sampling_error"]
