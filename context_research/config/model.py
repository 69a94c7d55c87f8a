"""Model schema: the architecture (a verbatim `config.json`) and where weights come from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import MISSING

from context_research.config.errors import require, require_choice
from context_research.profiling.roofline import QUANTIZATIONS

DTYPES = ("bfloat16", "float16", "float32")
LOAD_FORMATS = ("auto", "dummy")
BUILT_TOKENIZER = "built"  # model.tokenizer value: the project-built tokenizer (serving/model_source.py)
REQUIRED_ARCHITECTURE_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)


def engine_dtype(serving_dtype: str, model_dtype: str, on_cuda: bool) -> str:
    """The dtype an engine runs a model in: `serving.dtype`, or for `auto` the model's dtype on CUDA
    and float32 on the CPU (the transformers engine there; vLLM runs on CUDA only)."""
    if serving_dtype != "auto":
        return serving_dtype
    return model_dtype if on_cuda else "float32"


@dataclass
class ModelConfig:
    """One model. `architecture` holds the real `config.json` fields of `hf_id`.

    With `path` unset the model is built from `architecture` with seeded random weights
    (transformers) or run weightless (`load_format: dummy`, vLLM); with `path` set, weights,
    config and tokenizer load from that local directory. Nothing is downloaded.

    `tokenizer`: a local tokenizer directory (over the one in `path`), or `built`: a byte-level BPE
    tokenizer the project trains locally for this architecture (ids inside its vocab_size, its
    bos/eos/pad at the config's ids, a ChatML template), so text workloads run on a model without
    its real tokenizer, e.g. Qwen3-8B weightless. A directory named `built` is given as `./built`.
    """

    name: str = MISSING
    hf_id: str = MISSING
    path: Optional[str] = None
    tokenizer: Optional[str] = None
    load_format: str = "auto"
    dtype: str = "bfloat16"
    # weight quantization of the Linear layers (embeddings, LM head and norms stay in `dtype`): null,
    # fp8 (vLLM's online FP8; needs compute capability >= 8.9), bnb_4bit or bnb_8bit (bitsandbytes; CUDA)
    quantization: Optional[str] = None
    max_model_len: int = MISSING
    architecture: Dict[str, Any] = field(default_factory=dict)
    # extra config.json fields applied on top of `architecture` by both engines (e.g. YaRN)
    hf_overrides: Dict[str, Any] = field(default_factory=dict)
    chat_template_kwargs: Dict[str, Any] = field(default_factory=lambda: {"enable_thinking": False})

    def __post_init__(self) -> None:
        require_choice("dtype", self.dtype, DTYPES)
        require_choice("load_format", self.load_format, LOAD_FORMATS)
        require(self.quantization is None or self.quantization in QUANTIZATIONS, "quantization", self.quantization,
                "null or one of " + ", ".join(QUANTIZATIONS))
        require(self.path is None or os.path.isdir(self.path), "path", self.path,
                "an existing local directory, or null")
        require(self.path is None or os.path.isfile(os.path.join(self.path, "config.json")), "path", self.path,
                "a checkpoint directory holding config.json (as transformers saves one), or null")
        require(self.tokenizer in (None, BUILT_TOKENIZER) or os.path.isdir(self.tokenizer), "tokenizer",
                self.tokenizer, f"an existing local directory, {BUILT_TOKENIZER} (the project-built tokenizer), "
                "or null")
        missing = [k for k in REQUIRED_ARCHITECTURE_KEYS if k not in self.architecture]
        require(not missing, "architecture", sorted(self.architecture), f"must define {', '.join(missing)}")
        limit = self.max_positions
        require(1 <= self.max_model_len <= limit, "max_model_len", self.max_model_len,
                f"an integer from 1 to {limit} (the model's positions)")

    def engine_dtype(self, serving_dtype: str, on_cuda: bool) -> str:
        """The dtype an engine runs this model in (`engine_dtype`)."""
        return engine_dtype(serving_dtype, self.dtype, on_cuda)

    @property
    def config_json(self) -> Dict[str, Any]:
        """The effective config.json: `architecture` with `hf_overrides` applied."""
        return {**self.architecture, **self.hf_overrides}

    @property
    def max_positions(self) -> int:
        """Longest sequence the architecture (with any rope scaling) supports."""
        return int(self.config_json["max_position_embeddings"])
