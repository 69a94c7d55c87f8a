"""One asyncio event loop for the life of the process, running in a background thread.

vLLM's AsyncLLM stays bound to the loop it first ran on, so jobs must not call `asyncio.run`
(a new loop each time). Every coroutine the harness awaits goes through `run`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The process-wide loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="context-research-loop", daemon=True).start()
        return _loop


def run(coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run `coroutine` on the process-wide loop and wait for its result from this thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop()).result(timeout)
