"""Serving schemas: one dataclass per engine, each with its own engine arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from context_research.config.errors import require, require_choice

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass
class HFServingConfig:
    """transformers engine: real forward passes with an explicit KV cache (CPU or CUDA)."""

    _target_: str = "context_research.serving.backends.hf.HFBackend"
    engine: str = "hf"
    device: str = "auto"  # auto = cuda when available, else cpu
    dtype: str = "auto"  # auto = the model's dtype on CUDA, float32 on CPU
    attn_implementation: str = "sdpa"
    max_batch_size: int = 16
    seed: int = 0
    # torch's intra-op threads when the engine runs on the CPU (null: torch's default, one per core).
    # One by default: the small models run on CPUs gain nothing from more, and on a busy machine
    # threads that wait on each other at every op make each step many times slower
    cpu_threads: Optional[int] = 1

    def __post_init__(self) -> None:
        require(bool(DEVICE_PATTERN.match(self.device)), "device", self.device, "auto, cpu, cuda or cuda:N")
        require(self.cpu_threads is None or self.cpu_threads >= 1, "cpu_threads", self.cpu_threads,
                "null or an integer >= 1")
        require_choice("dtype", self.dtype, ("auto", "bfloat16", "float16", "float32"))
        require_choice("attn_implementation", self.attn_implementation, ("sdpa", "eager"))
        require(self.max_batch_size >= 1, "max_batch_size", self.max_batch_size, "an integer >= 1")


@dataclass
class VLLMServingConfig:
    """vLLM 0.26 V1 engine, in process. `interface: async` serves through AsyncLLM (streamed
    outputs: TTFT and ITL as the client sees them, many requests in flight); `offline` through
    LLM (batches). Null engine arguments keep vLLM's own defaults."""

    _target_: str = "context_research.serving.backends.vllm.VLLMBackend"
    engine: str = "vllm"
    interface: str = "async"
    device: Optional[str] = None  # cuda:N = the engine runs on that GPU alone; null = the first visible GPU
    max_model_len: Optional[int] = None  # null = model.max_model_len
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"  # auto = model.dtype
    enforce_eager: bool = False
    enable_chunked_prefill: Optional[bool] = None
    max_num_batched_tokens: Optional[int] = None
    max_num_seqs: Optional[int] = None
    kv_cache_dtype: str = "auto"
    enable_prefix_caching: Optional[bool] = None
    # the largest step (in tokens) run as a CUDA graph; null = vLLM's default (256 in 0.26). A larger
    # step, such as a whole 1K prompt's prefill, runs its kernels launched one by one from the host,
    # so its time follows the host CPU's jitter (compilation_config.max_cudagraph_capture_size)
    max_cudagraph_capture_size: Optional[int] = None
    tensor_parallel_size: int = 1
    seed: int = 0
    # config.json fields vLLM applies on top of the model's (merged over model.hf_overrides)
    hf_overrides: Dict[str, Any] = field(default_factory=dict)
    # any other EngineArgs field, passed through verbatim (e.g. compilation_config)
    extra_engine_args: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_choice("interface", self.interface, ("async", "offline"))
        require(self.device is None or bool(re.match(r"^cuda(:\d+)?$", self.device)), "device", self.device,
                "null or cuda:N")
        require(0.0 < self.gpu_memory_utilization <= 1.0, "gpu_memory_utilization", self.gpu_memory_utilization,
                "a fraction in (0, 1]")
        require_choice("dtype", self.dtype, ("auto", "bfloat16", "float16", "float32"))
        require_choice("kv_cache_dtype", self.kv_cache_dtype, ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16"))
        require(self.max_model_len is None or self.max_model_len >= 1, "max_model_len", self.max_model_len,
                "null or an integer >= 1")
        for key in ("max_num_batched_tokens", "max_num_seqs", "max_cudagraph_capture_size"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, value, "null or an integer >= 1")
        require(self.tensor_parallel_size >= 1, "tensor_parallel_size", self.tensor_parallel_size, "an integer >= 1")
