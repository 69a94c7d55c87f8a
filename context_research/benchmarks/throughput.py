"""Throughput benchmark: many requests in flight, sent by an arrival process, reported as
metrics/load.py defines throughput, goodput and the KV-capacity load.

`load` builds the requests of the workload's source (`workloads.sources`): seeded synthetic ones
(length distributions, optional shared prefix), a ShareGPT or JSONL data set, a Mooncake, Azure or
BurstGPT trace, or ShareGPT conversations as multi-turn sessions. `evaluate` sends them through the
scheduler: `generate_async` on the process-wide event loop for the closed and open loops, trace
replay and sessions (streamed, each request with its own timeline), `generate_batch` for all at
once. Then every request is reported to the observers in the order it was sent, with its phase:
the first `warmup_requests` and the last `cooldown_requests` count as load on the engine but stay
out of the figures. Sessions add per-session figures; their rows carry session_id and turn.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from context_research.benchmarks.base import BenchmarkOutcome, BenchmarkTask, Observer
from context_research.metrics.latency import request_row
from context_research.metrics.load import load_figures
from context_research.metrics.phases import COOLDOWN, MEASURE, WARMUP
from context_research.metrics.schema import LoadSection, SessionSection
from context_research.requests import GenerationResult
from context_research.workloads.arrivals import build_process
from context_research.workloads.sources import load_workload
from context_research.workloads.workload import LoadWorkload

log = logging.getLogger(__name__)


def phases(count: int, warmup: int, cooldown: int) -> list[str]:
    """The phase of each of `count` requests in the order they were sent."""
    if warmup + cooldown >= count:
        raise ValueError(f"the run sent {count} requests, not more than warmup_requests ({warmup}) + "
                         f"cooldown_requests ({cooldown}): none is left to measure")
    return [WARMUP] * warmup + [MEASURE] * (count - warmup - cooldown) + [COOLDOWN] * cooldown


def session_figures(results: list[GenerationResult]) -> dict[str, Any]:
    """Per-session figures (SessionSection): sessions, turns per session, and each session's span
    (first turn's arrival -> last reply's last token) over the sessions whose every turn succeeded."""
    frame = pd.DataFrame([{"session_id": r.metadata["session_id"], "ok": r.error is None,
                           "arrival": r.arrival_time, "done": r.last_token_time} for r in results])
    sessions = frame.groupby("session_id")
    complete = sessions.filter(lambda turns: turns["ok"].all()).groupby("session_id")
    spans = (complete["done"].max() - complete["arrival"].min()).to_numpy()
    return {"n_sessions": int(sessions.ngroups), "turns_per_session_mean": float(sessions.size().mean()),
            "session_p50_s": float(np.percentile(spans, 50)) if len(spans) else math.nan,
            "session_p95_s": float(np.percentile(spans, 95)) if len(spans) else math.nan}


class ThroughputBenchmark(BenchmarkTask):
    """Benchmark `throughput` (config: ThroughputBenchmarkConfig)."""

    def __init__(self, config: Any, model: Any) -> None:
        super().__init__(config, model)
        self.workload = config.workload
        self.arrival = config.arrival
        self.slo = config.slo
        self.max_model_len = int(config.max_model_len or model.max_model_len)
        self.cache_dir = Path(config.cache_dir) / "datasets" if config.cache_dir else None

    def load(self, split: str = "test") -> LoadWorkload:
        return load_workload(self.workload, self.model, self.max_model_len, self.cache_dir,
                             sessions=self.arrival.process == "sessions")

    def applied_load(self, samples: LoadWorkload, sent: int) -> LoadSection:
        """The load this run applied (the axes of E2, rate sweeps and trace replays)."""
        process = self.arrival.process
        load = LoadSection(arrival_process=process,
                           concurrency=self.arrival.concurrency if process in ("closed", "sessions") else None,
                           request_rate=self.arrival.rate if process in ("poisson", "gamma") else None,
                           burstiness=self.arrival.burstiness if process == "gamma" else None,
                           time_scale=self.arrival.time_scale if process == "trace" else None,
                           prompt_len=self.workload.prompt_len.mean, output_len=self.workload.output_len.mean,
                           shared_prefix_len=self.workload.shared_prefix_len, n_sent=sent)
        if self.workload.source != "synthetic":  # lengths come from the file
            load = dataclasses.replace(load, workload_source=self.workload.source,
                                       workload_path=str(self.workload.path), prompt_len=None,
                                       output_len=self.workload.fixed_output_len, shared_prefix_len=None,
                                       n_skipped_records=samples.skipped)
        return load

    def applied_sessions(self, results: list[GenerationResult]) -> SessionSection:
        think = self.arrival.think_time
        mean_s = (think.low_s + think.high_s) / 2 if think.distribution == "uniform" else think.mean_s
        return SessionSection(think_time=think.distribution, think_time_mean_s=mean_s,
                              max_turns=self.workload.max_turns, **session_figures(results))

    def evaluate(self, backend: Any, samples: LoadWorkload, observe: Observer) -> BenchmarkOutcome:
        process = build_process(self.arrival, seed=self.workload.seed, offsets_s=samples.offsets_s)
        log.info("%s: %d requests, %s", self.name, len(samples.requests), process)
        results = process.run(samples.requests, backend, self.arrival.duration_s)
        labels = phases(len(results), self.arrival.warmup_requests, self.arrival.cooldown_requests)
        for result, phase in zip(results, labels):
            observe(result, phase)
        origin = min(r.arrival_time for r in results)
        rows = pd.DataFrame([request_row(r, phase, origin) for r, phase in zip(results, labels)])
        budget = {r.request_id: r.max_new_tokens for r in samples.requests}
        short = sum(r.completion_tokens != budget[r.request_id] for r in results if r.error is None)
        load, slo = load_figures(rows, self.slo, backend.kv_capacity_tokens(), self.applied_load(samples, len(results)))
        outcome = BenchmarkOutcome(checks={"full_outputs": short == 0}, sections=[load, slo])
        if self.arrival.process == "sessions":
            outcome.sections.append(self.applied_sessions(results))
        return outcome
