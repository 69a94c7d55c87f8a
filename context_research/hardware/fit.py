"""Does a run fit its device's memory? Checked before any engine starts (a cross-field rule of
config/validation.py), so a run that cannot fit is refused with the numbers instead of being
killed for memory half-way.

What a run needs (GB = 1e9 bytes; profiling/roofline.py `footprint` gives the weight and KV bytes
at the run's precision):

    hf (transformers, one batch of `resident` sequences):
        weights + KV x (prompt + output) x resident
        + activations: 4.4 x intermediate_size x dtype bytes per prompt token of the prefill batch,
          x 1.5 for PyTorch's allocator cache
        + 1.365 GB of CUDA context and cuBLAS workspace on a GPU (0 on CPU)
    vllm (KV cache sized at start-up, vLLM 0.26):
        KV capacity = gpu_memory_utilization x device memory - weights - (1.279 + 0.241) GB,
        in whole blocks of 16 tokens; it must hold one max_model_len sequence, or vLLM refuses to
        start. More resident sequences than it holds are not refused: vLLM queues them (E2 runs
        256 x 8K on an H200 on purpose).

The constants are measured: results/h200/e5 (Qwen3-8B on one H200, jobs.csv). vLLM's start-up
profile there subtracted a 1.279 GB activation peak and 0.241 GB of non-torch memory in every job
(`vllm_profile_activations_gb`, `vllm_profile_non_torch_gb`); its 117.18 GB KV budget and 794,704
tokens follow exactly from the formula above. The transformers engine's activations came to
107,981 bytes per prompt token at 1 x 32K and 106,889 at 16 x 16K (4.39 and 4.35 x 12,288 x 2),
its allocator cache to at most half the activations where they exceed 1 GB, and its non-torch
memory to 1.365 GB. The vLLM allowance is Qwen3-8B's at vLLM's default batch limits; other models
of this size differ from it by their vocabulary and MLP width.

The device offers, on a GPU of this host, what the engine will get (hardware/budget.py): the memory
budget (`hardware.memory_budget_gb`, or another card's profile on a bigger GPU), else the GPU's
memory as CUDA counts it; planning for a GPU this host lacks, the profile's budget or memory; on CPU,
the RAM free now (/proc/meminfo MemAvailable).

A run that does not fit raises one ConfigError line, for example `python launch.py model=qwen3_8b`
(the transformers engine on CPU, float32) on a host with 24 GB of RAM free:

    hardware='cpu': qwen3_8b (hf, float32 weights, float32 KV) needs 32.81 GB (weights 32.76 + KV 0.02
    for 1 x 80 tokens + activations 0.02) but 24.00 GB is available (free RAM); what fits:
    serving.dtype=bfloat16 (16.40 GB); hardware.fit_check=false skips this check

naming what would fit: the longest prompt at this concurrency, the largest concurrency at this
prompt (the transformers engine), a shorter serving.max_model_len (vLLM), or a precision (fp8 KV or
weights on GPUs with FP8, bitsandbytes on CUDA, bf16 on CPU).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

from context_research.config.errors import ConfigError
from context_research.config.hardware import GB
from context_research.profiling.roofline import DTYPE_BYTES, ModelFootprint, footprint

VLLM_BLOCK_SIZE = 16  # tokens per KV block (vLLM's default on CUDA)
VLLM_PROFILE_ACTIVATION_BYTES = 1_279_281_664
VLLM_NON_TORCH_BYTES = 241_172_480
VLLM_NON_KV_BYTES = VLLM_PROFILE_ACTIVATION_BYTES + VLLM_NON_TORCH_BYTES
HF_ACTIVATION_PER_TOKEN_FACTOR = 4.4  # x intermediate_size x dtype bytes, per prompt token in a prefill
HF_ALLOCATOR_CACHE_FRACTION = 0.5
HF_CUDA_NON_TORCH_BYTES = 1_365_114_880
SKIP_HINT = "hardware.fit_check=false skips this check"


@dataclass(frozen=True)
class Device:
    """What the run may use: `memory_bytes` of GPU memory (or free RAM), and whether FP8 is there."""

    label: str
    is_gpu: bool
    memory_bytes: float
    memory_source: str  # how the message names it: "GPU memory", "memory budget" or "free RAM"
    has_fp8: bool = False


@dataclass(frozen=True)
class Precision:
    """The run's precision: `dtype` for what is not quantized, `quantization` of the Linear weights,
    `kv_dtype` of the KV cache."""

    dtype: str
    quantization: Optional[str] = None
    kv_dtype: Optional[str] = None

    @property
    def kv(self) -> str:
        return self.kv_dtype or self.dtype

    def describe(self) -> str:
        weights = self.quantization or self.dtype
        return f"{weights} weights, {self.kv} KV"


@dataclass(frozen=True)
class RunShape:
    """The run's largest memory demand: `resident` sequences of `prompt_len` + `output_len` tokens
    held at once by `engine`; vLLM also reserves one `max_model_len` sequence at start-up."""

    engine: str
    prompt_len: int
    output_len: int
    resident: int
    max_model_len: int
    max_model_len_key: str = "model.max_model_len"
    gpu_memory_utilization: float = 0.9

    @property
    def sequence_len(self) -> int:
        return self.prompt_len + self.output_len


@dataclass(frozen=True)
class MemoryNeed:
    weights: float
    kv: float
    activations: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.kv + self.activations + self.overhead


def hf_activation_bytes(architecture: dict[str, Any], dtype: str, prefill_tokens: int) -> float:
    """Activations and allocator cache of one transformers prefill batch of `prefill_tokens`."""
    per_token = HF_ACTIVATION_PER_TOKEN_FACTOR * architecture["intermediate_size"] * DTYPE_BYTES[dtype]
    return per_token * prefill_tokens * (1 + HF_ALLOCATOR_CACHE_FRACTION)


def hf_need(architecture: dict[str, Any], shape: RunShape, precision: Precision, device: Device) -> MemoryNeed:
    fp = footprint(architecture, precision.dtype, precision.kv, precision.quantization)
    return MemoryNeed(weights=fp.weight_bytes, kv=fp.kv_bytes_per_token * shape.sequence_len * shape.resident,
                      activations=hf_activation_bytes(architecture, precision.dtype, shape.prompt_len * shape.resident),
                      overhead=HF_CUDA_NON_TORCH_BYTES if device.is_gpu else 0.0)


def vllm_kv_budget_bytes(fp: ModelFootprint, device_memory_bytes: float, gpu_memory_utilization: float,
                         non_kv_bytes: float = VLLM_NON_KV_BYTES) -> float:
    """Bytes vLLM gives its KV cache: utilization x memory - weights - the non-KV allowance."""
    return gpu_memory_utilization * device_memory_bytes - fp.weight_bytes - non_kv_bytes


def vllm_kv_capacity_tokens(fp: ModelFootprint, device_memory_bytes: float, gpu_memory_utilization: float,
                            non_kv_bytes: float = VLLM_NON_KV_BYTES, block_size: int = VLLM_BLOCK_SIZE) -> int:
    """The KV cache capacity in tokens vLLM reports (num_gpu_blocks x block_size) for a device of
    `device_memory_bytes` at `gpu_memory_utilization`; 0 where the weights leave no room."""
    budget = vllm_kv_budget_bytes(fp, device_memory_bytes, gpu_memory_utilization, non_kv_bytes)
    return max(0, int(budget // (block_size * fp.kv_bytes_per_token))) * block_size


def _gb(value: float) -> str:
    return f"{value / GB:.2f}"


def _refusal(device: Device, text: str, fits: list[str]) -> ConfigError:
    options = (f"; what fits: {'; '.join(fits)}" if fits
               else "; no shorter prompt, lower concurrency or other precision fits")
    return ConfigError("hardware", device.label, f"{text}{options}; {SKIP_HINT}")


def _precision_options(shape: RunShape, precision: Precision, device: Device) -> list[tuple[str, Precision]]:
    """Other precisions the run's engine could use on this device, the least change first."""
    options: list[tuple[str, Precision]] = []
    if precision.dtype == "float32":
        options.append(("serving.dtype=bfloat16", Precision("bfloat16", precision.quantization, None)))
    if shape.engine == "vllm" and device.has_fp8:
        if precision.kv != "fp8":
            options.append(("serving.kv_cache_dtype=fp8", dataclasses.replace(precision, kv_dtype="fp8")))
        if precision.quantization != "fp8":
            options.append(("model.quantization=fp8", dataclasses.replace(precision, quantization="fp8")))
        if precision.kv != "fp8" and precision.quantization != "fp8":
            options.append(("model.quantization=fp8 serving.kv_cache_dtype=fp8",
                            dataclasses.replace(precision, quantization="fp8", kv_dtype="fp8")))
    if shape.engine == "hf" and device.is_gpu:
        for quantization in ("bnb_8bit", "bnb_4bit"):
            if precision.quantization != quantization:
                options.append((f"model.quantization={quantization}",
                                dataclasses.replace(precision, quantization=quantization)))
    return options


