"""Serving schemas: one dataclass per engine, each with its own engine arguments."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

from context_research.config.bounds import require_count, require_seed
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
    # the job's device (the root `hardware` group): on a bigger GPU the engine caps itself at its
    # memory budget (hardware/budget.py); null = the whole GPU
    hardware: Any = None
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
        require_count("max_batch_size", self.max_batch_size)
        require_seed("seed", self.seed)


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
    # the job's device (the root `hardware` group): on a bigger GPU vLLM's gpu_memory_utilization is
    # scaled to its memory budget (hardware/budget.py); null = the whole GPU
    hardware: Any = None

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
        require_seed("seed", self.seed)


# servers over HTTP ----------------------------------------------------------------------------
HTTP_APIS = ("completions", "chat")
PROMPT_FORMATS = ("auto", "token_ids", "text")
# how a request that ignores EOS says so: vLLM's (and SGLang's, TensorRT-LLM's, llama.cpp's) `ignore_eos`,
# `min_tokens` = max_tokens (vLLM, SGLang), a transformers `generation_config` with min_new_tokens (transformers
# serve, which rejects unknown fields), or nothing (OpenAI's own API rejects both extensions)
IGNORE_EOS_FIELDS = ("ignore_eos", "min_tokens", "generation_config", "none")
URL_PATTERN = re.compile(r"^https?://[^/\s]+(/\S*)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class HttpClientConfig:
    """How the harness talks to an OpenAI-compatible server (serving/backends/openai.py): one aiohttp
    session per engine on the process-wide event loop, every request streamed (SSE with usage).

    `prompt_format`: a prompt in token ids goes as a list of ints on /v1/completions (`auto`,
    `token_ids`) or as the text the model's tokenizer decodes it to (`text`: servers that take text
    only, such as transformers serve); /v1/chat/completions always sends text. `return_token_ids`:
    vLLM's extension that streams each chunk's token ids (exact output ids); without it the output
    count is the server's usage and the ids are the reply re-encoded by the local tokenizer.
    """

    model: Optional[str] = None  # the name the server serves; null = the first one /v1/models lists
    api: str = "completions"
    # NAME of the environment variable holding the API key (sent as a Bearer token; the key is never recorded)
    api_key_env: Optional[str] = None
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 3600.0  # one request, first byte sent to last byte received
    chunk_timeout_s: float = 600.0  # the longest wait for the next bytes of a stream (the first includes the queue)
    max_connections: int = 0  # open connections at most; 0 = no limit (one per request in flight, kept alive)
    prompt_format: str = "auto"
    ignore_eos_field: str = "ignore_eos"
    return_token_ids: bool = False
    reset_prefix_cache: bool = False  # POST /reset_prefix_cache before each job (vLLM: in VLLM_SERVER_DEV_MODE)
    metrics_path: Optional[str] = "/metrics"  # Prometheus text scraped by the `server` collector; null = none
    extra_body: Dict[str, Any] = field(default_factory=dict)  # fields added to every request body verbatim

    def check_client(self) -> None:
        require_choice("api", self.api, HTTP_APIS)
        require_choice("prompt_format", self.prompt_format, PROMPT_FORMATS)
        require_choice("ignore_eos_field", self.ignore_eos_field, IGNORE_EOS_FIELDS)
        for key in ("connect_timeout_s", "request_timeout_s", "chunk_timeout_s"):
            value = getattr(self, key)
            require(value > 0, key, value, "seconds > 0")
        require(self.max_connections >= 0, "max_connections", self.max_connections, "0 (no limit) or an integer >= 1")
        require(self.metrics_path is None or self.metrics_path.startswith("/"), "metrics_path", self.metrics_path,
                "null or a path starting with /")
        if self.api_key_env is not None:
            require(bool(ENV_NAME.match(self.api_key_env)), "api_key_env", self.api_key_env,
                    "the NAME of an environment variable (letters, digits, _), not the key itself")
            require(self.api_key_env in os.environ, "api_key_env", self.api_key_env,
                    f"an environment variable set in this shell (export {self.api_key_env}=...)")
        if self.api == "chat":
            require(self.prompt_format != "token_ids", "prompt_format", self.prompt_format,
                    "auto or text with api=chat (chat messages are text)")


@dataclass
class OpenAIServingConfig(HttpClientConfig):
    """Any OpenAI-compatible server the harness does not manage: `base_url` (http://host:8000/v1),
    or `endpoints`, replicas behind no router that requests are spread over round-robin."""

    _target_: str = "context_research.serving.backends.openai.OpenAIBackend"
    engine: str = "openai"
    base_url: Optional[str] = None
    endpoints: List[str] = field(default_factory=list)

    engine_family: ClassVar[Optional[str]] = None  # it runs elsewhere: no memory or installation rules here

    def __post_init__(self) -> None:
        require(bool(self.base_url) or bool(self.endpoints), "base_url", self.base_url,
                "the server's URL (http://host:port/v1), or null with serving.endpoints=[url, ...]")
        require(not (self.base_url and self.endpoints), "base_url", self.base_url,
                f"null when serving.endpoints is set ({len(self.endpoints)} replicas): one or the other")
        for key, url in [("base_url", self.base_url)] + [(f"endpoints[{i}]", u) for i, u in enumerate(self.endpoints)]:
            require(url is None or bool(URL_PATTERN.match(url)), key, url, "an http:// or https:// URL")
        self.check_client()

    @property
    def urls(self) -> list[str]:
        """The endpoints' base URLs (each ending at /v1, or wherever the API lives)."""
        return [url.rstrip("/") for url in (self.endpoints or [self.base_url])]


@dataclass
class ManagedServerConfig:
    """A server the harness starts (serving/servers/process.py) and stops: on a free port of `host`,
    its log in the folder of the job that started it (or `log_dir`), healthy within `startup_timeout_s`."""

    host: str = "127.0.0.1"
    port: int = 0  # 0 = a free port
    startup_timeout_s: float = 900.0
    stop_timeout_s: float = 30.0  # after SIGTERM, the process group is killed
    log_dir: Optional[str] = None  # null = the folder of the job that starts the server
    server_args: List[str] = field(default_factory=list)  # more command-line arguments, verbatim

    def check_server(self) -> None:
        require(0 <= self.port <= 65535, "port", self.port, "0 (a free port) or a TCP port")
        require(self.startup_timeout_s > 0, "startup_timeout_s", self.startup_timeout_s, "seconds > 0")
        require(self.stop_timeout_s > 0, "stop_timeout_s", self.stop_timeout_s, "seconds > 0")


@dataclass
class VLLMServerConfig(VLLMServingConfig, HttpClientConfig, ManagedServerConfig):
    """`vllm serve` started by the harness, with the in-process engine's arguments (the same schema,
    turned into command-line flags: serving/servers/vllm_server.py), measured over HTTP."""

    _target_: str = "context_research.serving.backends.managed.VLLMServerBackend"
    engine: str = "vllm_server"
    return_token_ids: bool = True
    reset_prefix_cache: bool = True

    engine_family: ClassVar[Optional[str]] = "vllm"

    def __post_init__(self) -> None:
        VLLMServingConfig.__post_init__(self)
        require(self.interface == "async", "interface", self.interface, "async (vllm serve runs AsyncLLM)")
        self.check_client()
        self.check_server()


@dataclass
class TransformersServerConfig(HttpClientConfig, ManagedServerConfig):
    """`transformers serve` (transformers' own OpenAI-compatible server) started by the harness on a
    local model directory: `model.path`, or the model materialised with seeded random weights and the
    built tokenizer (serving/model_source.py:materialize_model_dir)."""

    _target_: str = "context_research.serving.backends.managed.TransformersServerBackend"
    engine: str = "transformers_server"
    device: str = "auto"  # auto = cuda when available, else cpu
    dtype: str = "auto"  # auto = the model's dtype on CUDA, float32 on CPU (as serving=hf)
    attn_implementation: str = "sdpa"
    continuous_batching: bool = False
    seed: int = 0  # the materialised weights' seed and the server's default seed
    prompt_format: str = "text"  # its /v1/completions takes text only
    ignore_eos_field: str = "generation_config"  # it rejects fields outside OpenAI's schema

    engine_family: ClassVar[Optional[str]] = "hf"
    # what `transformers serve` imports (transformers[serving]); checked before anything starts
    required_modules: ClassVar[tuple[str, ...]] = ("fastapi", "uvicorn", "openai", "accelerate")

    def __post_init__(self) -> None:
        require(bool(DEVICE_PATTERN.match(self.device)), "device", self.device, "auto, cpu, cuda or cuda:N")
        require_choice("dtype", self.dtype, ("auto", "bfloat16", "float16", "float32"))
        require_choice("attn_implementation", self.attn_implementation, ("sdpa", "eager"))
        self.check_client()
        self.check_server()


def engine_family(serving: Any) -> Optional[str]:
    """The in-process engine a serving config runs (`vllm serve`: vllm, `transformers serve`: hf), whose
    weight, memory and installation rules apply to it; None for a server the harness does not run."""
    return getattr(type(serving), "engine_family", serving.engine)
