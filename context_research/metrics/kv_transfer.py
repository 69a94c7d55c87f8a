"""KV transfer between pools (disaggregated serving), per request and per job.

Per request the broker puts into the result's metadata `kv_bytes` (bytes actually moved),
`kv_transfer_s` (first byte sent -> last byte usable on the decode side), `kv_wait_s` (decode pool
ready but blocked on the KV), `kv_bandwidth_gb_s` (= kv_bytes / kv_transfer_s, `bandwidth_gb_s`),
`kv_transfer_mode` (how it moved), `kv_simulated` (the time came from a configured link
bandwidth: both pools on one device), and for vLLM `kv_connector`, `kv_connector_debug` and
`kv_accounting` (where the bytes and time came from: connector_stats, connector_files, derived).
Per job: effective bandwidth = sum(kv_bytes) / sum(kv_transfer_s); transfer stall ratio =
sum(kv_wait_s) / sum(TTFT); and the connector's own statistics summed over the job's engine steps
(`connector_totals`).

A KV connector that keeps statistics (vLLM 0.26's NixlConnector: NixlKVConnectorStats) hands them
to the engine's scheduler stats as lists with one entry per finished transfer (or failure); the
vLLM backend's step logger keeps each step's `connector_step_figures`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from context_research.metrics.schema import KVTransferSection

# step figure -> (the key of NixlKVConnectorStats.data it comes from, how a step's list reduces)
CONNECTOR_STATS: dict[str, tuple[str, Callable[[list], float]]] = {
    "kv_connector_transfers": ("transfer_duration", len),
    "kv_connector_bytes": ("bytes_transferred", sum),
    "kv_connector_transfer_s": ("transfer_duration", sum),  # NIXL: post -> completion, seconds
    "kv_connector_post_s": ("post_duration", sum),
    "kv_connector_descriptors": ("num_descriptors", sum),
    "kv_connector_failed_transfers": ("num_failed_transfers", sum),
    "kv_connector_failed_notifications": ("num_failed_notifications", sum),
    "kv_connector_expired_requests": ("num_kv_expired_reqs", sum),
}
CONNECTOR_FAILURES = ("kv_connector_failed_transfers", "kv_connector_failed_notifications",
                      "kv_connector_expired_requests")


def bandwidth_gb_s(kv_bytes: float, seconds: float) -> float:
    """GB/s (1e9 bytes) of `kv_bytes` moved in `seconds`; NaN for no time."""
    return kv_bytes / seconds / 1e9 if seconds > 0 else math.nan


def connector_step_figures(stats: dict[str, Any]) -> dict[str, float]:
    """One engine step's figures from its scheduler stats' `kv_connector_stats` (the connector's
    stats data: a list per key); only the figures whose key the stats carry."""
    return {figure: reduce(stats[key]) for figure, (key, reduce) in CONNECTOR_STATS.items() if key in stats}


def connector_totals(steps: Iterable[dict[str, Any]]) -> dict[str, float]:
    """The connector figures of step samples, summed (a job's, or one request's); empty without any."""
    totals: dict[str, float] = {}
    for step in steps:
        for figure in CONNECTOR_STATS:
            if figure in step:
                totals[figure] = totals.get(figure, 0) + step[figure]
    return totals


def labels(records: list[dict[str, Any]], key: str, separator: str = ",") -> str | None:
    """The distinct non-empty values of a label over the handoffs, sorted and joined."""
    values = sorted({str(r[key]) for r in records if r.get(key) not in (None, "")})
    return separator.join(values) if values else None


def summarize(handoffs: Iterable[dict[str, Any]], connector_steps: Iterable[dict[str, Any]] = ()) -> KVTransferSection:
    """The job's figures from its measured handoffs (dicts with kv_bytes, kv_transfer_s, kv_wait_s,
    ttft_s, simulated, mode and the labels connector, debug, accounting, ucx_transports,
    ucx_protocols, ucx_source) and the engines' step samples of the job (`connector_steps`)."""
    records = list(handoffs)
    totals = connector_totals(connector_steps)
    connector = {}
    if totals:
        connector = dict(
            kv_connector_transfers=int(totals.get("kv_connector_transfers", 0)),
            kv_connector_bytes=float(totals.get("kv_connector_bytes", 0)),
            kv_connector_transfer_s=float(totals.get("kv_connector_transfer_s", 0)),
            kv_connector_bandwidth_gb_s=bandwidth_gb_s(totals.get("kv_connector_bytes", 0),
                                                       totals.get("kv_connector_transfer_s", 0)),
            kv_connector_descriptors=int(totals.get("kv_connector_descriptors", 0)),
            kv_connector_failures=int(sum(totals.get(key, 0) for key in CONNECTOR_FAILURES)))
    if not records:
        return KVTransferSection(kv_transfers=0, kv_bytes_total=0, **connector)
    kv = np.array([r["kv_bytes"] for r in records], dtype=float)
    transfer = np.array([r["kv_transfer_s"] for r in records], dtype=float)
    wait = np.array([r["kv_wait_s"] for r in records], dtype=float)
    ttft = np.array([r["ttft_s"] for r in records], dtype=float)
    debug = [r["debug"] for r in records if r.get("debug") is not None]
    return KVTransferSection(
        kv_transfers=len(records),
        kv_bytes_total=float(kv.sum()),
        kv_gb_per_req=float(kv.mean() / 1e9),
        kv_transfer_p50_ms=float(np.nanpercentile(transfer, 50) * 1e3),
        kv_transfer_p95_ms=float(np.nanpercentile(transfer, 95) * 1e3),
        kv_wait_p50_ms=float(np.nanpercentile(wait, 50) * 1e3),
        kv_bandwidth_gb_s=bandwidth_gb_s(float(kv.sum()), float(np.nansum(transfer))),
        stall_ratio=float(wait.sum() / ttft.sum()) if ttft.sum() > 0 else math.nan,
        kv_simulated=any(r["simulated"] for r in records),
        kv_transfer_mode=",".join(sorted({r["mode"] for r in records})),
        kv_connector=labels(records, "connector"),
        kv_connector_debug=any(debug) if debug else None,
        kv_accounting=labels(records, "accounting"),
        kv_ucx_transports=labels(records, "ucx_transports"),
        kv_ucx_protocols=labels(records, "ucx_protocols", "; "),
        kv_ucx_source=labels(records, "ucx_source", "; "),
        **connector,
    )
