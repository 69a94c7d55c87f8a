"""vLLM 0.26 V1 engine in process: AsyncLLM (streamed) or LLM (offline batches).

Synthetic prompts go in as token ids (`skip_tokenizer_init` when the model has no tokenizer),
so a 32768-token prompt is exactly 32768 tokens. `disable_log_stats=False` makes every
RequestOutput carry the engine's own timestamps; from them each result gets the engine split
(docs/design.md, metric definitions): engine_queue, prefill, decode, engine_ttft (engine core), frontend_ttft (vLLM's
first_token_latency), engine_ipc = frontend_ttft - engine_ttft, harness_overhead = TTFT -
frontend_ttft. A stat logger records every engine step (running, waiting, KV usage, preemptions,
and the KV connector's own statistics where it keeps them: metrics/kv_transfer.py).

An engine with a NIXL connector starts with an environment of its own (`connector_environment`): a
free NIXL side-channel port (two engines on one host must not share vLLM's default) and UCX's INFO
log, with its protocol tables, in a folder of its own, from which schedulers/nixl.py reads the
transports the KV moved on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from context_research import devices
from context_research.config.scheduler import NIXL_CONNECTORS
from context_research.metrics.kv_transfer import connector_step_figures
from context_research.profiling.memory import combine_worker_reports, unavailable_report
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving import event_loop
from context_research.serving.backends import vllm_memory
from context_research.serving.backends.base import ServingBackend
from context_research.serving.model_source import load_tokenizer, materialize_config_dir, tokenizer_source

log = logging.getLogger(__name__)

OPTIONAL_ENGINE_ARGS = ("enable_chunked_prefill", "max_num_batched_tokens", "max_num_seqs", "enable_prefix_caching")


def engine_arguments(settings: Any, model: Any, model_dir: str, tokenizer_dir: str | None) -> dict[str, Any]:
    """vLLM EngineArgs keywords from the typed serving and model configs (pure: testable without vLLM)."""
    args: dict[str, Any] = {
        "model": str(model_dir),
        "tokenizer": tokenizer_dir,
        "skip_tokenizer_init": tokenizer_dir is None,
        "dtype": model.dtype if settings.dtype == "auto" else settings.dtype,
        "max_model_len": settings.max_model_len or model.max_model_len,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "enforce_eager": settings.enforce_eager,
        "kv_cache_dtype": settings.kv_cache_dtype,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "seed": settings.seed,
        "load_format": "dummy" if model.load_format == "dummy" else "auto",
        "disable_log_stats": False,
        # memory accounting read in the worker process by collective_rpc (backends/vllm_memory.py)
        "worker_extension_cls": vllm_memory.WORKER_EXTENSION,
    }
    if tokenizer_dir is None:
        del args["tokenizer"]
    for key in OPTIONAL_ENGINE_ARGS:
        if getattr(settings, key) is not None:
            args[key] = getattr(settings, key)
    if args.get("enable_chunked_prefill") is False and "max_num_batched_tokens" not in args:
        args["max_num_batched_tokens"] = args["max_model_len"]  # without chunking a step holds a whole prompt
    overrides = {**dict(model.hf_overrides), **dict(settings.hf_overrides)}
    if overrides:
        args["hf_overrides"] = overrides
    extra = dict(settings.extra_engine_args)
    if settings.max_cudagraph_capture_size is not None:  # merged into any compilation_config given
        extra["compilation_config"] = {**dict(extra.get("compilation_config") or {}),
                                       "max_cudagraph_capture_size": settings.max_cudagraph_capture_size}
    args.update(extra)
    return args


def sampling_arguments(request: GenerationRequest, detokenize: bool) -> dict[str, Any]:
    """SamplingParams keywords for one request (greedy at temperature 0)."""
    args = {"max_tokens": request.max_new_tokens, "temperature": request.temperature, "top_p": request.top_p,
            "seed": request.seed, "ignore_eos": request.ignore_eos, "detokenize": detokenize}
    if request.metadata.get("prompt_logprobs") is not None:
        args["prompt_logprobs"] = request.metadata["prompt_logprobs"]
    if request.metadata.get("kv_transfer_params") is not None:  # read by the engine's KV connector
        args["extra_args"] = {"kv_transfer_params": dict(request.metadata["kv_transfer_params"])}
    return args


def engine_split(metrics: Any, ttft_ms: float | None) -> dict[str, float]:
    """The engine's own timeline of a request (the engine split of docs/design.md), in ms."""
    if metrics is None or not getattr(metrics, "queued_ts", 0.0):
        return {}
    split = {
        "engine_queue_ms": (metrics.scheduled_ts - metrics.queued_ts) * 1e3,
        "prefill_ms": (metrics.first_token_ts - metrics.scheduled_ts) * 1e3,
        "decode_ms": (metrics.last_token_ts - metrics.first_token_ts) * 1e3,
        "engine_ttft_ms": (metrics.first_token_ts - metrics.queued_ts) * 1e3,
        "frontend_ttft_ms": metrics.first_token_latency * 1e3,
    }
    split["engine_ipc_ms"] = split["frontend_ttft_ms"] - split["engine_ttft_ms"]
    if ttft_ms is not None:
        split["harness_overhead_ms"] = ttft_ms - split["frontend_ttft_ms"]
    return split


