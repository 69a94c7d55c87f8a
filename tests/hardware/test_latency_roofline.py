"""The latency benchmark's roofline on the job's hardware: datasheet or measured ceilings, the FP8
rate for FP8 weights, and null floors with the reason where a ceiling is unknown."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from context_research.app import build
from context_research.hardware import calibration
from context_research.profiling.roofline import floors
from tests.conftest import compose_config, typed

QWEN = ["model=qwen3_8b", "prompt_len=1024", "output_len=128"]


def roofline(*overrides: str) -> dict:
    return build(typed(list(overrides), "benchmark"), model=typed(list(overrides), "model")).roofline()


def architecture() -> dict:
    return OmegaConf.to_container(compose_config(["model=qwen3_8b"]).model.architecture)


def test_h200_datasheet_floors():
    figures = roofline(*QWEN, "hardware=h200")
    assert figures["roofline_hardware"] == "H200" and figures["roofline_peaks"] == "datasheet"
    expected = floors(architecture(), "bfloat16", 1024, 128, 4.8e12, 989.5e12)
    assert figures["ttft_floor_ms"] == expected["ttft_floor_ms"]
    assert figures["tpot_floor_ms"] == expected["tpot_floor_ms"]
    assert "roofline_reason" not in figures


def test_fp8_weights_use_the_fp8_rate_and_fp8_kv_the_smaller_cache():
    fp8 = roofline(*QWEN, "hardware=h200", "model.quantization=fp8", "serving=vllm", "model.load_format=dummy",
                   "serving.kv_cache_dtype=fp8")
    expected = floors(architecture(), "bfloat16", 1024, 128, 4.8e12, 1979e12, "fp8", "fp8")
    assert fp8["ttft_floor_ms"] == expected["ttft_floor_ms"] and fp8["tpot_floor_ms"] == expected["tpot_floor_ms"]
    assert fp8["kv_bytes_per_token"] == 73_728
    bf16 = roofline(*QWEN, "hardware=h200")
    assert fp8["ttft_floor_ms"] == pytest.approx(bf16["ttft_floor_ms"] / 2)
    # decode streams 9.44 - 1.24 GB of weights instead of 16.38 - 1.24: about 0.55 of the bf16 floor
    assert 0.5 < fp8["tpot_floor_ms"] / bf16["tpot_floor_ms"] < 0.6


def test_no_gpu_no_floors_with_the_reason():
    figures = roofline(*QWEN, "hardware=cpu")
    assert figures["ttft_floor_ms"] is None and figures["tpot_floor_ms"] is None
    assert figures["roofline_peaks"] is None and figures["roofline_hardware"] == "cpu"
    assert figures["roofline_reason"] == "cpu: no GPU, so no GPU roofline"
    assert figures["model_parameters"] == 8_190_735_360  # the footprint is there all the same


def test_a_missing_ceiling_nulls_its_floor_only():
    a10g = roofline(*QWEN, "hardware=a10g")  # no published A10G tensor rate
    assert a10g["ttft_floor_ms"] is None and a10g["tpot_floor_ms"] > 0
    assert "A10G has no BF16 matmul ceiling in its profile (hardware.calibrate=true measures it)" in \
        a10g["roofline_reason"]
    fp8_on_ampere = roofline(*QWEN, "hardware=rtx3090", "model.quantization=fp8")
    assert fp8_on_ampere["ttft_floor_ms"] is None and "no FP8 matmul ceiling" in fp8_on_ampere["roofline_reason"]
    tiny = roofline("hardware=h200")  # the embedded model is float32: no 16-bit or FP8 ceiling applies
    assert tiny["ttft_floor_ms"] is None and tiny["tpot_floor_ms"] > 0
    assert "no float32 matmul ceiling" in tiny["roofline_reason"]


def test_calibrated_ceilings_are_used_and_recorded(monkeypatch):
    measured = {"device": "NVIDIA H200", "hbm_bytes_per_s": 4.3e12, "bf16_flops_per_s": 790e12,
                "fp8_flops_per_s": 1.5e15, "fp8_reason": None}
    monkeypatch.setattr(calibration, "calibrated", lambda device_index=0: measured)
    figures = roofline(*QWEN, "hardware=h200", "hardware.calibrate=true")
    expected = floors(architecture(), "bfloat16", 1024, 128, 4.3e12, 790e12)
    assert figures["roofline_peaks"] == "measured"
    assert figures["ttft_floor_ms"] == expected["ttft_floor_ms"]
    assert figures["tpot_floor_ms"] == expected["tpot_floor_ms"]
    assert figures["calibrated_hbm_bytes_per_s"] == 4.3e12 and figures["calibrated_device"] == "NVIDIA H200"
    assert figures["calibrated_fp8_flops_per_s"] == 1.5e15


def test_a_failed_calibration_leaves_no_floors_and_says_why(monkeypatch):
    monkeypatch.setattr(calibration, "calibrated", lambda device_index=0: {"error": "error: no CUDA GPU"})
    figures = roofline(*QWEN, "hardware=h200", "hardware.calibrate=true")
    assert figures["ttft_floor_ms"] is None and figures["roofline_peaks"] == "measured"
    assert figures["roofline_reason"] == "calibration failed: error: no CUDA GPU"
    assert not any(key.startswith("calibrated_") for key in figures)
