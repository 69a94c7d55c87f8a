"""Roofline floors and memory footprint from the architecture alone:

decode floor per step = bytes that must be read (weights + KV so far) / memory bandwidth;
prefill floor = FLOPs / peak matmul rate (BF16, or FP8 for FP8 weights). Measured / floor says how
far a run is from the hardware limit. Qwen3-8B: 8.19e9 parameters, 147,456 KV bytes per token in bf16.

Weight precision follows the engines' quantization: only the Linear layers' weights are quantized
(vLLM's online FP8 quantizes LinearBase layers alone, one float32 scale per fused module;
bitsandbytes converts nn.Linear layers but the LM head). Embeddings, the LM head, norms and biases
stay in the model dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
QUANTIZATIONS = ("fp8", "bnb_4bit", "bnb_8bit")
SCALE_BYTES = 4  # float32 quantization scales
FP8_FUSED_LINEARS_PER_LAYER = 4  # vLLM fuses qkv_proj and gate_up_proj: qkv, o, gate_up, down
BNB_4BIT_BLOCK = 64  # bitsandbytes 4-bit: one float32 absmax per 64 weights (BitsAndBytesConfig defaults)


@dataclass(frozen=True)
class ModelFootprint:
    parameters: int  # all weights, embeddings included
    embedding_parameters: int  # the input embedding table (gathered, not streamed, per token)
    matmul_parameters: int  # weights every token multiplies through (layers; lm_head excluded)
    lm_head_parameters: int
    linear_parameters: int  # the decoder layers' Linear weights (what quantization converts)
    kv_bytes_per_token: int
    layers: int
    attention_width: int  # query heads x head_dim
    weight_bytes: int  # every parameter at its stored precision, quantization scales included
    embedding_bytes: int


def _linear_bytes(quantization: Optional[str], linear: int, output_rows: int, layers: int, width: int) -> int:
    """Bytes of the decoder layers' Linear weights, scales included, under a quantization."""
    if quantization is None:
        return linear * width
    if quantization == "fp8":  # E4M3 weights, one per-tensor scale per fused module
        return linear + layers * FP8_FUSED_LINEARS_PER_LAYER * SCALE_BYTES
    if quantization == "bnb_8bit":  # LLM.int8(): int8 weights, one float32 scale per output row
        return linear + output_rows * SCALE_BYTES
    if quantization == "bnb_4bit":  # two weights per byte, one float32 absmax per block
        return linear // 2 + -(-linear // BNB_4BIT_BLOCK) * SCALE_BYTES
    raise ValueError(f"quantization {quantization!r}: allowed: null, {', '.join(QUANTIZATIONS)}")


def footprint(architecture: dict[str, Any], dtype: str = "bfloat16", kv_dtype: str | None = None,
              quantization: str | None = None) -> ModelFootprint:
    """Parameter, weight and KV-cache sizes of a decoder-only transformer from its config.json.
    `dtype` is the model's (what stays unquantized), `kv_dtype` the KV cache's (None or "auto" = dtype)."""
    hidden = architecture["hidden_size"]
    layers = architecture["num_hidden_layers"]
    heads = architecture["num_attention_heads"]
    kv_heads = architecture["num_key_value_heads"]
    head_dim = architecture.get("head_dim") or hidden // heads
    vocab = architecture["vocab_size"]
    inter = architecture["intermediate_size"]
    q, kv = heads * head_dim, kv_heads * head_dim
    linear_per_layer = hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * inter
    output_rows_per_layer = q + 2 * kv + hidden + 2 * inter + hidden  # q, k, v, o, gate, up, down
    other_per_layer = 2 * hidden  # input and post-attention RMSNorm
    if architecture.get("attention_bias") or architecture.get("model_type") == "qwen2":
        other_per_layer += q + 2 * kv  # q, k, v biases
    if architecture.get("model_type") == "qwen3":  # per-head RMSNorm of q and k
        other_per_layer += 2 * head_dim
    per_layer = linear_per_layer + other_per_layer
    embedding = vocab * hidden
    lm_head = 0 if architecture.get("tie_word_embeddings") else vocab * hidden
    parameters = embedding + lm_head + layers * per_layer + hidden
    width = DTYPE_BYTES[dtype]
    kv_width = DTYPE_BYTES.get(kv_dtype or dtype, width)
    linear = layers * linear_per_layer
    unquantized = parameters - linear
    weight_bytes = unquantized * width + _linear_bytes(quantization, linear, layers * output_rows_per_layer,
                                                       layers, width)
    return ModelFootprint(
        parameters=parameters, embedding_parameters=embedding, matmul_parameters=layers * per_layer,
        lm_head_parameters=vocab * hidden, linear_parameters=linear, kv_bytes_per_token=2 * layers * kv * kv_width,
        layers=layers, attention_width=q, weight_bytes=weight_bytes, embedding_bytes=embedding * width)


def prefill_flops(fp: ModelFootprint, prompt_len: int) -> float:
    """Matmul FLOPs of one prefill: 2 x params x tokens, causal attention (QK^T and PV over half
    the square), and the LM head for the last position only."""
    dense = 2.0 * fp.matmul_parameters * prompt_len
    attention = 2.0 * 2.0 * fp.layers * fp.attention_width * prompt_len * prompt_len / 2.0
    return dense + attention + 2.0 * fp.lm_head_parameters


def decode_step_bytes(fp: ModelFootprint, context_len: float) -> float:
    """Bytes one decode step must read: every weight but the embedding table, plus the KV so far."""
    return fp.weight_bytes - fp.embedding_bytes + fp.kv_bytes_per_token * context_len


def floors(architecture: dict[str, Any], dtype: str, prompt_len: int, output_len: int,
           hbm_bytes_per_s: float | None, matmul_flops_per_s: float | None, kv_dtype: str | None = None,
           quantization: str | None = None) -> dict[str, float | None]:
    """TTFT and TPOT floors (ms) for one request at batch 1; TPOT at the mean decode context.
    A floor whose ceiling is unknown (None) is None."""
    fp = footprint(architecture, dtype, kv_dtype, quantization)
    mean_context = prompt_len + (output_len - 1) / 2.0
    ttft = prefill_flops(fp, prompt_len) / matmul_flops_per_s * 1e3 if matmul_flops_per_s else None
    tpot = decode_step_bytes(fp, mean_context) / hbm_bytes_per_s * 1e3 if hbm_bytes_per_s else None
    return {"ttft_floor_ms": ttft, "tpot_floor_ms": tpot, "model_parameters": float(fp.parameters),
            "kv_bytes_per_token": float(fp.kv_bytes_per_token)}
