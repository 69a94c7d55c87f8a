"""SIGINT and SIGTERM as one clean stop: the job in progress raises `Interrupted` (a
KeyboardInterrupt), records itself `interrupted`, frees its engine, and the sweep stops.

SIGTERM's default action kills the process on the spot, leaving a manifest that says `running`
forever; Python only turns SIGINT into an exception. `stop_signals_raise` makes both raise.
`stop_deferred` holds a signal back while a completed job writes its last files, so a job is
either completed with all its files or interrupted, never half of each.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; `signal_name` says which (SIGINT or SIGTERM)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)  # the only argument, so the exception pickles across processes
        self.signal_name = signal_name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal: 128 + its number."""
        return 128 + signal.Signals[self.signal_name].value


class _StopState:
    """Whether signals are being held back, and the first one that arrived meanwhile."""

    deferring = 0
    pending: str | None = None


def _raise_interrupted(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    if _StopState.deferring:
        _StopState.pending = _StopState.pending or name
        return
    raise Interrupted(name)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM raise `Interrupted` in the main thread; the previous
    handlers come back afterwards. Outside the main thread (where Python cannot install signal
    handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def stop_deferred() -> Iterator[None]:
    """Hold stop signals back for the block; one that arrived meanwhile is raised at its end."""
    _StopState.deferring += 1
    try:
        yield
    finally:
        _StopState.deferring -= 1
        if not _StopState.deferring and _StopState.pending:
            name, _StopState.pending = _StopState.pending, None
            raise Interrupted(name)  # a stop request outranks whatever the block raised
