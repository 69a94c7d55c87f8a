"""Calibration: the JSON record from its timings (CPU), the command without a GPU (exit 2), which
ceilings the roofline uses; and on a GPU (@gpu) the measured figures against the datasheet."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from context_research import devices
from context_research.config.hardware import HardwareConfig
from context_research.hardware import calibration
from context_research.hardware.calibration import calibration_record, roofline_peaks
from context_research.hardware.profiles import GpuFacts, load_profile, profile_for_gpu
from tests.conftest import REPO, read_summary


def record(fp8_seconds=None, fp8_reason=None) -> dict:
    return calibration_record("NVIDIA H200", "9.0", copy_bytes=2_000_000_000, copy_seconds=[1.1e-3, 1.0e-3, 0.9e-3],
                              matmul_size=8192, bf16_seconds=[1.5e-3, 1.4e-3, 2.0e-3], fp8_seconds=fp8_seconds,
                              fp8_reason=fp8_reason, versions={"torch": "2.11.0", "cuda": "13.0"}, wall_s=2.5)


def test_the_record_holds_the_medians_as_rates_and_every_timing():
    measured = record(fp8_seconds=[0.8e-3, 0.7e-3, 0.75e-3])
    assert measured["hbm_bytes_per_s"] == pytest.approx(2 * 2e9 / 1.0e-3)  # read + written, median time
    assert measured["bf16_flops_per_s"] == pytest.approx(2 * 8192 ** 3 / 1.5e-3)
    assert measured["fp8_flops_per_s"] == pytest.approx(2 * 8192 ** 3 / 0.75e-3) and measured["fp8_reason"] is None
    assert measured["copy"] == {"bytes": 2_000_000_000, "bytes_moved_per_repeat": 4_000_000_000,
                                "seconds": [1.1e-3, 1.0e-3, 0.9e-3]}
    assert measured["bf16_matmul"]["seconds"] == [1.5e-3, 1.4e-3, 2.0e-3] and measured["repeats"] == 3
    assert json.loads(json.dumps(measured)) == measured  # plain JSON


def test_without_fp8_the_record_says_why():
    measured = record(fp8_reason="compute capability 8.6 has no FP8 tensor cores (needs >= 8.9)")
    assert measured["fp8_flops_per_s"] is None and measured["fp8_matmul"] is None
    assert measured["fp8_reason"].startswith("compute capability 8.6")


def cuda_available() -> bool:
    """Read through NVML: torch.cuda here, at collection, would make the forks of later vLLM engines fail."""
    return devices.visible_gpu_count() > 0


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA GPU")
def test_the_command_without_a_gpu_says_so_in_one_line_and_exits_2(tmp_path):
    process = subprocess.run([sys.executable, "-m", "context_research.calibrate", "--output", str(tmp_path / "c.json")],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert process.returncode == 2
    assert process.stdout == ""
    assert process.stderr.strip().splitlines() == [
        "error: no CUDA GPU (torch.cuda.is_available() is False): calibration measures a GPU"]
    assert not (tmp_path / "c.json").exists()
    calibration.calibrated.cache_clear()
    assert "no CUDA GPU" in calibration.calibrated()["error"]  # what hardware.calibrate=true records then


def test_the_roofline_uses_the_datasheet_unless_calibrated():
    h200 = load_profile("h200")
    peaks = roofline_peaks(h200)
    assert (peaks.hbm_bytes_per_s, peaks.bf16_flops_per_s, peaks.fp8_flops_per_s, peaks.source) == \
        (4.8e12, 989.5e12, 1979e12, "datasheet")
    measured = record(fp8_seconds=[0.8e-3])
    calibrated = roofline_peaks(dataclasses.replace(h200, calibrate=True), measured)
    assert calibrated.source == "measured" and calibrated.hbm_bytes_per_s == measured["hbm_bytes_per_s"]
    assert roofline_peaks(h200, measured).source == "datasheet"  # calibrate=false: the measurement is not used
    failed = roofline_peaks(dataclasses.replace(h200, calibrate=True), {"error": "no CUDA GPU"})
    assert failed.bf16_flops_per_s is None and failed.reason == "calibration failed: no CUDA GPU"


def test_no_gpu_no_roofline():
    peaks = roofline_peaks(HardwareConfig(name="cpu", kind="cpu", memory_gb=24.0))
    assert peaks.source is None and peaks.hbm_bytes_per_s is None and "no GPU" in peaks.reason


@pytest.mark.gpu
def test_measured_ceilings_are_below_the_datasheet_and_near_it():
    import torch

    name = torch.cuda.get_device_name(0)
    measured = calibration.measure(0)
    datasheet = profile_for_gpu(GpuFacts(name, torch.cuda.get_device_properties(0).total_memory, None))
    assert measured["device"] == name and measured["wall_s"] < 60
    assert measured["copy"]["bytes"] > 0 and len(measured["copy"]["seconds"]) == calibration.DEFAULT_REPEATS
    if datasheet.hbm_bytes_per_s:  # a profiled GPU: a copy reaches 60-100% of the datasheet bandwidth
        assert 0.6 * datasheet.hbm_bytes_per_s < measured["hbm_bytes_per_s"] < 1.02 * datasheet.hbm_bytes_per_s
    if datasheet.bf16_flops_per_s:
        assert 0.4 * datasheet.bf16_flops_per_s < measured["bf16_flops_per_s"] < 1.02 * datasheet.bf16_flops_per_s
    if torch.cuda.get_device_capability(0) >= (8, 9):
        assert measured["fp8_flops_per_s"] > measured["bf16_flops_per_s"]
        if datasheet.fp8_flops_per_s:
            assert measured["fp8_flops_per_s"] < 1.02 * datasheet.fp8_flops_per_s
    else:
        assert measured["fp8_flops_per_s"] is None and "no FP8 tensor cores" in measured["fp8_reason"]


@pytest.mark.gpu
def test_the_command_writes_its_json(tmp_path):
    out = tmp_path / "calibration.json"
    process = subprocess.run([sys.executable, "-m", "context_research.calibrate", "--output", str(out),
                              "--repeats", "5"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    assert json.loads(out.read_text()) == json.loads(process.stdout)
    assert json.loads(process.stdout)["repeats"] == 5


@pytest.mark.gpu
def test_a_calibrated_latency_job_uses_and_records_the_measured_ceilings(run_launch):
    process, root = run_launch("serving.device=cuda", "model.dtype=bfloat16", "hardware.calibrate=true",
                               "prompt_len=256", "output_len=8", "num_prompts=2", timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    [summary_path] = list(root.glob("run/summary.json"))
    summary = read_summary(summary_path.parent)
    assert summary["roofline_peaks"] == "measured"
    assert summary["calibrated_hbm_bytes_per_s"] > 0 and summary["calibrated_bf16_flops_per_s"] > 0
    assert summary["ttft_floor_ms"] > 0 and summary["tpot_floor_ms"] > 0
