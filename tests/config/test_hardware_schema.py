"""The hardware schema's own rules (ranges and consistency), before any device is consulted."""

from __future__ import annotations

import pytest

from context_research.config import ConfigError
from context_research.config.hardware import HardwareConfig


@pytest.mark.parametrize("fields,message", [
    ({"kind": "tpu"}, "kind='tpu': allowed: gpu, cpu, auto"),
    ({"compute_capability": "sm_90"}, 'compute_capability=\'sm_90\': null or "major.minor", e.g. "8.9"'),
    ({"memory_gb": 0}, "memory_gb=0: a number > 0, or null"),
    ({"bf16_flops_per_s": -1.0}, "bf16_flops_per_s=-1.0: a number > 0, or null"),
    ({"kind": "gpu", "memory_gb": 24.0, "memory_budget_gb": 48.0},
     "memory_budget_gb=48.0: at most the device's memory_gb (24)"),
    ({"kind": "cpu", "hbm_bytes_per_s": 1e11}, "hbm_bytes_per_s=100000000000.0: null for a cpu profile (no GPU)"),
])
def test_bad_hardware_values_are_one_line(fields, message):
    with pytest.raises(ConfigError) as caught:
        HardwareConfig(**fields)
    assert str(caught.value) == message


def test_fp8_is_judged_from_the_compute_capability():
    assert HardwareConfig(kind="gpu", compute_capability="8.9").has_fp8
    assert HardwareConfig(kind="gpu", compute_capability="12.0").has_fp8  # compared as numbers, not text
    assert not HardwareConfig(kind="gpu", compute_capability="8.6").has_fp8
    assert not HardwareConfig(kind="gpu").has_fp8  # unknown: not assumed


def test_the_budget_is_what_the_fit_check_plans_with():
    assert HardwareConfig(kind="gpu", memory_gb=141.0).usable_memory_gb == 141.0
    assert HardwareConfig(kind="gpu", memory_gb=141.0, memory_budget_gb=24.0).usable_memory_gb == 24.0