def check_hf(architecture: dict[str, Any], model: str, shape: RunShape, precision: Precision, device: Device) -> None:
    """Refuse a transformers run whose weights, KV and activations exceed the device's memory."""
    need = hf_need(architecture, shape, precision, device)
    if need.total <= device.memory_bytes:
        return
    fp = footprint(architecture, precision.dtype, precision.kv, precision.quantization)
    room = device.memory_bytes - need.weights - need.overhead  # for KV and activations
    fits = []
    if room > 0:
        per_prompt_token = hf_activation_bytes(architecture, precision.dtype, 1) + fp.kv_bytes_per_token
        prompt = math.floor((room / shape.resident - fp.kv_bytes_per_token * shape.output_len) / per_prompt_token)
        if prompt >= 1:
            fits.append(f"prompt_len <= {prompt} at concurrency {shape.resident}")
        per_sequence = (fp.kv_bytes_per_token * shape.sequence_len
                        + hf_activation_bytes(architecture, precision.dtype, shape.prompt_len))
        resident = math.floor(room / per_sequence)
        if 1 <= resident < shape.resident:
            fits.append(f"concurrency <= {resident} at prompt_len {shape.prompt_len}")
    for override, other in _precision_options(shape, precision, device):
        other_need = hf_need(architecture, shape, other, device)
        if other_need.total <= device.memory_bytes:
            fits.append(f"{override} ({_gb(other_need.total)} GB)")
    parts = [f"weights {_gb(need.weights)}", f"KV {_gb(need.kv)} for {shape.resident} x {shape.sequence_len:,} tokens",
             f"activations {_gb(need.activations)}"] + ([f"CUDA context {_gb(need.overhead)}"] if need.overhead else [])
    raise _refusal(device, f"{model} (hf, {precision.describe()}) needs {_gb(need.total)} GB ({' + '.join(parts)}) "
                   f"but {_gb(device.memory_bytes)} GB is available ({device.memory_source})", fits)


