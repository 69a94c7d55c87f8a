"""SIGINT and SIGTERM as one clean stop: the job in progress raises `Interrupted` (a
KeyboardInterrupt), records itself `interrupted`, frees its engine, and the sweep stops.

SIGTERM's default action kills the process on the spot, leaving a manifest that says `running`
forever; Python only turns SIGINT into an exception. `stop_signals_raise` makes both raise.
`stop_deferred` holds a second signal back while a stopped job writes its record and frees its
engine (Ctrl-C pressed twice, or a signal that reaches a worker both from the terminal and from
the process that launched it).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
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


def pass_stop_signals_to_workers(grace_s: float = 3.0) -> None:
    """For the process that waits on joblib's workers: a stop signal is passed on to every worker,
    whose job then records itself interrupted, and raises here only `grace_s` later, because joblib
    kills its workers outright (SIGKILL) the moment the waiting process stops."""
    if threading.current_thread() is not threading.main_thread():
        return

    def pass_on(signum: int, frame) -> None:
        for worker in multiprocessing.active_children():
            try:
                os.kill(worker.pid, signum)
            except ProcessLookupError:
                pass
        time.sleep(grace_s)
        raise Interrupted(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, pass_on)


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


def describe_stop(stop: BaseException) -> str:
    """What stopped a job, for its manifest: the signal, or the exit a cluster helper forced
    (submitit exits a job it requeues at its time limit)."""
    if isinstance(stop, Interrupted):
        return str(stop)
    if isinstance(stop, KeyboardInterrupt):
        return "interrupted by SIGINT"
    return f"interrupted: the process exited ({type(stop).__name__}: {getattr(stop, 'code', None)})"
