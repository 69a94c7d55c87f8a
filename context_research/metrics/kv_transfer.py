"""KV transfer between pools (disaggregated serving), per request and per job.

Per request the broker puts into the result's metadata `kv_bytes` (bytes actually moved),
`kv_transfer_s` (first byte sent -> last byte usable on the decode side), `kv_wait_s` (decode pool
ready but blocked on the KV), `kv_bandwidth_gb_s` (= kv_bytes / kv_transfer_s, `bandwidth_gb_s`),
`kv_transfer_mode` (how it moved) and `kv_simulated` (the time came from a configured link
bandwidth: both pools on one device). Per job: effective bandwidth = sum(kv_bytes) /
sum(kv_transfer_s); transfer stall ratio = sum(kv_wait_s) / sum(TTFT).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from context_research.metrics.schema import KVTransferSection


def bandwidth_gb_s(kv_bytes: float, seconds: float) -> float:
    """GB/s (1e9 bytes) of `kv_bytes` moved in `seconds`; NaN for no time."""
    return kv_bytes / seconds / 1e9 if seconds > 0 else math.nan


def summarize(handoffs: Iterable[dict[str, Any]]) -> KVTransferSection:
    """The job's figures from its measured handoffs: dicts with kv_bytes, kv_transfer_s, kv_wait_s,
    ttft_s, simulated and mode."""
    records = list(handoffs)
    if not records:
        return KVTransferSection(kv_transfers=0, kv_bytes_total=0)
    kv = np.array([r["kv_bytes"] for r in records], dtype=float)
    transfer = np.array([r["kv_transfer_s"] for r in records], dtype=float)
    wait = np.array([r["kv_wait_s"] for r in records], dtype=float)
    ttft = np.array([r["ttft_s"] for r in records], dtype=float)
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
    )
