"""The client's own health during a job: is the harness, not the server, what limits the run?

Event-loop lag. Every streamed chunk is read by a task on the process-wide event loop
(serving/event_loop.py), so a busy loop stamps chunks late and sends requests late. A probe measures
the delay a chunk would see: every `interval_s` a thread writes its clock reading into a socket
whose reader is registered on the loop; the reader wakes a callback the way a stream's data wakes
its task (one more pass of the loop), and the lag is the time from the write to that callback.
A socket wakes the loop at once, so the lag is not inflated by the loop's timer resolution
(epoll waits in whole milliseconds), and the probe's phase is independent of the loop's work.

CPU share. The process's CPU time over the job's wall time (in cores: above 1 means several threads
worked at once), and the event-loop thread's own (a fraction of one core: the loop runs on one).

Where a job's engines are HTTP clients (serving=openai and the managed servers), the section says
`client_limited` and lists warnings, also logged to the console, when the loop lag's p99 exceeds
`max_lag_p99_ms` or the loop thread uses at least `max_loop_cpu_share` of a core: then the figures
measure the client as much as the server. In-process engines share the process with the harness,
so their figures are recorded without a verdict.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from context_research.metrics.schema import ClientSection, Section
from context_research.profiling.base import MetricCollector
from context_research.serving import event_loop

log = logging.getLogger(__name__)
STAMP = struct.Struct("d")


class LoopLagProbe:
    """The lag probe of the module doc, on `loop`; `lags` holds (sent at, lag) in perf_counter seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float) -> None:
        self.loop = loop
        self.interval_s = interval_s
        self.lags: list[tuple[float, float]] = []
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._pending = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="loop-lag-probe", daemon=True)

    def start(self) -> None:
        event_loop.run(self._attach())
        self._thread.start()

    async def _attach(self) -> None:
        self.loop.add_reader(self._reader.fileno(), self._readable)

    def _send(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._writer.send(STAMP.pack(time.perf_counter()))
            except OSError:  # closed while stopping
                return

    def _readable(self) -> None:
        try:
            data = self._pending + self._reader.recv(65536)
        except BlockingIOError:
            return
        whole = len(data) - len(data) % STAMP.size
        self._pending = data[whole:]
        stamps = [value for (value,) in STAMP.iter_unpack(data[:whole])]
        self.loop.call_soon(self._record, stamps)  # the next pass, as a stream's task resumes

    def _record(self, stamps: list[float]) -> None:
        now = time.perf_counter()
        self.lags.extend((sent, now - sent) for sent in stamps)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        event_loop.run(self._detach())
        self._writer.close()
        self._reader.close()

    async def _detach(self) -> None:
        self.loop.remove_reader(self._reader.fileno())


def _loop_thread_clock() -> int | None:
    """The CPU-time clock of the event loop's thread (Linux/Unix), or None where there is none."""
    async def ident() -> int:
        return threading.get_ident()

    try:
        return time.pthread_getcpuclockid(event_loop.run(ident()))
    except (AttributeError, OSError):
        return None


class ClientHealthCollector(MetricCollector):
    """Collector `client` (config: ClientHealthCollectorConfig): see the module doc."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.interval_s = config.interval_s
        self.max_lag_p99_ms = config.max_lag_p99_ms
        self.max_loop_cpu_share = config.max_loop_cpu_share
        self.http_clients = False
        self.probe: LoopLagProbe | None = None
        self._loop_clock: int | None = None
        self._start: tuple[float, float, float | None] | None = None
        self._spent: tuple[float, float, float | None] | None = None

    def bind_engines(self, engines: dict[str, Any]) -> None:
        self.http_clients = any(getattr(engine, "is_http_client", False) for engine in engines.values())

    def _clocks(self) -> tuple[float, float, float | None]:
        loop_cpu = time.clock_gettime(self._loop_clock) if self._loop_clock is not None else None
        return time.perf_counter(), time.process_time(), loop_cpu

    def start(self) -> None:
        self.probe = LoopLagProbe(event_loop.loop(), self.interval_s)
        self._loop_clock = _loop_thread_clock()
        self._start = self._clocks()
        self.probe.start()

    def stop(self) -> None:
        if self.probe is None or self._start is None or self._spent is not None:
            return
        self.probe.stop()
        end = self._clocks()
        self._spent = (end[0] - self._start[0], end[1] - self._start[1],
                       end[2] - self._start[2] if end[2] is not None and self._start[2] is not None else None)

    def snapshot(self) -> list[Section]:
        if self._spent is None:
            return []
        wall, process_cpu, loop_cpu = self._spent
        lags_ms = np.array([lag for _, lag in self.probe.lags]) * 1e3
        section = ClientSection(
            loop_lag_samples=int(lags_ms.size),
            loop_lag_p50_ms=float(np.percentile(lags_ms, 50)) if lags_ms.size else None,
            loop_lag_p99_ms=float(np.percentile(lags_ms, 99)) if lags_ms.size else None,
            loop_lag_max_ms=float(lags_ms.max()) if lags_ms.size else None,
            client_cpu_share=process_cpu / wall if wall > 0 else None,
            loop_cpu_share=loop_cpu / wall if loop_cpu is not None and wall > 0 else None)
        if self.http_clients:
            warnings = self.verdict(section)
            section.client_limited = bool(warnings)
            section.client_warnings = warnings
            for warning in warnings:
                log.warning("the client may limit this run: %s", warning)
        return [section]

    def verdict(self, section: ClientSection) -> list[str]:
        """Why the client, not the server, may limit the run (empty: it does not)."""
        warnings = []
        if section.loop_lag_p99_ms is not None and section.loop_lag_p99_ms > self.max_lag_p99_ms:
            warnings.append(f"event-loop lag p99 {section.loop_lag_p99_ms:.2f} ms > {self.max_lag_p99_ms:g} ms: "
                            "chunks are read (and timestamped) that late")
        share = section.loop_cpu_share if section.loop_cpu_share is not None else section.client_cpu_share
        if share is not None and share >= self.max_loop_cpu_share:
            which = "event-loop thread" if section.loop_cpu_share is not None else "client process"
            warnings.append(f"the {which} used {share:.2f} of a CPU core (>= {self.max_loop_cpu_share:g}): "
                            "the loop is saturated")
        return warnings

    def timeseries(self) -> pd.DataFrame | None:
        if self.probe is None or not self.probe.lags:
            return None
        return pd.DataFrame({"t_s": [sent - self.origin for sent, _ in self.probe.lags],
                             "loop_lag_ms": [lag * 1e3 for _, lag in self.probe.lags]})
