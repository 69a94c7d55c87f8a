"""Roofline inputs from the architecture: published parameter counts and KV sizes."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from context_research.profiling.roofline import decode_step_bytes, floors, footprint
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


def test_qwen3_8b_weights_and_kv_by_precision():
    fp = footprint(architecture("qwen3_8b"))
    # Linear weights per layer: q_proj 4096 x 4096 = 16,777,216; k_proj and v_proj 4096 x 1024 = 4,194,304 each;
    # o_proj 16,777,216; gate, up and down 3 x 4096 x 12,288 = 150,994,944; 192,937,984 x 36 layers = 6,945,767,424.
    # Everything else stays in the model dtype: norms 36 x (2 x 4096 + 2 x 128) + 4096 = 308,224, embeddings and
    # the untied LM head 2 x 151,936 x 4096 = 1,244,659,712: 1,244,967,936 parameters x 2 B = 2,489,935,872 B.
    assert fp.linear_parameters == 6_945_767_424 and fp.parameters == 8_190_735_360
    assert fp.weight_bytes == 16_381_470_720  # bf16: 2 B x 8,190,735,360 (E5 measured 16.38147072 GB in hf)
    # vLLM's online FP8: 1 B per Linear weight + one float32 scale per fused module (qkv, o, gate_up, down)
    # = 6,945,767,424 + 36 x 4 x 4 + 2,489,935,872 = 9,435,703,872 B: 9.44 GB (embeddings and LM head stay bf16)
    assert footprint(architecture("qwen3_8b"), quantization="fp8").weight_bytes == 9_435_703_872
    # bitsandbytes int8: 1 B per weight + a float32 scale per output row (36 x 38,912 rows), LM head unconverted
    assert footprint(architecture("qwen3_8b"), quantization="bnb_8bit").weight_bytes == \
        6_945_767_424 + 36 * 38_912 * 4 + 2_489_935_872
    # bitsandbytes 4-bit: 0.5 B per weight + a float32 absmax per 64 weights
    assert footprint(architecture("qwen3_8b"), quantization="bnb_4bit").weight_bytes == \
        6_945_767_424 // 2 + 6_945_767_424 // 64 * 4 + 2_489_935_872
    # KV per token: 2 (K and V) x 36 layers x 8 heads x 128 x bytes
    assert fp.kv_bytes_per_token == 147_456
    assert footprint(architecture("qwen3_8b"), kv_dtype="fp8").kv_bytes_per_token == 73_728
    assert footprint(architecture("qwen3_8b"), kv_dtype="auto").kv_bytes_per_token == 147_456


def test_quantization_leaves_the_embeddings_out_of_the_decode_stream():
    arch = architecture("qwen3_8b")
    fp8 = footprint(arch, quantization="fp8")
    assert fp8.embedding_bytes == 151_936 * 4096 * 2  # gathered per token, in bf16
    assert decode_step_bytes(fp8, 0) == 9_435_703_872 - 151_936 * 4096 * 2
    fp8_floor = floors(arch, "bfloat16", 1024, 128, 4.8e12, 1979e12, "fp8", "fp8")["tpot_floor_ms"]
    assert fp8_floor == pytest.approx(decode_step_bytes(footprint(arch, "bfloat16", "fp8", "fp8"), 1087.5)
                                      / 4.8e12 * 1e3)


def test_a_missing_ceiling_gives_no_floor():
    figures = floors(architecture("qwen3_8b"), "bfloat16", 1024, 128, None, None)
    assert figures["ttft_floor_ms"] is None and figures["tpot_floor_ms"] is None
    assert figures["kv_bytes_per_token"] == 147_456
