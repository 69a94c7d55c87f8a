"""Roofline floors from the architecture alone (DESIGN.md):

decode floor per step = bytes that must be read (weights + KV so far) / HBM bandwidth;
prefill floor = FLOPs / peak bf16 matmul rate. Measured / floor says how far a run is from the
hardware limit. Qwen3-8B: 8.19e9 parameters, 147,456 KV bytes per token in bf16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


@dataclass(frozen=True)
class ModelFootprint:
    parameters: int  # all weights, embeddings included
    embedding_parameters: int  # the input embedding table (gathered, not streamed, per token)
    matmul_parameters: int  # weights every token multiplies through (layers; lm_head excluded)
    lm_head_parameters: int
    kv_bytes_per_token: int
    layers: int
    attention_width: int  # query heads x head_dim
    weight_bytes: int


def footprint(architecture: dict[str, Any], dtype: str = "bfloat16", kv_dtype: str | None = None) -> ModelFootprint:
    """Parameter and KV-cache sizes of a decoder-only transformer from its config.json."""
    hidden = architecture["hidden_size"]
    layers = architecture["num_hidden_layers"]
    heads = architecture["num_attention_heads"]
    kv_heads = architecture["num_key_value_heads"]
    head_dim = architecture.get("head_dim") or hidden // heads
    vocab = architecture["vocab_size"]
    inter = architecture["intermediate_size"]
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = hidden * q + 2 * hidden * kv + q * hidden
    if architecture.get("attention_bias") or architecture.get("model_type") == "qwen2":
        attention += q + 2 * kv
    if architecture.get("model_type") == "qwen3":  # per-head RMSNorm of q and k
        attention += 2 * head_dim
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    embedding = vocab * hidden
    lm_head = 0 if architecture.get("tie_word_embeddings") else vocab * hidden
    parameters = embedding + lm_head + layers * per_layer + hidden
    width = DTYPE_BYTES[dtype]
    kv_width = DTYPE_BYTES.get(kv_dtype or dtype, width)
    return ModelFootprint(
        parameters=parameters, embedding_parameters=embedding, matmul_parameters=layers * per_layer,
        lm_head_parameters=vocab * hidden, kv_bytes_per_token=2 * layers * kv * kv_width, layers=layers,
        attention_width=q, weight_bytes=parameters * width)


def prefill_flops(fp: ModelFootprint, prompt_len: int) -> float:
    """Matmul FLOPs of one prefill: 2 x params x tokens, causal attention (QK^T and PV over half
    the square), and the LM head for the last position only."""
    dense = 2.0 * fp.matmul_parameters * prompt_len
    attention = 2.0 * 2.0 * fp.layers * fp.attention_width * prompt_len * prompt_len / 2.0
    return dense + attention + 2.0 * fp.lm_head_parameters


def decode_step_bytes(fp: ModelFootprint, context_len: float, weight_width: int) -> float:
    """Bytes one decode step must read: every weight but the embedding table, plus the KV so far."""
    streamed = (fp.parameters - fp.embedding_parameters) * weight_width
    return streamed + fp.kv_bytes_per_token * context_len


def floors(architecture: dict[str, Any], dtype: str, prompt_len: int, output_len: int,
           hbm_bytes_per_s: float, matmul_flops_per_s: float, kv_dtype: str | None = None) -> dict[str, float]:
    """TTFT and TPOT floors (ms) for one request at batch 1; TPOT at the mean decode context."""
    fp = footprint(architecture, dtype, kv_dtype)
    mean_context = prompt_len + (output_len - 1) / 2.0
    return {
        "ttft_floor_ms": prefill_flops(fp, prompt_len) / matmul_flops_per_s * 1e3,
        "tpot_floor_ms": decode_step_bytes(fp, mean_context, DTYPE_BYTES[dtype]) / hbm_bytes_per_s * 1e3,
        "model_parameters": float(fp.parameters),
        "kv_bytes_per_token": float(fp.kv_bytes_per_token),
    }