def _step_logger_factory(sink: list[dict[str, Any]]):
    """A vLLM stat logger appending one sample per engine step to `sink`."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class StepLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0) -> None:
            sample = {"t": time.perf_counter(), "engine": engine_idx}
            if scheduler_stats is not None:
                sample.update(num_running=scheduler_stats.num_running_reqs,
                              num_waiting=scheduler_stats.num_waiting_reqs,
                              kv_cache_usage=scheduler_stats.kv_cache_usage)
                if scheduler_stats.kv_connector_stats:  # the connector's stats data, lists per transfer
                    sample.update(connector_step_figures(scheduler_stats.kv_connector_stats))
            if iteration_stats is not None:
                sample.update(num_preempted=iteration_stats.num_preempted_reqs,
                              generation_tokens=iteration_stats.num_generation_tokens)
            sink.append(sample)

        def log_engine_initialized(self) -> None:
            pass

    return StepLogger


_environment_lock = threading.Lock()
NIXL_SIDE_CHANNEL_PORT = "VLLM_NIXL_SIDE_CHANNEL_PORT"
UCX_LOG_FILE = "UCX_LOG_FILE"
# UCX's INFO log holds each endpoint's lanes (UCX protocols v1) or, with UCX_PROTO_INFO=y, the table
# of protocols it chose per operation (v2); kept where the environment sets them already
UCX_LOGGING = {"UCX_LOG_LEVEL": "info", "UCX_PROTO_INFO": "y"}
_ports_given: set[int] = set()


@contextlib.contextmanager
def engine_environment(device: str | None, variables: dict[str, str] | None = None):
    """While an engine starts, show it only `device` (cuda:N of this process, context_research.devices;
    None: no change) and set `variables`: vLLM runs a single-GPU engine on the first visible GPU, and
    its engine process inherits the environment when it starts. Restored afterwards."""
    changes = dict(variables or {})
    if device is not None:
        changes[devices.VARIABLE] = devices.entry_for(device)
    with _environment_lock:
        before = {key: os.environ.get(key) for key in changes}
        os.environ.update(changes)
        try:
            yield
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def free_port() -> int:
    """A TCP port free on this host now and not given to another engine of this process."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def connector_environment(engine_args: dict[str, Any], log_root: Path) -> dict[str, str]:
    """The environment the engine's KV connector needs (none for connectors other than NIXL's): a
    side-channel port of its own, and UCX's log in a fresh folder under `log_root`, one file per
    process (UCX_LOG_FILE's %p)."""
    transfer = engine_args.get("kv_transfer_config") or {}
    if transfer.get("kv_connector") not in NIXL_CONNECTORS:
        return {}
    port = free_port()
    log_root.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix=f"nixl-{port}-", dir=log_root))
    variables = {NIXL_SIDE_CHANNEL_PORT: str(port), UCX_LOG_FILE: str(log_dir / "ucx.%p.log")}
    variables.update({key: value for key, value in UCX_LOGGING.items() if key not in os.environ})
    return variables