def check_vllm(architecture: dict[str, Any], model: str, shape: RunShape, precision: Precision,
               device: Device) -> None:
    """Refuse a vLLM run whose KV cache cannot hold one max_model_len sequence: vLLM would not start.
    More resident sequences than the cache holds are not refused: vLLM's scheduler queues them."""
    fp = footprint(architecture, precision.dtype, precision.kv, precision.quantization)
    capacity = vllm_kv_capacity_tokens(fp, device.memory_bytes, shape.gpu_memory_utilization)
    if capacity >= shape.max_model_len:
        return
    fits = []
    if capacity >= shape.sequence_len:
        fits.append(f"serving.max_model_len={capacity}")
    elif capacity > shape.output_len:
        fits.append(f"prompt_len <= {capacity - shape.output_len} with serving.max_model_len={capacity}")
    for override, other in _precision_options(shape, precision, device):
        other_fp = footprint(architecture, other.dtype, other.kv, other.quantization)
        other_capacity = vllm_kv_capacity_tokens(other_fp, device.memory_bytes, shape.gpu_memory_utilization)
        if other_capacity >= shape.max_model_len:
            fits.append(f"{override} ({other_capacity:,} KV tokens)")
    budget = max(0.0, vllm_kv_budget_bytes(fp, device.memory_bytes, shape.gpu_memory_utilization))
    raise _refusal(device, f"{model} (vllm, {precision.describe()}): {shape.gpu_memory_utilization:g} x "
                   f"{_gb(device.memory_bytes)} GB ({device.memory_source}) - weights {_gb(fp.weight_bytes)} - "
                   f"{_gb(VLLM_NON_KV_BYTES)} non-KV leaves {_gb(budget)} GB of KV cache, {capacity:,} tokens, "
                   f"less than one {shape.max_model_len_key} sequence of {shape.max_model_len:,}: vLLM would not start",
                   fits)


def check_fit(architecture: dict[str, Any], model: str, shape: RunShape, precision: Precision, device: Device) -> None:
    """Raise a one-line ConfigError where the run cannot fit the device (see the module docstring)."""
    if shape.engine == "vllm":
        check_vllm(architecture, model, shape, precision, device)
    else:
        check_hf(architecture, model, shape, precision, device)
