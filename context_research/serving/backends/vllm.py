"""vLLM 0.26 V1 engine in process: AsyncLLM (streamed) or LLM (offline batches).

Synthetic prompts go in as token ids (`skip_tokenizer_init` when the model has no tokenizer),
so a 32768-token prompt is exactly 32768 tokens. `disable_log_stats=False` makes every
RequestOutput carry the engine's own timestamps; from them each result gets the engine split
(DESIGN.md): engine_queue, prefill, decode, engine_ttft (engine core), frontend_ttft (vLLM's
first_token_latency), engine_ipc = frontend_ttft - engine_ttft, harness_overhead = TTFT -
frontend_ttft. A stat logger records every engine step (running, waiting, KV usage, preemptions).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import threading
import time
from typing import Any

from context_research import devices
from context_research.profiling.memory import combine_worker_reports, unavailable_report
from context_research.serving import event_loop
from context_research.serving.backends import vllm_memory
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.model_source import load_tokenizer, materialize_config_dir
from context_research.serving.prompting import encode_prompt

log = logging.getLogger(__name__)

OPTIONAL_ENGINE_ARGS = ("enable_chunked_prefill", "max_num_batched_tokens", "max_num_seqs", "enable_prefix_caching")


def engine_arguments(settings: dict[str, Any], model: Any, model_dir: str, tokenizer_dir: str | None) -> dict[str, Any]:
    """vLLM EngineArgs keywords from the serving and model configs (pure: testable without vLLM)."""
    args: dict[str, Any] = {
        "model": str(model_dir),
        "tokenizer": tokenizer_dir,
        "skip_tokenizer_init": tokenizer_dir is None,
        "dtype": model.dtype if settings.get("dtype", "auto") == "auto" else settings["dtype"],
        "max_model_len": settings.get("max_model_len") or model.max_model_len,
        "gpu_memory_utilization": settings.get("gpu_memory_utilization", 0.9),
        "enforce_eager": settings.get("enforce_eager", False),
        "kv_cache_dtype": settings.get("kv_cache_dtype", "auto"),
        "tensor_parallel_size": settings.get("tensor_parallel_size", 1),
        "seed": settings.get("seed", 0),
        "load_format": "dummy" if model.load_format == "dummy" else "auto",
        "disable_log_stats": False,
        # memory accounting read in the worker process by collective_rpc (backends/vllm_memory.py)
        "worker_extension_cls": vllm_memory.WORKER_EXTENSION,
    }
    if tokenizer_dir is None:
        del args["tokenizer"]
    for key in OPTIONAL_ENGINE_ARGS:
        if settings.get(key) is not None:
            args[key] = settings[key]
    if args.get("enable_chunked_prefill") is False and "max_num_batched_tokens" not in args:
        args["max_num_batched_tokens"] = args["max_model_len"]  # without chunking a step holds a whole prompt
    overrides = {**dict(model.hf_overrides), **dict(settings.get("hf_overrides") or {})}
    if overrides:
        args["hf_overrides"] = overrides
    extra = dict(settings.get("extra_engine_args") or {})
    if settings.get("max_cudagraph_capture_size") is not None:  # merged into any compilation_config given
        extra["compilation_config"] = {**dict(extra.get("compilation_config") or {}),
                                       "max_cudagraph_capture_size": settings["max_cudagraph_capture_size"]}
    args.update(extra)
    return args


def sampling_arguments(request: GenerationRequest, detokenize: bool) -> dict[str, Any]:
    """SamplingParams keywords for one request (greedy at temperature 0)."""
    args = {"max_tokens": request.max_new_tokens, "temperature": request.temperature, "top_p": request.top_p,
            "seed": request.seed, "ignore_eos": bool(request.metadata.get("ignore_eos", False)),
            "detokenize": detokenize}
    if request.metadata.get("prompt_logprobs") is not None:
        args["prompt_logprobs"] = request.metadata["prompt_logprobs"]
    if request.metadata.get("kv_transfer_params") is not None:  # read by the engine's KV connector
        args["extra_args"] = {"kv_transfer_params": dict(request.metadata["kv_transfer_params"])}
    return args


def engine_split(metrics: Any, ttft_ms: float | None) -> dict[str, float]:
    """The engine's own timeline of a request (DESIGN.md's engine split), in ms."""
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
                if scheduler_stats.kv_connector_stats:
                    sample["kv_connector_stats"] = str(scheduler_stats.kv_connector_stats)
            if iteration_stats is not None:
                sample.update(num_preempted=iteration_stats.num_preempted_reqs,
                              generation_tokens=iteration_stats.num_generation_tokens)
            sink.append(sample)

        def log_engine_initialized(self) -> None:
            pass

    return StepLogger


_device_lock = threading.Lock()


@contextlib.contextmanager
def visible_device(device: str | None):
    """While an engine starts, show it only `device` (cuda:N of this process, context_research.devices):
    vLLM runs a single-GPU engine on the first visible GPU, and its engine process inherits the
    environment when it starts. None: no change."""
    if device is None:
        yield
        return
    entry = devices.entry_for(device)
    with _device_lock:
        before = os.environ.get(devices.VARIABLE)
        os.environ[devices.VARIABLE] = entry
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(devices.VARIABLE, None)
            else:
                os.environ[devices.VARIABLE] = before


class VLLMBackend:
    """Engine `vllm`. `strict` (default): fail loudly when vLLM is missing; otherwise run the
    hf engine in its place, recorded as such in `describe()` and the manifest."""

    _ids = itertools.count()

    def __init__(self, model: Any, cache_dir: str = ".cache/context_research", engine: str = "vllm",
                 interface: str = "async", strict: bool = True, **engine_settings: Any) -> None:
        self.model_config = model
        self.cache_dir = cache_dir
        self.interface = interface
        self.strict = strict
        self.settings = engine_settings
        self.engine_key = ""
        self.llm = None  # vllm.LLM (interface=offline)
        self.engine = None  # vllm AsyncLLM (interface=async)
        self.tokenizer = None
        self.fallback = None
        self.fallback_reason: str | None = None
        self.step_samples: list[dict[str, Any]] = []
        self.engine_args: dict[str, Any] = {}
        self.memory_phases: dict[str, dict[str, Any]] = {}  # load, warmup: read in the worker

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError as error:
            if self.strict:
                raise RuntimeError(f"serving=vllm: vLLM cannot be imported ({error}). Install vllm 0.26 on a GPU "
                                   "host (pip install -e '.[vllm]'); serving.strict=false would run the hf "
                                   "engine instead") from error
            self._start_fallback(f"{type(error).__name__}: {error}")
            return
        model_dir = materialize_config_dir(self.model_config, self.cache_dir)
        self.tokenizer = load_tokenizer(self.model_config)
        tokenizer_dir = self.model_config.tokenizer or self.model_config.path
        self.engine_args = engine_arguments(self.settings, self.model_config, str(model_dir),
                                            str(tokenizer_dir) if tokenizer_dir else None)
        args = dict(self.engine_args)
        if isinstance(args.get("kv_transfer_config"), dict):
            from vllm.config import KVTransferConfig

            args["kv_transfer_config"] = KVTransferConfig(**args["kv_transfer_config"])
        with visible_device(self.settings.get("device")):
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

    def _start_fallback(self, reason: str) -> None:
        from context_research.serving.backends.hf import HFBackend

        log.warning("vLLM unavailable (%s): serving.strict=false, running the hf engine instead", reason)
        self.fallback_reason = reason
        self.fallback = HFBackend(model=self.model_config, cache_dir=self.cache_dir,
                                  seed=self.settings.get("seed", 0))
        self.fallback.start()
        self.memory_phases = self.fallback.memory_phases

    def stop(self) -> None:
        if self.fallback is not None:
            self.fallback.stop()
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
        if self.fallback is not None:
            self.fallback.warmup()
            return
        self.generate(GenerationRequest(request_id="engine-warmup", prompt_token_ids=[100] * 16,
                                        max_new_tokens=4, metadata={"ignore_eos": True}))
        self._close_memory_phase("warmup")

    def describe(self) -> dict[str, Any]:
        if self.fallback is not None:
            return {**self.fallback.describe(), "fallback_from": "vllm", "fallback_reason": self.fallback_reason}
        from importlib.metadata import version

        config = self.engine.vllm_config if self.engine is not None else self.llm.llm_engine.vllm_config
        cache = config.cache_config
        blocks = cache.num_gpu_blocks or 0
        return {"engine": "vllm", "vllm_version": version("vllm"), "interface": self.interface,
                "engine_args": {k: v for k, v in self.engine_args.items() if k != "model"},
                "block_size": cache.block_size, "num_gpu_blocks": blocks,
                "kv_capacity_tokens": blocks * cache.block_size,
                "max_model_len": config.model_config.max_model_len}

    # memory ----------------------------------------------------------------------------------
    def _worker_rpc(self, method: str) -> list[Any]:
        """Call a worker method by name on every worker (one reply per tensor-parallel rank)."""
        if self.engine is not None:
            return event_loop.run(self.engine.collective_rpc(method))
        return self.llm.collective_rpc(method)

    def reset_memory_peaks(self) -> None:
        """Restart the worker's torch peak statistics (the start of a phase)."""
        if self.fallback is not None:
            self.fallback.reset_memory_peaks()
            return
        try:
            self._worker_rpc(vllm_memory.RESET)
        except Exception as error:  # the report then says memory is unavailable; the job goes on
            log.warning("vLLM worker peak reset failed: %s: %s", type(error).__name__, error)

    def memory_report(self) -> dict[str, Any]:
        """The workers' memory figures (profiling/memory.py), bytes summed over ranks."""
        if self.fallback is not None:
            return self.fallback.memory_report()
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

        ids = encode_prompt(self.tokenizer, request, self.model_config.chat_template_kwargs)
        return TokensPrompt(prompt_token_ids=ids)

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
        first, last = first_last or (times[0], times[-1])
        result = GenerationResult(
            request_id=request.request_id, text=completion.text or "", prompt_tokens=len(output.prompt_token_ids),
            completion_tokens=len(token_ids), output_token_ids=token_ids, dispatch_time=dispatch,
            first_token_time=first, last_token_time=last, token_times=times,
            arrival_time=request.arrival_time,
            metadata={"num_cached_tokens": output.num_cached_tokens or 0,
                      "finish_reason": completion.finish_reason})
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
        if self.fallback is not None:
            return await self.fallback.generate_async(request)
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
        if self.fallback is not None:
            return self.fallback.generate(request)
        if self.engine is not None:
            return event_loop.run(self.generate_async(request))
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All at once. Async: every request in flight together; offline: one LLM.generate call,
        with first/last token times from the engine's timestamps (no per-token stream)."""
        if self.fallback is not None:
            return self.fallback.generate_batch(requests)
        if self.engine is not None:
            async def all_requests():
                return await asyncio.gather(*(self.generate_async(r) for r in requests))
            return event_loop.run(all_requests())
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
        if self.fallback is not None:
            return self.fallback.prompt_logprobs(request)
        scoring = GenerationRequest(**{**request.__dict__, "max_new_tokens": 1, "temperature": 0.0,
                                       "metadata": {**request.metadata, "prompt_logprobs": 0}})
        return self.generate(scoring)

    def prefill(self, request: GenerationRequest) -> GenerationResult:
        """The prompt and its first token only (max_tokens=1)."""
        first_only = GenerationRequest(**{**request.__dict__, "max_new_tokens": 1})
        return self.generate(first_only)

    def step_log(self) -> list[dict[str, Any]]:
        """Engine-step samples so far (time on the harness clock)."""
        return list(self.step_samples)
