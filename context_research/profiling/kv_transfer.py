"""KV transfer accounting between pools (disaggregated serving).

Per request the scheduler puts `kv_bytes`, `kv_transfer_s` (first byte sent -> last byte usable
on the decode side) and `kv_wait_s` (decode ready but blocked on KV) into the result's metadata;
this collector sums them. Transfer stall ratio = sum(kv_wait_s) / sum(TTFT). Effective bandwidth =
sum(kv_bytes) / sum(kv_transfer_s). `kv_simulated` says the transfer time came from a configured
link bandwidth (both pools on one device), `kv_transfer_mode` how the KV moved.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from context_research.requests import GenerationResult


class KVTransferCollector:
    name = "kv_transfer"

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def observe(self, result: GenerationResult, phase: str) -> None:
        if phase != "measure" or result.error is not None or "kv_bytes" not in result.metadata:
            return
        self.records.append({
            "kv_bytes": float(result.metadata["kv_bytes"]),
            "kv_transfer_s": float(result.metadata.get("kv_transfer_s", math.nan)),
            "kv_wait_s": float(result.metadata.get("kv_wait_s", 0.0)),
            "ttft_s": result.ttft_ms / 1e3,
            "simulated": bool(result.metadata.get("kv_simulated", False)),
            "mode": str(result.metadata.get("kv_transfer_mode", "")),
        })

    def snapshot(self) -> dict[str, Any]:
        if not self.records:
            return {"kv_transfers": 0, "kv_bytes_total": 0}
        kv = np.array([r["kv_bytes"] for r in self.records])
        transfer = np.array([r["kv_transfer_s"] for r in self.records])
        wait = np.array([r["kv_wait_s"] for r in self.records])
        ttft = np.array([r["ttft_s"] for r in self.records])
        transfer_p50_ms = float(np.nanpercentile(transfer, 50) * 1e3)
        return {
            "kv_transfers": len(self.records),
            "kv_bytes_total": float(kv.sum()),
            "kv_bytes_per_req": float(kv.mean()),
            "kv_gb_per_req": float(kv.mean() / 1e9),
            "kv_transfer_p50_ms": transfer_p50_ms,
            "kv_transfer_ms_p50": transfer_p50_ms,
            "kv_transfer_p95_ms": float(np.nanpercentile(transfer, 95) * 1e3),
            "kv_wait_p50_ms": float(np.nanpercentile(wait, 50) * 1e3),
            "kv_bandwidth_gb_s": float(kv.sum() / np.nansum(transfer) / 1e9) if np.nansum(transfer) > 0 else math.nan,
            "stall_ratio": float(wait.sum() / ttft.sum()) if ttft.sum() > 0 else math.nan,
            "kv_simulated": any(r["simulated"] for r in self.records),
            "kv_transfer_mode": ",".join(sorted({r["mode"] for r in self.records})),
        }
