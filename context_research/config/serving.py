"""Serving schemas: one dataclass per engine, each with its own engine arguments."""

from __future__ import annotations

import re
from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        require(bool(DEVICE_PATTERN.match(self.device)), "device", self.device, "auto, cpu, cuda or cuda:N")
        require_choice("dtype", self.dtype, ("auto", "bfloat16", "float16", "float32"))
        require_choice("attn_implementation", self.attn_implementation, ("sdpa", "eager"))
        require(self.max_batch_size >= 1, "max_batch_size", self.max_batch_size, "an integer >= 1")
