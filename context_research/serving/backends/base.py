"""The engine contract: what every engine (in process or a server) gives the schedulers, benchmarks
and collectors, with a default for everything an engine may not have.

An engine is built as `Engine(config, model, cache_dir)` from its typed serving config (the
dataclass of its `serving=` option), the typed model config and the cache directory; it is started
once and reused by the jobs that share its configuration (`serving.engine_cache`). It must start,
stop and serve a streamed request (`generate_async`, awaited on the process-wide loop of
`serving.event_loop`); the blocking, batch and first-token paths derive from that unless the engine
has better ones. Memory figures, engine steps and the prefix cache are optional: the defaults say
"not reported" and change nothing.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from functools import cached_property
from typing import Any

from context_research.profiling.memory import unavailable_report
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving import event_loop
from context_research.serving.prompting import request_ids


class ServingBackend(abc.ABC):
    """An engine (see the module doc). Subclasses call `super().__init__(config, model, cache_dir)`."""

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        self.config = config
        self.model_config = model
        self.cache_dir = cache_dir
        self.engine_key = ""  # set by the engine cache
        self.tokenizer: Any = None  # the model's tokenizer where the engine loaded one
        # torch peaks of the engine's own phases (load, warmup), profiling/memory.py
        self.memory_phases: dict[str, dict[str, Any]] = {}

    @property
    def name(self) -> str:
        """The engine's name as configs say it (`serving.engine`)."""
        return self.config.engine

    # lifecycle -------------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Load the model (or start the server) and be ready to serve."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Release everything the engine holds (GPU memory, processes)."""

    def warmup(self) -> None:
        """One short request through the path measured requests take (kernels, graphs, pools)."""
        self.generate(GenerationRequest(request_id="engine-warmup", prompt_token_ids=[5] * 16, max_new_tokens=4,
                                        ignore_eos=True))

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the engine (its settings, version, capacity)."""
        return {"engine": self.name}

    # requests --------------------------------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's prompt in the model's tokens, as every engine encodes it (serving/prompting.py)."""
        return request_ids(self.tokenizer, request, self.model_config.chat_template_kwargs)

    @abc.abstractmethod
    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Serve one request, streamed: each output's arrival stamped as the client sees it."""

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """One request, waited for."""
        return event_loop.run(self.generate_async(request))

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Every request in flight at once; results in the order given."""
        async def all_requests() -> list[GenerationResult]:
            return list(await asyncio.gather(*(self.generate_async(r) for r in requests)))

        return event_loop.run(all_requests())

    def prefill(self, request: GenerationRequest) -> GenerationResult:
        """The prompt and its first token only."""
        return self.generate(dataclasses.replace(request, max_new_tokens=1))

    def prompt_logprobs(self, request: GenerationRequest) -> GenerationResult:
        """Score the prompt (perplexity): a prefill with one output token whose
        `metadata["prompt_logprobs"]` lists, for each prompt token i, the natural-log probability of
        token i given tokens < i (None for i = 0), in prompt order."""
        raise NotImplementedError(f"engine {self.name} cannot score prompts (prompt log-probabilities)")

    # the stop rule ---------------------------------------------------------------------------
    @cached_property
    def eos_ids(self) -> frozenset[int]:
        """The model's end-of-sequence token ids (its config's `eos_token_id`, one or a list)."""
        eos = self.model_config.config_json.get("eos_token_id")
        return frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])

    def finished(self, request: GenerationRequest, tokens: list[int]) -> bool:
        """Whether a request that has produced `tokens` is done: its budget is spent, or its last
        token ends the sequence (unless the request ignores EOS). Every engine and broker stops by it."""
        if len(tokens) >= request.max_new_tokens:
            return True
        return bool(tokens) and not request.ignore_eos and tokens[-1] in self.eos_ids

    # optional capabilities -------------------------------------------------------------------
    def memory_report(self) -> dict[str, Any]:
        """The engine's memory figures (profiling/memory.py); unknown by default."""
        return unavailable_report(f"engine {self.name} does not report its memory")

    def reset_memory_peaks(self) -> None:
        """Restart the engine's peak memory statistics (the start of a phase)."""

    def step_log(self) -> list[dict[str, Any]]:
        """Samples of the engine's scheduler, one per step (running, waiting, KV usage, preemptions)."""
        return []

    def reset_prefix_cache(self) -> None:
        """Empty the prefix cache, so no job reuses an earlier job's prompts."""

    def kv_capacity_tokens(self) -> int | None:
        """Tokens the engine's KV cache holds, where it has a fixed one."""
        return None

    def memory_budget(self) -> dict[str, Any] | None:
        """The GPU memory the engine runs under (hardware/budget.py `MemoryBudget.figures`, with the
        cap it applied), where it runs on a GPU; None elsewhere."""
        return None
