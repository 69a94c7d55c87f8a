"""SIGINT and SIGTERM as one clean stop: the job in progress raises `Interrupted` (a
KeyboardInterrupt), records itself `interrupted`, frees its engine, and the sweep stops.

SIGTERM's default action kills the process on the spot, leaving a manifest that says `running`
forever; Python only turns SIGINT into an exception. `stop_signals_raise` makes both raise.
`stop_deferred` holds a second signal back while a stopped job writes its record and frees its
engine (Ctrl-C pressed twice, or a signal that reaches a worker both from the terminal and from
the process that launched it). A process that received a stop signal starts no further job
(`raise_if_stopped`): a joblib worker is handed the sweep's next job right after its own stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MIN_GRACE_S = 0.5


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
    """Whether signals are being held back, the first one that arrived meanwhile, and the first this
    process received at all."""

    deferring = 0
    pending: str | None = None
    received: str | None = None


def _raise_interrupted(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    _StopState.received = _StopState.received or name
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


def raise_if_stopped() -> None:
    """Raise `Interrupted` when this process has already received a stop signal."""
    if _StopState.received:
        raise Interrupted(_StopState.received)


def pass_stop_signals_to_workers(sweep_dir: str | Path, timeout_s: float = 60.0) -> None:
    """For the process that waits on joblib's workers: a stop signal is passed on to every worker,
    whose job then records itself interrupted, and raises here only once those jobs' records no
    longer say `running` (at most `timeout_s` later), because joblib kills its workers outright
    (SIGKILL) the moment the waiting process stops. A job may take a while: one importing torch
    finishes the import first (app.import_torch_whole)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def pass_on(signum: int, frame) -> None:
        workers = {worker.pid for worker in multiprocessing.active_children()}
        for pid in workers:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        time.sleep(MIN_GRACE_S)  # a worker's handler runs when it next runs Python code
        deadline = time.monotonic() + timeout_s
        while _jobs_running(Path(sweep_dir), workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        raise Interrupted(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, pass_on)


def _jobs_running(sweep_dir: Path, workers: set[int]) -> bool:
    """Whether a job of the sweep run by one of `workers` still says `running` in its record."""
    from context_research.records.run_record import DamagedRecord, read_manifest, record_dirs

    for job_dir in record_dirs(sweep_dir) if sweep_dir.is_dir() else []:
        try:
            manifest = read_manifest(job_dir) or {}
        except DamagedRecord:
            continue
        if manifest.get("status") == "running" and (manifest.get("owner") or {}).get("pid") in workers:
            return True
    return False


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