class VLLMBackend(ServingBackend):
    """Engine `vllm` (config: VLLMServingConfig): AsyncLLM (`interface: async`) or LLM (`offline`)."""

    _ids = itertools.count()

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        super().__init__(config, model, cache_dir)
        self.interface = config.interface
        self.llm = None  # vllm.LLM (interface=offline)
        self.engine = None  # vllm AsyncLLM (interface=async)
        self.step_samples: list[dict[str, Any]] = []
        self.engine_args: dict[str, Any] = {}
        self.environment: dict[str, str] = {}  # set in the engine's processes while it started

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError as error:
            raise RuntimeError(f"serving=vllm: vLLM cannot be imported ({error}); install it on a GPU host: "
                               "pip install -e '.[vllm]'") from error
        model_dir = materialize_config_dir(self.model_config, self.cache_dir)
        self.tokenizer = load_tokenizer(self.model_config)
        tokenizer_dir = tokenizer_source(self.model_config, self.cache_dir)
        self.engine_args = engine_arguments(self.config, self.model_config, str(model_dir),
                                            str(tokenizer_dir) if tokenizer_dir else None)
        args = dict(self.engine_args)
        if isinstance(args.get("kv_transfer_config"), dict):
            from vllm.config import KVTransferConfig

            args["kv_transfer_config"] = KVTransferConfig(**args["kv_transfer_config"])
        self.environment = connector_environment(self.engine_args, Path(self.cache_dir) / "ucx")
        with engine_environment(self.config.device, self.environment):
            if self.interface == "offline":
                from vllm import LLM

                self.llm = LLM(**args)
            else:
                event_loop.run(self._start_async(args))
        self._close_memory_phase("load")

    async def _start_async(self, args: dict[str, Any]) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args),
                                                stat_loggers=[_step_logger_factory(self.step_samples)])

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None
        gc.collect()

    def reset_prefix_cache(self) -> None:
        """Start a job with an empty prefix cache, so no job reuses an earlier job's prompts."""
        if self.engine is not None:
            event_loop.run(self.engine.reset_prefix_cache())
        elif self.llm is not None:
            self.llm.reset_prefix_cache()

    def warmup(self) -> None:
        """A short request through the same path as the measured ones (compiles, fills graphs)."""
        self.generate(GenerationRequest(request_id="engine-warmup", prompt_token_ids=[100] * 16, max_new_tokens=4,
                                        ignore_eos=True))
        self._close_memory_phase("warmup")

    def _cache_config(self) -> Any:
        config = self.engine.vllm_config if self.engine is not None else self.llm.llm_engine.vllm_config
        return config

    def kv_capacity_tokens(self) -> int:
        cache = self._cache_config().cache_config
        return (cache.num_gpu_blocks or 0) * cache.block_size

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        config = self._cache_config()
        cache = config.cache_config
        return {"engine": "vllm", "vllm_version": version("vllm"), "interface": self.interface,
                "engine_args": {k: v for k, v in self.engine_args.items() if k != "model"},
                "environment": dict(self.environment),
                "block_size": cache.block_size, "num_gpu_blocks": cache.num_gpu_blocks or 0,
                "kv_capacity_tokens": self.kv_capacity_tokens(),
                "max_model_len": config.model_config.max_model_len}

    # memory ----------------------------------------------------------------------------------
    def _worker_rpc(self, method: str) -> list[Any]:
        """Call a worker method by name on every worker (one reply per tensor-parallel rank)."""
        if self.engine is not None:
            return event_loop.run(self.engine.collective_rpc(method))
        return self.llm.collective_rpc(method)

    async def worker_call(self, method: str) -> list[Any]:
        """A worker-extension method by name, from a coroutine on the engine's event loop (async interface)."""
        return await self.engine.collective_rpc(method)

    def reset_memory_peaks(self) -> None:
        """Restart the worker's torch peak statistics (the start of a phase)."""
        try:
            self._worker_rpc(vllm_memory.RESET)
        except Exception as error:  # the report then says memory is unavailable; the job goes on
            log.warning("vLLM worker peak reset failed: %s: %s", type(error).__name__, error)

    def memory_report(self) -> dict[str, Any]:
        """The workers' memory figures (profiling/memory.py), bytes summed over ranks."""
        try:
            return combine_worker_reports(self._worker_rpc(vllm_memory.REPORT))
        except Exception as error:
            return unavailable_report(f"vLLM worker memory report failed: {type(error).__name__}: {error}")

    def _close_memory_phase(self, phase: str) -> None:
        self.memory_phases[phase] = self.memory_report()
        self.reset_memory_peaks()

    # requests --------------------------------------------------------------------------------
    def _prompt(self, request: GenerationRequest):
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=self.prompt_ids(request))

    def _params(self, request: GenerationRequest, stream: bool):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        kind = RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY
        return SamplingParams(output_kind=kind, **sampling_arguments(request, self.tokenizer is not None))

    def _result(self, request: GenerationRequest, output: Any, token_ids: list[int], times: list[float],
                dispatch: float, first_last: tuple[float, float] | None = None,
                prompt_logprobs: list | None = None) -> GenerationResult:
        """`times`: each streamed output's arrival; `first_last` where only the engine's first and
        last token timestamps are known (offline batches); `prompt_logprobs` as vLLM gives them
        (None, then per position a dict token id -> Logprob), turned into the contract's floats."""
        completion = output.outputs[0]
        result = GenerationResult.from_outputs(
            request, len(output.prompt_token_ids), token_ids, times, dispatch, text=completion.text or "",
            metadata={"num_cached_tokens": output.num_cached_tokens or 0, "finish_reason": completion.finish_reason},
            first_last=first_last)
        if output.kv_transfer_params is not None:  # what the KV connector hands to the decode side
            result.metadata["kv_transfer_params"] = output.kv_transfer_params
        streamed = self.interface == "async"
        result.metadata.update(engine_split(output.metrics, result.ttft_ms if streamed else None))
        if prompt_logprobs:
            ids = output.prompt_token_ids
            result.metadata["prompt_logprobs"] = [None] + [
                position[token].logprob for position, token in zip(prompt_logprobs[1:], ids[1:])]
        return result

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Streamed: each output's arrival is stamped as the client sees it."""
        if self.engine is None:
            raise RuntimeError("generate_async needs serving.interface=async")
        prompt, params = self._prompt(request), self._params(request, stream=True)
        engine_request_id = f"{request.request_id}#{next(self._ids)}"
        token_ids: list[int] = []
        times: list[float] = []
        prompt_logprobs: list = []  # a chunked prefill streams them in pieces
        final = None
        dispatch = time.perf_counter()
        async for output in self.engine.generate(prompt, params, engine_request_id):
            now = time.perf_counter()
            new_ids = output.outputs[0].token_ids
            if new_ids:
                token_ids.extend(new_ids)
                times.append(now)
            if output.prompt_logprobs:
                prompt_logprobs.extend(output.prompt_logprobs)
            final = output
        return self._result(request, final, token_ids, times, dispatch, prompt_logprobs=prompt_logprobs)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.engine is not None:
            return super().generate(request)
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All at once. Async: every request in flight together; offline: one LLM.generate call,
        with first/last token times from the engine's timestamps (no per-token stream)."""
        if self.engine is not None:
            return super().generate_batch(requests)
        prompts = [self._prompt(r) for r in requests]
        params = [self._params(r, stream=False) for r in requests]
        dispatch = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for request, output in zip(requests, outputs):
            ids = list(output.outputs[0].token_ids)
            metrics = output.metrics
            results.append(self._result(request, output, ids, [], dispatch,
                                        first_last=(metrics.first_token_ts, metrics.last_token_ts),
                                        prompt_logprobs=output.prompt_logprobs))
        return results

    def prompt_logprobs(self, request: GenerationRequest) -> GenerationResult:
        """Score the prompt (ServingBackend.prompt_logprobs): one output token, prompt_logprobs=0."""
        return self.generate(dataclasses.replace(request, max_new_tokens=1, temperature=0.0,
                                                 metadata={**request.metadata, "prompt_logprobs": 0}))

    def step_log(self) -> list[dict[str, Any]]:
        """Engine-step samples so far (time on the harness clock)."""
        return list(self.step_samples)
