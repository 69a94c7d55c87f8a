"""Throughput benchmark: many requests in flight, sent by an arrival process, reported the way
DESIGN.md defines throughput, goodput and the KV-capacity load.

`load` builds the seeded synthetic requests (length distributions, optional shared prefix).
`evaluate` sends them through the scheduler: `generate_async` on the process-wide event loop for
the closed and open loops (streamed, each request with its own timeline), `generate_batch` for
all at once. Then every request is reported to the observers in the order it was sent, with its
phase: the first `warmup_requests` and the last `cooldown_requests` count as load on the engine
but stay out of the figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from context_research.benchmarks.base import BenchmarkOutcome, BenchmarkTask, Observer
from context_research.metrics.latency import request_row
from context_research.metrics.load import load_figures
from context_research.metrics.phases import COOLDOWN, MEASURE, WARMUP
from context_research.metrics.schema import LoadSection
from context_research.requests import GenerationRequest
from context_research.workloads.arrivals import build_process
from context_research.workloads.synthetic import synthetic_requests, token_id_range

log = logging.getLogger(__name__)


@dataclass
class LoadWorkload:
    requests: list[GenerationRequest]


def phases(count: int, warmup: int, cooldown: int) -> list[str]:
    """The phase of each of `count` requests in the order they were sent."""
    if warmup + cooldown >= count:
        raise ValueError(f"the run sent {count} requests, not more than warmup_requests ({warmup}) + "
                         f"cooldown_requests ({cooldown}): none is left to measure")
    return [WARMUP] * warmup + [MEASURE] * (count - warmup - cooldown) + [COOLDOWN] * cooldown


class ThroughputBenchmark(BenchmarkTask):
    """Benchmark `throughput` (config: ThroughputBenchmarkConfig)."""

    def __init__(self, config: Any, model: Any) -> None:
        super().__init__(config, model)
        self.workload = config.workload
        self.arrival = config.arrival
        self.slo = config.slo

    def load(self, split: str = "test") -> LoadWorkload:
        return LoadWorkload(synthetic_requests(self.workload, token_id_range(self.model.config_json)))

    def applied_load(self, sent: int) -> LoadSection:
        """The load this run applied (the axes of E2 and of rate sweeps)."""
        process = self.arrival.process
        return LoadSection(arrival_process=process,
                           concurrency=self.arrival.concurrency if process == "closed" else None,
                           request_rate=self.arrival.rate if process in ("poisson", "gamma") else None,
                           burstiness=self.arrival.burstiness if process == "gamma" else None,
                           prompt_len=self.workload.prompt_len.mean, output_len=self.workload.output_len.mean,
                           shared_prefix_len=self.workload.shared_prefix_len, n_sent=sent)

    def evaluate(self, backend: Any, samples: LoadWorkload, observe: Observer) -> BenchmarkOutcome:
        process = build_process(self.arrival, seed=self.workload.seed)
        log.info("%s: %d requests, %s", self.name, len(samples.requests), process)
        results = process.run(samples.requests, backend, self.arrival.duration_s)
        labels = phases(len(results), self.arrival.warmup_requests, self.arrival.cooldown_requests)
        for result, phase in zip(results, labels):
            observe(result, phase)
        origin = min(r.arrival_time for r in results)
        rows = pd.DataFrame([request_row(r, phase, origin) for r, phase in zip(results, labels)])
        budget = {r.request_id: r.max_new_tokens for r in samples.requests}
        short = sum(r.completion_tokens != budget[r.request_id] for r in results if r.error is None)
        load, slo = load_figures(rows, self.slo, backend.kv_capacity_tokens(), self.applied_load(len(results)))
        return BenchmarkOutcome(checks={"full_outputs": short == 0}, sections=[load, slo])
