"""Roofline inputs from the architecture: published parameter counts and KV sizes."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from context_research.profiling.roofline import floors, footprint
from tests.conftest import compose_config


def architecture(name):
    return OmegaConf.to_container(compose_config([f"model={name}"]).model.architecture)


@pytest.mark.parametrize("name,params,kv_bytes", [
    ("qwen3_8b", 8.19e9, 147_456), ("qwen2_5_7b", 7.62e9, 57_344),
    ("llama3_1_8b", 8.03e9, 131_072), ("mistral_7b_v0_3", 7.25e9, 131_072)])
def test_parameters_and_kv_bytes(name, params, kv_bytes):
    fp = footprint(architecture(name))
    assert fp.parameters == pytest.approx(params, rel=0.002)
    assert fp.kv_bytes_per_token == kv_bytes


def test_floors_scale_as_the_formulas_say():
    arch = architecture("qwen3_8b")
    short = floors(arch, "bfloat16", 1024, 128, 4.3e12, 790e12)
    long = floors(arch, "bfloat16", 32768, 128, 4.3e12, 790e12)
    # decode: weights (7.57e9 params x 2 bytes) + KV at the mean context, over 4.3 TB/s
    assert short["tpot_floor_ms"] == pytest.approx((7.568e9 * 2 + 147456 * (1024 + 63.5)) / 4.3e12 * 1e3, rel=1e-3)
    # prefill grows faster than linearly (attention is quadratic)
    assert long["ttft_floor_ms"] > 32 * short["ttft_floor_ms"]
