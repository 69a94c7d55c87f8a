"""transformers engine: real forward passes with an explicit KV cache, greedy or sampled decoding.

`generate` runs one request: prefill the prompt into a `DynamicCache`, then one forward pass per
output token. `generate_batch` runs requests in batches of up to `max_batch_size`: prompts
left-padded under an attention mask, one forward pass per step for the whole batch, finished
requests dropped from the batch. `generate_async` queues a request for a background worker that
batches whatever is queued the same way (static batching: a batch runs to its end before the next
forms). Each token's arrival is stamped with `time.perf_counter()` after the token is on the host
(the copy synchronises CUDA), so TTFT/TPOT/ITL are real; in a batch each request keeps its own
dispatch (its batch's start), token and last-token times.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from context_research.hardware.budget import MemoryBudget, engine_memory_budget
from context_research.profiling.memory import InProcessMemory
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.base import ServingBackend

LOGPROB_CHUNK = 4096  # prompt positions log-softmaxed at once (bounds the float32 copy of the logits)


@dataclass
class PrefillState:
    """A prompt's KV cache and first token, as handed from prefill to decode."""

    cache: Any
    next_token: Any  # 1x1 tensor on the engine's device
    prompt_tokens: int


class HFBackend(ServingBackend):
    """Engine `hf` (config: HFServingConfig). Built from the model config (seeded random weights) or
    `model.path`."""

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        super().__init__(config, model, cache_dir)
        self.max_batch_size = config.max_batch_size
        self.seed = config.seed
        self.model = None
        self.budget: MemoryBudget | None = None
        self._cuda_index = 0
        self._queue: queue.Queue | None = None
        self._worker: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        import torch

        from context_research.serving.model_source import build_hf_model, load_tokenizer

        device = self.config.device
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        if self.device.type == "cpu" and self.config.cpu_threads:
            torch.set_num_threads(self.config.cpu_threads)
        self.dtype = getattr(torch, self.model_config.engine_dtype(self.config.dtype, self.device.type == "cuda"))
        if self.device.type == "cuda":
            self._cap_memory()
        self.memory = InProcessMemory(self.device)
        self.memory_phases = self.memory.phases
        self.memory.reset_peaks()
        self.model = build_hf_model(self.model_config, self.cache_dir, str(self.device), self.dtype,
                                    self.seed, self.config.attn_implementation)
        self.tokenizer = load_tokenizer(self.model_config)
        # transformers 5.17 calls the cache `past_key_values`; later 5.x releases call it `cache`
        params = inspect.signature(self.model.forward).parameters
        self._cache_keyword = "cache" if "cache" in params else "past_key_values"
        self.memory.watch(self.model, self._cache_keyword)
        self.memory.close_phase("load")

    def _cap_memory(self) -> None:
        """Hold the allocator to the GPU's memory budget (hardware/budget.py): emulated, the budget less
        the CUDA context; otherwise the whole GPU (the cap is per process, so an earlier engine's is undone)."""
        import torch

        self._cuda_index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        self.budget = engine_memory_budget(self.config.hardware, self._cuda_index)
        fraction = self.budget.torch_memory_fraction() if self.budget is not None else 1.0
        torch.cuda.set_per_process_memory_fraction(fraction, self._cuda_index)

    def stop(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = self._queue = None
        self.model = None
        self.tokenizer = None
        try:
            import torch

            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()
                if self.budget is not None and self.budget.emulated:  # what runs next gets the whole GPU
                    torch.cuda.set_per_process_memory_fraction(1.0, self._cuda_index)
        except ImportError:
            pass

    def warmup(self) -> None:
        """One short request, so kernels and allocator pools are ready before measuring."""
        self.generate(GenerationRequest(request_id="engine-warmup", prompt_token_ids=[5] * 8, max_new_tokens=2,
                                        ignore_eos=True))
        self.memory.close_phase("warmup")

    def describe(self) -> dict[str, Any]:
        import torch

        return {"engine": "hf", "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "quantization": self.model_config.quantization, "attn_implementation": self.config.attn_implementation,
                "cache_keyword": self._cache_keyword, "memory_budget": self.memory_budget(),
                "cpu_threads": torch.get_num_threads() if self.device.type == "cpu" else None}

    def memory_budget(self) -> dict[str, Any] | None:
        if self.budget is None:
            return None
        return {**self.budget.figures(), "torch_memory_fraction": self.budget.torch_memory_fraction()}

    # memory (profiling/memory.py): torch peaks per phase, parameter and KV cache bytes -------
    def reset_memory_peaks(self) -> None:
        self.memory.reset_peaks()

    def memory_report(self) -> dict[str, Any]:
        return self.memory.report()

    # requests --------------------------------------------------------------------------------
    def _forward(self, input_ids, cache):
        return self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1,
                          **{self._cache_keyword: cache})

    def _pick(self, logits, request: GenerationRequest, generator):
        """The next token: greedy at temperature 0, else sampled after transformers' temperature and
        top-p warpers (the logits processors its `generate` uses)."""
        import torch
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        if request.temperature <= 0:
            return logits[:, -1].argmax(dim=-1, keepdim=True)
        warpers = LogitsProcessorList([TemperatureLogitsWarper(request.temperature)])
        if request.top_p < 1.0:
            warpers.append(TopPLogitsWarper(request.top_p))
        scores = warpers(None, logits[:, -1].float())
        return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)

    def _generator(self, request: GenerationRequest):
        import torch

        if request.temperature <= 0:
            return None
        generator = torch.Generator(device=self.device)
        generator.manual_seed(request.seed if request.seed is not None else self.seed)
        return generator

    def prefill_state(self, request: GenerationRequest, ids: list[int]) -> tuple[PrefillState, float]:
        """Run the prompt; return its KV cache and first token, and the first token's time."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            input_ids = torch.tensor([ids], device=self.device)
            logits = self._forward(input_ids, cache).logits
            token = self._pick(logits, request, self._generator(request))
            token.cpu()  # synchronise: the token is on the host now
        return PrefillState(cache=cache, next_token=token, prompt_tokens=len(ids)), time.perf_counter()

    def decode_from(self, request: GenerationRequest, state: PrefillState, first_time: float,
                    dispatch_time: float) -> GenerationResult:
        """Continue greedy/sampled decoding from a prefill state (local or handed over)."""
        import torch

        generator = self._generator(request)
        token = state.next_token.to(self.device)
        tokens = [int(token.item())]
        times = [first_time]
        with torch.inference_mode():
            while not self.finished(request, tokens):
                logits = self._forward(token, state.cache).logits
                token = self._pick(logits, request, generator)
                tokens.append(int(token.item()))
                times.append(time.perf_counter())
        return GenerationResult.from_outputs(request, state.prompt_tokens, tokens, times, dispatch_time,
                                             text=self._decode(tokens))

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True) if self.tokenizer else ""

    def prefill(self, request: GenerationRequest) -> GenerationResult:
        """Prompt only: the first token, with the KV cache in `metadata['prefill_state']`."""
        dispatch = time.perf_counter()
        state, first = self.prefill_state(request, self.prompt_ids(request))
        return GenerationResult.from_outputs(request, state.prompt_tokens, [int(state.next_token.item())], [first],
                                             dispatch, metadata={"prefill_state": state})

    def prompt_logprobs(self, request: GenerationRequest) -> GenerationResult:
        """Prefill that also scores the prompt (the `ServingBackend.prompt_logprobs` contract): all
        positions' logits in one forward pass, log-softmaxed in float32 a chunk of positions at a time."""
        import torch

        ids = self.prompt_ids(request)
        dispatch = time.perf_counter()
        with torch.inference_mode():
            input_ids = torch.tensor([ids], device=self.device)
            logits = self.model(input_ids=input_ids, use_cache=False, logits_to_keep=0).logits[0]
            scored: list[float | None] = [None]
            for start in range(0, len(ids) - 1, LOGPROB_CHUNK):
                chunk = torch.log_softmax(logits[start:start + LOGPROB_CHUNK].float(), dim=-1)
                targets = input_ids[0, start + 1:start + 1 + LOGPROB_CHUNK, None]
                scored.extend(chunk[:len(targets)].gather(-1, targets)[:, 0].tolist())
            token = int(self._pick(logits[None, -1:], request, self._generator(request)).item())
        return GenerationResult.from_outputs(request, len(ids), [token], [time.perf_counter()], dispatch,
                                             metadata={"prompt_logprobs": scored})

    def generate(self, request: GenerationRequest) -> GenerationResult:
        ids = self.prompt_ids(request)
        dispatch = time.perf_counter()
        state, first = self.prefill_state(request, ids)
        return self.decode_from(request, state, first, dispatch)

    # batches ---------------------------------------------------------------------------------
    def _pick_rows(self, logits, requests: list[GenerationRequest], generators: list):
        """The next token of each row: one argmax for an all-greedy batch, else row by row."""
        import torch

        if all(r.temperature <= 0 for r in requests):
            return logits[:, -1].argmax(dim=-1, keepdim=True)
        return torch.cat([self._pick(logits[row:row + 1], request, generators[row])
                          for row, request in enumerate(requests)])

    def run_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """One batch: left-padded prefill under an attention mask, then one decode step per token
        for the requests still running (finished ones leave the batch and its cache)."""
        import torch
        from transformers import DynamicCache

        prompts = [self.prompt_ids(r) for r in requests]
        dispatch = time.perf_counter()
        width = max(len(ids) for ids in prompts)
        input_ids = torch.zeros((len(prompts), width), dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids):] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        generators = [self._generator(r) for r in requests]
        tokens: list[list[int]] = [[] for _ in requests]
        times: list[list[float]] = [[] for _ in requests]
        running = list(range(len(requests)))  # request index of each batch row
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                use_cache=True, logits_to_keep=1, **{self._cache_keyword: cache}).logits
            while True:
                picked = self._pick_rows(logits, [requests[i] for i in running],
                                         [generators[i] for i in running])
                values = picked.view(-1).tolist()  # on the host: synchronised
                now = time.perf_counter()
                keep = []
                for row, (index, token) in enumerate(zip(running, values)):
                    tokens[index].append(int(token))
                    times[index].append(now)
                    if not self.finished(requests[index], tokens[index]):
                        keep.append(row)
                if not keep:
                    break
                if len(keep) < len(running):
                    rows = torch.tensor(keep, device=self.device)
                    cache.batch_select_indices(rows)
                    picked, mask, positions = picked[rows], mask[rows], positions[rows]
                    running = [running[row] for row in keep]
                mask = torch.cat([mask, mask.new_ones((len(running), 1))], dim=1)
                positions = positions[:, -1:] + 1
                logits = self.model(input_ids=picked, attention_mask=mask, position_ids=positions,
                                    use_cache=True, logits_to_keep=1, **{self._cache_keyword: cache}).logits
        return [GenerationResult.from_outputs(request, len(prompts[i]), tokens[i], times[i], dispatch,
                                              text=self._decode(tokens[i]), metadata={"batch_size": len(requests)})
                for i, request in enumerate(requests)]

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """An offline batch: `max_batch_size` requests at a time, in order."""
        results: list[GenerationResult] = []
        for start in range(0, len(requests), self.max_batch_size):
            results += self.run_batch(requests[start:start + self.max_batch_size])
        return results

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Queue the request for the batching worker and wait for its result."""
        if self._worker is None:
            self._queue = queue.Queue()
            self._worker = threading.Thread(target=self._serve_queue, name=f"hf-batcher-{self.engine_key}",
                                            daemon=True)
            self._worker.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put((request, future))
        return await future

    def _serve_queue(self) -> None:
        """Worker: take the first queued request and whatever else is queued (up to
        `max_batch_size`), run them as one batch, hand each result back to its waiting task."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # stop after this batch
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                results = self.run_batch([request for request, _ in batch])
            except Exception as error:  # every waiting request gets the error
                for _, future in batch:
                    future.get_loop().call_soon_threadsafe(_settle, future, None, error)
                continue
            for (_, future), result in zip(batch, results):
                future.get_loop().call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    """Complete a waiting request's future on its own loop (unless its task was cancelled)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
