"""Where a model comes from: a local directory, or its real config.json materialised locally.

Nothing is downloaded. Without `model.path`, the model's `architecture` (its real config.json)
is written to `<cache_dir>/models/<name>-<hash>/` so that transformers and vLLM read the same
file: transformers builds seeded random weights from it, vLLM runs it with `load_format=dummy`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from context_research.records.atomic import write_json_atomic


def config_digest(config_json: dict[str, Any]) -> str:
    """Short stable hash of a config.json."""
    return hashlib.sha256(json.dumps(config_json, sort_keys=True, default=str).encode()).hexdigest()[:10]


def materialize_config_dir(model: Any, cache_dir: str | Path) -> Path:
    """Directory holding the model's config.json (and generation_config.json); `model.path` if set."""
    if model.path:
        return Path(model.path)
    config_json = dict(model.config_json)
    config_json.setdefault("torch_dtype", model.dtype)
    target = Path(cache_dir) / "models" / f"{model.name}-{config_digest(config_json)}"
    if not (target / "config.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        generation = {k: config_json[k] for k in ("bos_token_id", "eos_token_id") if k in config_json}
        write_json_atomic(target / "generation_config.json", generation)
        write_json_atomic(target / "config.json", config_json)
    return target


def build_hf_model(model: Any, cache_dir: str | Path, device: str, dtype: Any, seed: int,
                   attn_implementation: str):
    """A transformers causal LM: local weights when `model.path` is set, else seeded random weights
    created directly on `device` (no host copy of an 8B model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    source = materialize_config_dir(model, cache_dir)
    config = AutoConfig.from_pretrained(source, local_files_only=True)
    if model.path:
        config.update(dict(model.hf_overrides))  # e.g. YaRN over a checkpoint's own config.json
        return AutoModelForCausalLM.from_pretrained(
            source, config=config, dtype=dtype, attn_implementation=attn_implementation, local_files_only=True,
            device_map=device,
        ).eval()
    torch.manual_seed(seed)
    with torch.device(device):
        built = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    return built.eval()


def load_tokenizer(model: Any):
    """The model's tokenizer from a local directory, or None (prompts then go in as token ids)."""
    source = model.tokenizer or model.path
    if not source:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, local_files_only=True)
