"""Scheduler schemas: how requests are routed over engine pools."""

from __future__ import annotations

from dataclasses import dataclass

from context_research.config.errors import require_choice

SCHEDULERS = ("aggregated", "disaggregated")


@dataclass
class AggregatedSchedulerConfig:
    """Prefill and decode on one pool (one engine)."""

    _target_: str = "context_research.serving.schedulers.aggregated.AggregatedScheduler"
    name: str = "aggregated"

    def __post_init__(self) -> None:
        require_choice("name", self.name, SCHEDULERS)
