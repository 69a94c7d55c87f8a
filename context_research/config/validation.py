"""Validation in one place: types (the schemas), ranges (each schema's __post_init__) and the
cross-field rules below. Every failure is one `ConfigError` line naming the key and what is
allowed, raised before any engine is built."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from context_research import devices
from context_research.config.errors import ConfigError, require
from context_research.config.job import JobConfig
from context_research.config.serving import engine_family

GROUPS = ("model", "serving", "scheduler", "hardware", "benchmark", "collectors", "paths")
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
    serving = typed["serving"]
    if engine_family(serving) == "vllm":
        require(importlib.util.find_spec("vllm") is not None, "serving", serving.engine,
                "vLLM is not installed here; on a GPU host: pip install -e '.[vllm]'")
    missing = [name for name in getattr(serving, "required_modules", ()) if importlib.util.find_spec(name) is None]
    require(not missing, "serving", serving.engine, f"needs {', '.join(missing)}, not installed here: "
            "pip install -e '.[serving]'")


def _check_nixl_installed(cfg: DictConfig, typed: dict[str, Any]) -> None:
    """NIXL's connector loads the `nixl` package in the engines' processes: without it, stop here."""
    if getattr(typed["scheduler"], "transfer", None) == "nixl":
        require(importlib.util.find_spec("nixl") is not None, "scheduler.transfer", "nixl",
                "NIXL is not installed here; on a GPU host: pip install nixl==1.3.1 (the NIXL vLLM 0.26 pins)")


def _check_weights(cfg: DictConfig, typed: dict[str, Any]) -> None:
    model = typed["model"]
    if engine_family(typed["serving"]) == "vllm" and model.path is None:
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


def gpu_index(serving: Any) -> int:
    """The visible GPU the job's engine runs on: N for serving.device=cuda:N, else the first."""
    device = getattr(serving, "device", None) or ""
    return devices.cuda_index(device) if devices.CUDA_DEVICE.match(device) else 0


def resolved_hardware(typed: dict[str, Any]) -> Any:
    """The job's hardware profile with `auto` resolved from NVML (hardware/profiles.py)."""
    from context_research.hardware.profiles import resolve

    try:
        return resolve(typed["hardware"], gpu_index(typed["serving"]))
    except ConfigError as error:
        raise error.under("hardware") from None


def _check_quantization(cfg: DictConfig, typed: dict[str, Any]) -> None:
    """FP8 weights need FP8 tensor cores; bitsandbytes needs CUDA (judged from the hardware profile)."""
    from context_research.config.hardware import FP8_COMPUTE_CAPABILITY

    quantization, hardware, serving = typed["model"].quantization, typed["hardware"], typed["serving"]
    if quantization == "fp8":
        have = f"compute capability {hardware.compute_capability}" if hardware.compute_capability else "none known"
        require(hardware.has_fp8, "model.quantization", quantization,
                f"a GPU with FP8 tensor cores (compute capability >= {'.'.join(map(str, FP8_COMPUTE_CAPABILITY))}: "
                f"Ada, Hopper or newer); hardware {hardware.name!r} has {have}; or null")
    elif quantization is not None:
        on_cpu = getattr(serving, "device", None) == "cpu"
        where = "serving.device='cpu'" if on_cpu else f"hardware {hardware.name!r}"
        require(hardware.is_gpu and not on_cpu, "model.quantization", quantization,
                f"a CUDA GPU (bitsandbytes), which {where} is not; or null")


def _resident_sequences(benchmark: Any, serving: Any) -> int:
    """Sequences held at once: a closed loop's concurrency, an offline batch's requests, else one
    (latency and capability benchmarks send one at a time; open-loop arrivals are not bounded by
    the config, so the check plans for one and the engine queues the rest); at most the engine's batch."""
    arrival = getattr(benchmark, "arrival", None)
    resident = 1
    if arrival is not None and arrival.process == "closed":
        resident = arrival.concurrency
    elif arrival is not None and arrival.process == "all_at_once":
        resident = benchmark.workload.num_requests
    limit = getattr(serving, "max_batch_size", None) or getattr(serving, "max_num_seqs", None)
    return min(resident, limit) if limit else resident


def _fit_device(hardware: Any, serving: Any) -> Any:
    """What the engine may use, as hardware/fit.py's Device; None where there is nothing to judge
    (an engine on a GPU the profile does not describe: the engine reports why it cannot start)."""
    from context_research.config.hardware import GB
    from context_research.hardware.fit import Device
    from context_research.hardware.profiles import available_memory_bytes

    device = str(getattr(serving, "device", None))
    on_gpu = engine_family(serving) == "vllm" or device.startswith("cuda") or (device == "auto" and hardware.is_gpu)
    if on_gpu and (not hardware.is_gpu or hardware.usable_memory_gb is None):
        return None
    if hardware.memory_budget_gb is not None:
        memory, source = hardware.memory_budget_gb * GB, "memory budget"
    elif on_gpu:
        memory, source = hardware.memory_gb * GB, "GPU memory"
    else:
        memory, source = float(available_memory_bytes()), "free RAM"
    return Device(hardware.name, on_gpu, memory, source, on_gpu and hardware.has_fp8)


def _check_fit(cfg: DictConfig, typed: dict[str, Any]) -> None:
    """The run's weights, KV cache and activations must fit the device (hardware/fit.py)."""
    from context_research.hardware import fit

    hardware, model, serving, benchmark = (typed[k] for k in ("hardware", "model", "serving", "benchmark"))
    engine = engine_family(serving)
    device = _fit_device(hardware, serving) if hardware.fit_check and engine is not None else None
    if device is None:
        return
    limit, limit_key = max_model_len(typed)
    workload = getattr(benchmark, "workload", None)
    if workload is not None:
        prompt, output = _longest(workload.prompt_len), _longest(workload.output_len)
    else:  # capability tasks: the longest sequence they send, or what the length limit allows
        prompt, output = getattr(benchmark, "max_sequence_tokens", None) or limit, 0
    shape = fit.RunShape(engine=engine, prompt_len=prompt, output_len=output,
                         resident=_resident_sequences(benchmark, serving), max_model_len=limit,
                         max_model_len_key=limit_key,
                         gpu_memory_utilization=getattr(serving, "gpu_memory_utilization", 1.0))
    # the engines' dtype rule: auto = the model's dtype (the hf engine on CPU: float32, serving/backends/hf.py)
    dtype = serving.dtype if serving.dtype != "auto" else (model.dtype if device.is_gpu else "float32")
    kv_dtype = getattr(serving, "kv_cache_dtype", "auto")
    precision = fit.Precision(dtype, model.quantization, None if kv_dtype == "auto" else kv_dtype)
    fit.check_fit(model.config_json, model.name, shape, precision, device)


CROSS_FIELD_RULES: list[Callable[[DictConfig, dict[str, Any]], None]] = [
    _check_lengths,
    _check_weights,
    _check_token_budget,
    _check_tokenizer,
    _check_quantization,
    _check_fit,
    _check_nixl_installed,
    _check_engine_installed,  # last: a config is judged whole before the host is
]


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Check a composed job config; return the typed schema object of each group (hardware resolved)."""
    root = {key: cfg[key] for key in ROOT_KEYS if key in cfg}
    JobConfig(**root)
    typed = {group: _typed(cfg[group], group) for group in GROUPS}
    typed["hardware"] = resolved_hardware(typed)  # `auto` becomes the device, for the rules that use it
    for rule in CROSS_FIELD_RULES:
        rule(cfg, typed)
    return typed
