"""The KV transfer collector: the handoffs of the measured requests of a disaggregated run and the
KV connector's own statistics from the engines' step samples while the job ran, summed by
metrics/kv_transfer.py (which defines every figure)."""

from __future__ import annotations

import math
from typing import Any

from context_research.metrics import kv_transfer
from context_research.metrics.phases import MEASURE
from context_research.metrics.schema import Section
from context_research.profiling.base import MetricCollector
from context_research.requests import GenerationResult

# per-request labels the broker sets (result metadata key -> handoff record key)
LABELS = {"kv_connector": "connector", "kv_connector_debug": "debug", "kv_accounting": "accounting",
          "kv_ucx_transports": "ucx_transports", "kv_ucx_protocols": "ucx_protocols", "kv_ucx_source": "ucx_source"}


class KVTransferCollector(MetricCollector):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.handoffs: list[dict[str, Any]] = []
        self.engines: dict[str, Any] = {}
        self.steps_before: dict[str, int] = {}

    def bind_engines(self, engines: dict[str, Any]) -> None:
        self.engines = dict(engines)

    def start(self) -> None:
        self.steps_before = {pool: len(engine.step_log()) for pool, engine in self.engines.items()}

    def observe(self, result: GenerationResult, phase: str) -> None:
        if phase != MEASURE or result.error is not None or "kv_bytes" not in result.metadata:
            return
        handoff = {
            "kv_bytes": float(result.metadata["kv_bytes"]),
            "kv_transfer_s": float(result.metadata.get("kv_transfer_s", math.nan)),
            "kv_wait_s": float(result.metadata.get("kv_wait_s", 0.0)),
            "ttft_s": result.ttft_ms / 1e3,
            "simulated": bool(result.metadata.get("kv_simulated", False)),
            "mode": str(result.metadata.get("kv_transfer_mode", "")),
        }
        handoff.update({record: result.metadata.get(key) for key, record in LABELS.items()})
        self.handoffs.append(handoff)

    def snapshot(self) -> list[Section]:
        steps = [step for pool, engine in self.engines.items()
                 for step in engine.step_log()[self.steps_before.get(pool, 0):]]
        return [kv_transfer.summarize(self.handoffs, steps)]
