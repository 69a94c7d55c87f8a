"""The scheduler contract: which pool (engine) runs each request's prefill and which its decode.

A scheduler is built as `Scheduler(config)` from its typed config. It names its pools and the
engine-argument overrides of each (`pools`), gets the started engines (`bind`), serves requests the
three ways the benchmarks send them (`generate`, `generate_async`, `generate_batch`) and logs
every routing decision (`route_prefill`, `route_decode`): that log is where a record's route
columns come from (`route_table`). `close` stops whatever the scheduler started beside the
engines (a broker's workers); the engines stay cached for the next job.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from typing import Any

import pandas as pd

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.base import ServingBackend

PREFILL = "prefill"
DECODE = "decode"


class Scheduler(abc.ABC):
    """A scheduler (see the module doc). Subclasses call `super().__init__(config)`."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.engines: dict[str, ServingBackend] = {}
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.config.name

    # pools -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def pools(self) -> dict[str, dict[str, Any]]:
        """Pool name -> engine-argument overrides for that pool's engine."""

    def bind(self, engines: dict[str, ServingBackend]) -> None:
        """Attach the started engine of each pool."""
        self.engines = dict(engines)

    def close(self) -> None:
        """Stop what the scheduler started beside the engines."""

    def pool_device(self, pool: str) -> str | None:
        """The device a pool's engine runs on, where the scheduler placed it."""
        return None

    def kv_capacity_tokens(self) -> float:
        """KV cache capacity in tokens over the scheduler's engines; NaN unless every engine has one."""
        capacities = [engine.kv_capacity_tokens() for engine in self.engines.values()]
        if not capacities or any(c is None for c in capacities):
            return math.nan
        return float(sum(capacities))

    # routing ---------------------------------------------------------------------------------
    def _route(self, request_id: str, phase: str, pool: str) -> str:
        entry = {"request_id": request_id, "phase": phase, "pool": pool, "t": time.perf_counter()}
        device = self.pool_device(pool)
        if device is not None:
            entry["device"] = device
        with self._log_lock:
            self._log.append(entry)
        return pool

    @abc.abstractmethod
    def route_prefill(self, request: GenerationRequest) -> str:
        """The pool that runs the request's prompt (logged)."""

    @abc.abstractmethod
    def route_decode(self, request_id: str) -> str:
        """The pool that decodes the request after its first token (logged)."""

    def route_log(self) -> list[dict[str, Any]]:
        """Every routing decision so far: request_id, phase (prefill|decode), pool, device, t."""
        with self._log_lock:
            return list(self._log)

    def route_table(self) -> pd.DataFrame:
        """One row per routed request: `route` (its pools in order, `prefill->decode`), `prefill_pool`,
        `decode_pool` (the prefill pool when nothing was handed over) and their devices where known.
        A request routed more than once (sent again) keeps its first route."""
        routes: dict[str, dict[str, Any]] = {}
        for entry in self.route_log():
            route = routes.setdefault(entry["request_id"], {})
            if entry["phase"] == PREFILL and "prefill_pool" not in route:
                route.update(prefill_pool=entry["pool"], prefill_device=entry.get("device"))
            elif entry["phase"] == DECODE and "prefill_pool" in route and "decode_pool" not in route:
                route.update(decode_pool=entry["pool"], decode_device=entry.get("device"))
        rows = []
        for request_id, route in routes.items():
            if "prefill_pool" not in route:
                continue
            handed_over = "decode_pool" in route
            row = {"request_id": request_id,
                   "route": f"{route['prefill_pool']}->{route['decode_pool']}" if handed_over else route["prefill_pool"],
                   "prefill_pool": route["prefill_pool"],
                   "decode_pool": route["decode_pool"] if handed_over else route["prefill_pool"]}
            if route["prefill_device"] is not None:
                row["prefill_device"] = route["prefill_device"]
                row["decode_device"] = route["decode_device"] if handed_over else route["prefill_device"]
            rows.append(row)
        return pd.DataFrame(rows)

    # requests --------------------------------------------------------------------------------
    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> GenerationResult:
        """One request, waited for."""

    @abc.abstractmethod
    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Streamed, many in flight; awaited on the process-wide loop of `serving.event_loop`."""

    @abc.abstractmethod
    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """An offline batch, submitted all at once; results in the order given."""

    def prompt_logprobs(self, request: GenerationRequest) -> GenerationResult:
        """Score the prompt (perplexity tasks) on the pool that prefills it."""
        return self.engines[self.route_prefill(request)].prompt_logprobs(request)
