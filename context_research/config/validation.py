"""Validation in one place: types (the schemas), ranges (each schema's __post_init__) and the
cross-field rules below. Every failure is one `ConfigError` line naming the key and what is
allowed, raised before any engine is built."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from context_research.config.errors import ConfigError, require
from context_research.config.job import JobConfig

GROUPS = ("model", "serving", "scheduler", "benchmark", "collectors", "paths")
ROOT_KEYS = ("name", "prompt_len", "output_len", "concurrency", "num_prompts", "repeats", "seed")


def _typed(node: DictConfig, prefix: str) -> Any:
    """Convert a node to its schema objects (running their range checks), prefixing errors.
    Nested schemas are checked first, so an error names its full key."""
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            if isinstance(child, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(child)):
                _typed(child, f"{prefix}.{key}")
    try:
        return OmegaConf.to_object(node) if isinstance(node, DictConfig) else node
    except ConfigError as error:
        raise error.under(prefix) from None
    except OmegaConfBaseException as error:
        raise omegaconf_error(error, prefix) from None


def omegaconf_error(error: OmegaConfBaseException, prefix: str = "") -> ConfigError:
    """One-line ConfigError from an OmegaConf error (which spans several lines)."""
    key = getattr(error, "full_key", None) or prefix or "config"
    if prefix and not key.startswith(prefix):
        key = f"{prefix}.{key}"
    message = str(error).splitlines()[0].strip() if str(error) else type(error).__name__
    return ConfigError(key, None, message)


def max_model_len(typed: dict[str, Any]) -> tuple[int, str]:
    """The context limit in force and the key that sets it (the engine's, else the model's)."""
    engine_limit = getattr(typed["serving"], "max_model_len", None)
    if engine_limit:
        return engine_limit, "serving.max_model_len"
    return typed["model"].max_model_len, "model.max_model_len"


def _check_lengths(cfg: DictConfig, typed: dict[str, Any]) -> None:
    workload = getattr(typed["benchmark"], "workload", None)
    if workload is None:
        return
    limit, key = max_model_len(typed)
    require(limit <= typed["model"].max_positions, key, limit,
            f"at most the model's {typed['model'].max_positions} positions")
    prompt, output = _longest(workload.prompt_len), _longest(workload.output_len)
    total = prompt + output
    require(total <= limit, "prompt_len", prompt,
            f"prompt_len + output_len ({total}) must be <= {key} ({limit})")


def _longest(length: Any) -> int:
    """A length as an integer, or the longest a length distribution can give."""
    return length if isinstance(length, int) else length.longest


def _check_engine_installed(cfg: DictConfig, typed: dict[str, Any]) -> None:
    """An engine whose library is missing stops the job here, never later and never by running another."""
    if typed["serving"].engine == "vllm":
        require(importlib.util.find_spec("vllm") is not None, "serving", "vllm",
                "vLLM is not installed here; on a GPU host: pip install -e '.[vllm]'")


def _check_weights(cfg: DictConfig, typed: dict[str, Any]) -> None:
    model = typed["model"]
    if typed["serving"].engine == "vllm" and model.path is None:
        require(model.load_format == "dummy", "model.load_format", model.load_format,
                "dummy when model.path is null (vLLM has no weights to load; set model.path for real ones)")


def _check_token_budget(cfg: DictConfig, typed: dict[str, Any]) -> None:
    """Capability tasks: the longest sequence a job sends must fit the model's length."""
    needed = getattr(typed["benchmark"], "max_sequence_tokens", None)
    if needed is None:
        return
    limit, key = max_model_len(typed)
    require(needed <= limit, "benchmark.context_len", typed["benchmark"].context_len,
            f"the longest sequence it implies ({needed} tokens with the generated ones) must be <= {key} ({limit})")


def _check_tokenizer(cfg: DictConfig, typed: dict[str, Any]) -> None:
    """Benchmarks that build prompts from text need the model's tokenizer, from a local directory."""
    if getattr(typed["benchmark"], "needs_tokenizer", False):
        model = typed["model"]
        require(bool(model.tokenizer or model.path), "model.tokenizer", model.tokenizer,
                f"a local tokenizer directory (or model.path) for benchmark {typed['benchmark'].name}")


CROSS_FIELD_RULES: list[Callable[[DictConfig, dict[str, Any]], None]] = [
    _check_lengths,
    _check_weights,
    _check_token_budget,
    _check_tokenizer,
    _check_engine_installed,  # last: a config is judged whole before the host is
]


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Check a composed job config; return the typed schema object of each group."""
    root = {key: cfg[key] for key in ROOT_KEYS if key in cfg}
    JobConfig(**root)
    typed = {group: _typed(cfg[group], group) for group in GROUPS}
    for rule in CROSS_FIELD_RULES:
        rule(cfg, typed)
    return typed
