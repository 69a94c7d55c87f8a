"""Two vLLM engines joined by NIXL's KV connector: the protocol, the KV figures from the connector's
own statistics, and the UCX transports the KV moved on.

Protocol (vLLM 0.26's disaggregated prefill, as its toy proxy runs it): the prefill request carries
`PREFILL_KV_TRANSFER_PARAMS` and max_tokens=1; the prefill output returns kv_transfer_params
(do_remote_prefill, remote_engine_id, remote_request_id, remote_block_ids, remote_host, remote_port,
tp_size, ...), and the decode request carries exactly those. With NixlConnector (= NixlPullConnector)
the decode engine reads the prompt's blocks from the prefill engine (NIXL READ) before its first step
for the request; with NixlPushConnector the decode engine registers its blocks and the prefill engine
writes them (NIXL WRITE). Both engines run with kv_role kv_both, each with a side-channel port of its
own (backends/vllm.py: connector_environment).

Statistics: each engine's NIXL worker records every finished transfer (NixlKVConnectorStats: bytes,
transfer and post durations, descriptors, failures); the engine's scheduler stats bring them to the
step logger, which keeps each step's sums (metrics/kv_transfer.py). They name no request: the
`ConnectorLedger` gives a request the samples that arrived while its handoff was open, when no other
handoff was open at the time (requests one after another); otherwise the request's figures are
derived (prompt tokens x KV bytes per token over the broker's handoff span), and the job's totals
from the statistics are in the kv_transfer section either way.

UCX: each NIXL engine's processes write UCX's INFO log to a folder of their own. The log is a stdio
stream UCX flushes only on errors, so the broker first has every worker flush its streams
(`NixlWorkerExtension`, by method name), then `ucx_transports` reads which transports the RMA lanes
(what NIXL reads and writes with) use for large messages: UCX's protocol tables (protocols v2,
UCX_PROTO_INFO=y) or its `ep_cfg` lines (v1).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from context_research.metrics.kv_transfer import CONNECTOR_STATS, connector_totals
from context_research.serving.backends.vllm import UCX_LOG_FILE
from context_research.serving.backends.vllm_memory import WorkerMemoryAccounting

# what vLLM's toy proxy sends the prefill engine (tests/v1/kv_connector/nixl_integration/toy_proxy_server.py)
PREFILL_KV_TRANSFER_PARAMS: dict[str, Any] = {"do_remote_decode": True, "do_remote_prefill": False,
                                              "remote_engine_id": None, "remote_block_ids": None,
                                              "remote_host": None, "remote_port": None}
KV_ROLE = "kv_both"
NIXL_WORKER_EXTENSION = "context_research.serving.schedulers.nixl.NixlWorkerExtension"
FLUSH = "context_research_flush_stdio"


class NixlWorkerExtension(WorkerMemoryAccounting):
    """Mixed into vLLM's GPU worker of a NIXL engine: the memory accounting, and a flush of the
    process's stdio streams (UCX's log among them)."""

    def context_research_flush_stdio(self) -> None:
        import ctypes

        ctypes.CDLL(None).fflush(None)


def prefill_kv_transfer_params(extra: dict[str, Any]) -> dict[str, Any]:
    """The prefill request's kv_transfer_params: NIXL's protocol, then `extra` (the scheduler config's)."""
    return {**PREFILL_KV_TRANSFER_PARAMS, **extra}


def connector_config(connector: str) -> dict[str, Any]:
    """The `kv_transfer_config` engine argument of either pool."""
    return {"kv_connector": connector, "kv_role": KV_ROLE}


# connector ledger --------------------------------------------------------------------------------
@dataclass
class Window:
    """A request's handoff, from its prefill output at the broker to its last decode output."""

    opened: float
    closed: float = math.inf
    settled: bool = False

    def holds(self, t: float) -> bool:
        return self.opened <= t <= self.closed


@dataclass
class ConnectorLedger:
    """The connector step samples of the pools' engines, matched to the handoffs they happened in."""

    engines: list[Any]
    read: list[int] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    windows: dict[str, Window] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.read = [len(engine.step_log()) for engine in self.engines]

    def open(self, request_id: str, t: float) -> None:
        self.windows[request_id] = Window(t)

    def close(self, request_id: str, t: float) -> None:
        self.windows[request_id].closed = t

    def figures(self, request_id: str) -> dict[str, float] | None:
        """The connector figures summed over the samples in the request's closed window, if there are
        any and no other handoff was open when they came; None otherwise."""
        self._read_new()
        window = self.windows[request_id]
        mine = [s for s in self.samples if window.holds(s["t"])]
        shared = any(other.holds(s["t"]) for s in mine for rid, other in self.windows.items() if rid != request_id)
        totals = connector_totals(mine)
        return totals if totals.get("kv_connector_transfers") and not shared else None

    def settle(self, request_id: str) -> None:
        """The request is done (a window still open, of a request that failed, closes now)."""
        window = self.windows[request_id]
        window.closed = min(window.closed, time.perf_counter())
        window.settled = True
        self._forget()

    def _read_new(self) -> None:
        for index, engine in enumerate(self.engines):
            steps = engine.step_log()
            self.samples.extend(s for s in steps[self.read[index]:] if any(key in s for key in CONNECTOR_STATS))
            self.read[index] = len(steps)

    def _forget(self) -> None:
        """Drop what no unsettled handoff can still overlap: windows and samples before the earliest one."""
        pending = [w.opened for w in self.windows.values() if not w.settled]
        horizon = min(pending) if pending else math.inf
        self.windows = {rid: w for rid, w in self.windows.items() if not (w.settled and w.closed < horizon)}
        self.samples = [s for s in self.samples if s["t"] >= horizon]


def accounting_from_stats(totals: dict[str, float]) -> dict[str, Any]:
    """A request's KV figures from the connector's statistics of its handoff."""
    return {"kv_bytes": totals.get("kv_connector_bytes", 0),
            "kv_transfer_s": totals.get("kv_connector_transfer_s", 0),
            "kv_post_s": totals.get("kv_connector_post_s", 0),
            "kv_descriptors": totals.get("kv_connector_descriptors", 0),
            "kv_connector_transfers": totals["kv_connector_transfers"], "kv_accounting": "connector_stats"}


# UCX transports ----------------------------------------------------------------------------------
UCX_RMA_OPERATION = re.compile(r"remote memory (read|write)")
UCX_RMA_LANES = re.compile(r"\b(rma|rma_bw|rma_am)\(([^)]*)\)")
UCX_RESOURCE = re.compile(r"\b([a-z][a-z0-9_]*)/\S+")


@dataclass(frozen=True)
class UCXLanes:
    transports: str | None  # comma-joined transport names (cuda_ipc, tcp, rc_mlx5, sysv, ...)
    protocols: str | None  # the large-message row of each RMA protocol table, as UCX prints it
    source: str  # the folder read, or why nothing was found

    def labels(self) -> dict[str, Any]:
        return {"kv_ucx_transports": self.transports, "kv_ucx_protocols": self.protocols,
                "kv_ucx_source": self.source}


def _cells(line: str) -> list[str]:
    """The cells of a UCX table row (`[time] [host:pid:0]   | a | b | c |`), empty for other lines."""
    start = line.find("|")
    if start < 0 or not line.rstrip().endswith("|"):
        return []
    return [cell.strip() for cell in line[start + 1:].rstrip().rstrip("|").split("|")]


def ucx_lanes(lines: Iterable[str]) -> tuple[set[str], list[str]]:
    """Transports and large-message protocol rows of UCX's RMA lanes in log lines: from protocol
    tables (a 2-cell header naming the operation, then `range | protocol | transport/device` rows;
    the row whose range ends at inf is the one large transfers take) and from `rma(...)` lane lists."""
    transports: set[str] = set()
    protocols: list[str] = []
    operation = None
    last_row: list[str] | None = None

    def finish_table() -> None:
        if operation is not None and last_row is not None:
            transports.update(UCX_RESOURCE.findall(last_row[2]))
            protocols.append(f"{operation}: {last_row[1]} {last_row[2]}")

    for line in lines:
        for _, lanes in UCX_RMA_LANES.findall(line):
            transports.update(UCX_RESOURCE.findall(lanes))
        cells = _cells(line)
        if len(cells) == 2:  # a table header: the endpoint configuration and the operation
            finish_table()
            operation = cells[1] if UCX_RMA_OPERATION.search(cells[1]) else None
            last_row = None
        elif len(cells) == 3 and operation is not None:
            last_row = cells
    finish_table()
    return transports, list(dict.fromkeys(protocols))


def ucx_transports(folders: Iterable[Path]) -> UCXLanes:
    """What UCX's logs in `folders` (one per engine) say about the RMA lanes, or why they say nothing."""
    folders = [Path(f) for f in folders]
    files = sorted(path for folder in folders if folder.is_dir() for path in folder.glob("*.log"))
    where = ", ".join(map(str, folders))
    if not files:
        return UCXLanes(None, None, f"no UCX log in {where}")
    transports: set[str] = set()
    protocols: list[str] = []
    for path in files:
        found, rows = ucx_lanes(path.read_text(errors="replace").splitlines())
        transports |= found
        protocols += rows
    if not transports:
        return UCXLanes(None, None, f"no RMA lanes in the UCX logs of {where} (UCX_LOG_LEVEL below info, "
                                    "or no transfer yet)")
    return UCXLanes(",".join(sorted(transports)), "; ".join(dict.fromkeys(protocols)) or None, f"UCX log {where}")


def ucx_log_folder(engine: Any) -> Path | None:
    """The folder an engine's UCX log files are in (its start environment's UCX_LOG_FILE)."""
    log_file = getattr(engine, "environment", {}).get(UCX_LOG_FILE)
    return Path(log_file).parent if log_file else None
