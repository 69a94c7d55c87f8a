"""Engines shared by the jobs of one multirun process, keyed by their configuration.

A prompt-length sweep starts its engine once. A job that needs engines with other keys stops
the old ones first (freeing their GPU memory) and starts its own. An engine that failed to start
(or warm up) is not started again in this process: the later jobs that need it fail at once with
its error (a memory budget whose KV cache cannot hold one max_model_len sequence fails every job of
that engine the same way, and each attempt costs a minute of GPU time).
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import json
import logging
import time
from typing import Any, Callable

from context_research.serving.backends.base import ServingBackend

log = logging.getLogger(__name__)
_ENGINES: dict[str, ServingBackend] = {}
_FAILED: dict[str, str] = {}  # key -> why that engine did not start, for this process's lifetime


class EngineStartFailed(RuntimeError):
    """A job's engine failed to start earlier in this process."""


def engine_key(*parts: Any) -> str:
    """Stable key of an engine configuration (serving + model + pool settings)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def acquire(wanted: dict[str, Callable[[], ServingBackend]]) -> tuple[dict[str, ServingBackend], float]:
    """Return started engines for the `wanted` keys and the seconds spent starting new ones.

    Engines with other keys are stopped first, so two configurations never share the GPU.
    """
    for key in wanted:
        if key in _FAILED:
            raise EngineStartFailed(f"engine {key} failed to start earlier in this process: {_FAILED[key]}")
    for key in [k for k in _ENGINES if k not in wanted]:
        release(key)
    started_s = 0.0
    for key, build in wanted.items():
        if key not in _ENGINES:
            t0 = time.perf_counter()
            engine = build()
            engine.engine_key = key
            _ENGINES[key] = engine  # cached at once, so a start that fails is stopped by release_all too
            try:
                engine.start()
                engine.warmup()
            except Exception as error:
                _FAILED[key] = f"{type(error).__name__}: {error}"
                raise
            started_s += time.perf_counter() - t0
            log.info("engine %s started in %.1f s", key, time.perf_counter() - t0)
    return {key: _ENGINES[key] for key in wanted}, started_s


def release(key: str) -> None:
    """Stop one cached engine and free its memory."""
    engine = _ENGINES.pop(key, None)
    if engine is None:
        return
    try:
        engine.stop()
    finally:
        del engine
        gc.collect()
        _empty_cuda_cache()


def release_all() -> None:
    """Stop every cached engine. An engine that fails to stop is logged and the rest are stopped all
    the same: a cleanup error never hides why they were released (a stop signal, a failed job)."""
    for key in list(_ENGINES):
        try:
            release(key)
        except Exception:  # noqa: BLE001 - logged; the engine is out of the cache either way
            log.exception("engine %s did not stop cleanly", key)


# engines stop in order at interpreter exit, not in whatever order garbage collection picks
atexit.register(release_all)


def _empty_cuda_cache() -> None:
    import sys

    torch = sys.modules.get("torch")  # only if an engine already imported it (app.run_job imports it whole)
    if torch is not None and torch.cuda.is_initialized():  # is_available() would poison later forks
        torch.cuda.empty_cache()
