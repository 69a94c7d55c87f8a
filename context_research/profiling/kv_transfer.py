"""The KV transfer collector: the handoffs of the measured requests of a disaggregated run, summed
by metrics/kv_transfer.py (which defines every figure)."""

from __future__ import annotations

import math
from typing import Any

from context_research.metrics import kv_transfer
from context_research.metrics.phases import MEASURE
from context_research.metrics.schema import Section
from context_research.profiling.base import MetricCollector
from context_research.requests import GenerationResult


class KVTransferCollector(MetricCollector):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.handoffs: list[dict[str, Any]] = []

    def observe(self, result: GenerationResult, phase: str) -> None:
        if phase != MEASURE or result.error is not None or "kv_bytes" not in result.metadata:
            return
        self.handoffs.append({
            "kv_bytes": float(result.metadata["kv_bytes"]),
            "kv_transfer_s": float(result.metadata.get("kv_transfer_s", math.nan)),
            "kv_wait_s": float(result.metadata.get("kv_wait_s", 0.0)),
            "ttft_s": result.ttft_ms / 1e3,
            "simulated": bool(result.metadata.get("kv_simulated", False)),
            "mode": str(result.metadata.get("kv_transfer_mode", "")),
        })

    def snapshot(self) -> list[Section]:
        return [kv_transfer.summarize(self.handoffs)]
