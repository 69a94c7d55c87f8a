"""A server process the harness owns, from its start to its stop.

It runs in a session of its own (`start_new_session`: its own process group, so one signal reaches
the server and every process it forks, such as vLLM's engine core), under parent_watch.py, with
stdout and stderr in a log file, and is ready when its health URL answers 200. A server that exits,
or is not healthy within the start-up timeout, fails with `ServerFailed`: one line, then the log's
last lines. It is stopped as a whole group: SIGTERM, then SIGKILL for whatever is left after the
stop timeout.

Nothing is left running: a server stops when the engine holding it is released (a sweep's end, a
failed job, SIGINT/SIGTERM: app.run_job releases every engine), at the harness's normal exit
(atexit), and, on Linux, when the harness is killed outright (parent_watch.py: the kernel tells the
group's leader, which stops the group).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

log = logging.getLogger(__name__)
TAIL_LINES = 20
POLL_S = 0.5
PROGRESS_EVERY_S = 30.0
_RUNNING: set["ManagedServer"] = set()
_registry_lock = threading.Lock()


class ServerFailed(RuntimeError):
    """A managed server exited or never became healthy: one line, then the last lines of its log."""


def free_port(host: str) -> int:
    """A TCP port nobody listens on at `host` now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log (empty where it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return [line.decode(errors="replace").rstrip() for line in deque(handle, maxlen=lines)]
    except OSError:
        return []


def answers_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether GET `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class ManagedServer:
    """One server process: `command` run with `env`, its output appended to `log_path`."""

    def __init__(self, name: str, command: list[str], log_path: Path, health_url: str,
                 env: dict[str, str] | None = None, stop_timeout_s: float = 30.0) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = Path(log_path)
        self.health_url = health_url
        self.env = dict(os.environ if env is None else env)
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The process group's id: its leader, parent_watch, whose child the server is."""
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, startup_timeout_s: float) -> None:
        """Start the process and wait until it is healthy; on any failure (or a stop signal while
        waiting) the process group is stopped before the error propagates."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        guarded = [sys.executable, "-m", "context_research.serving.servers.parent_watch", str(os.getpid()),
                   str(self.stop_timeout_s), "--", *self.command]
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"$ {' '.join(self.command)}\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(guarded, stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        with _registry_lock:
            _RUNNING.add(self)
        log.info("%s: started (pid %d), log %s", self.name, self.process.pid, self.log_path)
        try:
            self._wait_healthy(startup_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout_s: float) -> None:
        start = time.monotonic()
        next_progress = start + PROGRESS_EVERY_S
        while True:
            code = self.process.poll()
            if code is not None:
                raise self._failure(f"exited with code {code} before it was healthy "
                                    f"({time.monotonic() - start:.0f} s after its start)")
            if answers_ok(self.health_url):
                self.startup_s = time.monotonic() - start
                log.info("%s: healthy after %.1f s", self.name, self.startup_s)
                return
            now = time.monotonic()
            if now - start > timeout_s:
                raise self._failure(f"was not healthy within {timeout_s:.0f} s ({self.health_url} never answered 200)")
            if now >= next_progress:
                log.info("%s: waiting for %s (%.0f s)", self.name, self.health_url, now - start)
                next_progress = now + PROGRESS_EVERY_S
            time.sleep(POLL_S)

    def _failure(self, what: str) -> ServerFailed:
        tail = log_tail(self.log_path)
        lines = [f"{self.name} {what}; log: {self.log_path}"]
        if tail:
            lines.append(f"last {len(tail)} lines of the log:")
            lines.extend(f"  | {line}" for line in tail)
        return ServerFailed("\n".join(lines))

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after `stop_timeout_s`. Idempotent."""
        with self._lock:
            process = self.process
            if process is None:
                return
            group = process.pid  # the session leader: its pid is the group's id
            self._signal_group(group, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s: still running %.0f s after SIGTERM; killing its process group", self.name,
                            self.stop_timeout_s)
            while self._group_alive(group) and time.monotonic() < deadline:  # forked processes finishing
                time.sleep(0.1)
            if self._group_alive(group):
                self._signal_group(group, signal.SIGKILL)
            process.wait()
            self.process = None
            with _registry_lock:
                _RUNNING.discard(self)
            log.info("%s: stopped (exit code %s)", self.name, process.returncode)

    @staticmethod
    def _signal_group(group: int, sig: signal.Signals) -> None:
        try:
            os.killpg(group, sig)
        except ProcessLookupError:  # every process of the group has exited
            pass

    @staticmethod
    def _group_alive(group: int) -> bool:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # the id was reused by another user's process: not ours
            return False
        return True


def stop_all() -> None:
    """Stop every server still running (the harness is exiting)."""
    with _registry_lock:
        servers = list(_RUNNING)
    for server in servers:
        server.stop()


def running_servers() -> list[ManagedServer]:
    with _registry_lock:
        return list(_RUNNING)


atexit.register(stop_all)
