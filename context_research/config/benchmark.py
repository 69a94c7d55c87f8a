"""Benchmark schemas: the workload a benchmark drives and how it is measured."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from context_research.config.bounds import MAX_COUNT, require_count, require_finite, require_seed
from context_research.config.errors import require, require_choice


@dataclass
class WorkloadConfig:
    """Synthetic requests: exact prompt lengths in tokens, seeded token ids."""

    prompt_len: int = 64
    output_len: int = 16
    num_prompts: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.prompt_len >= 1, "prompt_len", self.prompt_len, "an integer >= 1")
        require(self.output_len >= 1, "output_len", self.output_len, "an integer >= 1")
        require_count("num_prompts", self.num_prompts)
        require_seed("seed", self.seed)


@dataclass
class LatencyBenchmarkConfig:
    """Requests one at a time: TTFT, TPOT, ITL and E2E per request after warm-up, with the
    roofline floors of the job's `hardware` (the root group, interpolated) where it has ceilings.
    `kv_cache_dtype` is the engine's (auto = the model's dtype), for the decode floor."""

    _target_: str = "context_research.benchmarks.latency.LatencyBenchmark"
    name: str = "latency"
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    warmup: int = 1
    repeats: int = 1
    check_reproducibility: bool = True
    hardware: Any = None
    kv_cache_dtype: str = "auto"

    def __post_init__(self) -> None:
        require_count("warmup", self.warmup, minimum=0)
        require_count("repeats", self.repeats)
        requests = self.workload.num_prompts * self.repeats
        require(requests <= MAX_COUNT, "repeats", self.repeats,
                f"num_prompts x repeats ({requests:,}) must be <= {MAX_COUNT:,} (the requests of one run)")


LENGTH_DISTRIBUTIONS = ("fixed", "uniform", "normal")
ARRIVAL_PROCESSES = ("closed", "poisson", "gamma", "all_at_once", "trace", "sessions")
THINK_TIME_DISTRIBUTIONS = ("fixed", "uniform", "exponential")
TEXT_SOURCES = ("sharegpt", "jsonl")  # text prompts, tokenised with the model's tokenizer
TRACE_SOURCES = ("mooncake", "azure", "burstgpt")  # lengths and timestamps; token-id prompts
WORKLOAD_SOURCES = ("synthetic", *TEXT_SOURCES, *TRACE_SOURCES)


@dataclass
class LengthConfig:
    """A token-length distribution: `fixed` (always `mean`), `uniform` (integers in [low, high]) or
    `normal` (round(N(mean, std)) clipped to [low, high])."""

    distribution: str = "fixed"
    mean: int = 64
    std: float = 0.0
    low: Optional[int] = None
    high: Optional[int] = None

    def __post_init__(self) -> None:
        require_choice("distribution", self.distribution, LENGTH_DISTRIBUTIONS)
        require(self.mean >= 1, "mean", self.mean, "an integer >= 1")
        if self.distribution == "fixed":
            return
        require(self.low is not None and self.low >= 1, "low", self.low,
                f"an integer >= 1 (a {self.distribution} length needs low and high)")
        require(self.high is not None and self.high >= self.low, "high", self.high,
                f"an integer >= low ({self.low})")
        if self.distribution == "normal":
            require_finite("std", self.std, self.std > 0, "a number > 0 for a normal length")

    @property
    def shortest(self) -> int:
        return self.mean if self.distribution == "fixed" else int(self.low)

    @property
    def longest(self) -> int:
        return self.mean if self.distribution == "fixed" else int(self.high)


@dataclass
class LoadWorkloadConfig:
    """The requests of a load run. `source: synthetic`: seeded lengths and token ids, optionally a
    shared prefix (the first `shared_prefix_len` tokens of every prompt are the same, for prefix
    caching). Any other source reads the local file `path` in its published format: `sharegpt`
    (ShareGPT JSON) and `jsonl` ({"prompt", "output_len"?} lines) are text, tokenised with the
    model's tokenizer; `mooncake` (JSONL), `azure` and `burstgpt` (CSV) are traces of lengths and
    timestamps, sent as seeded token ids (`arrival.process: trace` replays their times).
    `num_requests` requests are sent (sessions: conversations); `fixed_output_len` replaces a file's
    output lengths; `max_turns` caps the user turns of a session (null: all that fit). `chat_template`
    (jsonl): each prompt as the user turn of the model's chat template (true), or the text as it is,
    tokenised as a server tokenises a /v1/completions prompt (false: what `vllm bench serve` sends from
    a custom dataset with --skip-chat-template)."""

    source: str = "synthetic"
    path: Optional[str] = None
    prompt_len: LengthConfig = field(default_factory=LengthConfig)
    output_len: LengthConfig = field(default_factory=lambda: LengthConfig(mean=16))
    shared_prefix_len: int = 0
    num_requests: int = 16
    seed: int = 0
    fixed_output_len: Optional[int] = None
    max_turns: Optional[int] = None
    chat_template: bool = True

    def __post_init__(self) -> None:
        require_choice("source", self.source, WORKLOAD_SOURCES)
        require(self.chat_template or self.source == "jsonl", "chat_template", self.chat_template,
                f"true for source={self.source} (only jsonl prompts can go without the chat template)")
        require_count("num_requests", self.num_requests)
        require_seed("seed", self.seed)
        require_count("fixed_output_len", self.fixed_output_len, null="the file's output lengths")
        require_count("max_turns", self.max_turns, null="every turn that fits")
        if self.source == "synthetic":
            require(self.path is None, "path", self.path, "null for source=synthetic (it reads no file)")
            shortest = self.prompt_len.shortest
            require(0 <= self.shared_prefix_len <= shortest, "shared_prefix_len", self.shared_prefix_len,
                    f"an integer from 0 to the shortest prompt ({shortest})")
            return
        require(self.path is not None and os.path.isfile(self.path), "path", self.path,
                f"an existing local file (the {self.source} data)")
        require(self.shared_prefix_len == 0, "shared_prefix_len", self.shared_prefix_len,
                f"0 for source={self.source} (its prompts come from the file)")


@dataclass
class ThinkTimeConfig:
    """Seconds a user takes between a reply and their next message: `fixed` (always `mean_s`),
    `uniform` (low_s..high_s) or `exponential` (mean `mean_s`); seeded per session."""

    distribution: str = "fixed"
    mean_s: float = 1.0
    low_s: Optional[float] = None
    high_s: Optional[float] = None

    def __post_init__(self) -> None:
        require_choice("distribution", self.distribution, THINK_TIME_DISTRIBUTIONS)
        require_finite("mean_s", self.mean_s, self.mean_s >= 0, "seconds >= 0")
        if self.distribution == "uniform":
            require_finite("low_s", self.low_s, self.low_s is not None and self.low_s >= 0,
                           "seconds >= 0 (a uniform think time needs low_s and high_s)")
            require_finite("high_s", self.high_s, self.high_s is not None and self.high_s >= self.low_s,
                           f"seconds >= low_s ({self.low_s})")


@dataclass
class ArrivalConfig:
    """When requests arrive. `closed`: `concurrency` requests in flight, the next sent when one
    finishes. `poisson`: open loop at `rate` req/s. `gamma`: open loop at `rate` req/s with gamma
    inter-arrivals of shape `burstiness` (1 = Poisson, < 1 burstier, > 1 steadier). `all_at_once`:
    an offline batch. `trace`: at a trace's timestamps, the gaps multiplied by `time_scale` (0.5 =
    twice as fast). `sessions`: multi-turn conversations, `concurrency` at once, each turn sent
    `think_time` after the reply to the one before. The run ends after `num_requests` or
    `duration_s`, whichever comes first; the first `warmup_requests` and last `cooldown_requests`
    sent are excluded from the figures."""

    process: str = "closed"
    concurrency: int = 1
    rate: float = 1.0
    burstiness: float = 1.0
    time_scale: float = 1.0
    think_time: ThinkTimeConfig = field(default_factory=ThinkTimeConfig)
    duration_s: Optional[float] = None
    warmup_requests: int = 0
    cooldown_requests: int = 0

    def __post_init__(self) -> None:
        require_choice("process", self.process, ARRIVAL_PROCESSES)
        require_finite("time_scale", self.time_scale, self.time_scale > 0,
                       "a factor > 0 on the trace's gaps (0.5 = twice as fast)")
        require_count("concurrency", self.concurrency)
        require_finite("rate", self.rate, self.rate > 0, "requests per second > 0")
        require_finite("burstiness", self.burstiness, self.burstiness > 0, "a gamma shape > 0 (1 = Poisson)")
        if self.duration_s is not None:
            require_finite("duration_s", self.duration_s, self.duration_s > 0,
                           "seconds > 0, or null (bounded by the request count only)")
        require_count("warmup_requests", self.warmup_requests, minimum=0)
        require_count("cooldown_requests", self.cooldown_requests, minimum=0)


@dataclass
class SLOConfig:
    """Service-level objectives in ms (null = not applied). With `include_queue_wait` the TTFT and
    E2E objectives are judged from arrival (queue_wait + TTFT, queue_wait + E2E), as a user sees them."""

    ttft_ms: Optional[float] = None
    tpot_ms: Optional[float] = None
    e2e_ms: Optional[float] = None
    include_queue_wait: bool = True

    def __post_init__(self) -> None:
        for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
            value = getattr(self, key)
            if value is not None:  # an infinite objective is no objective: null says so
                require_finite(key, value, value > 0, "milliseconds > 0, or null")


@dataclass
class ThroughputBenchmarkConfig:
    """Many requests in flight: throughput, goodput, latency under load, KV-capacity load.
    `max_model_len`: the engine's context limit where the serving config sets one (null: the
    model's); file records that do not fit it are skipped. `cache_dir`: where `datasets` keeps
    the tables it builds from JSON files."""

    _target_: str = "context_research.benchmarks.throughput.ThroughputBenchmark"
    name: str = "throughput"
    workload: LoadWorkloadConfig = field(default_factory=LoadWorkloadConfig)
    arrival: ArrivalConfig = field(default_factory=ArrivalConfig)
    slo: SLOConfig = field(default_factory=SLOConfig)
    max_model_len: Optional[int] = None
    cache_dir: Optional[str] = None

    @property
    def needs_tokenizer(self) -> bool:
        """Text sources are tokenised with the model's tokenizer (checked by the cross-field rules)."""
        return self.workload.source in TEXT_SOURCES

    def __post_init__(self) -> None:
        require(self.max_model_len is None or self.max_model_len >= 1, "max_model_len", self.max_model_len,
                "null or an integer >= 1")
        source = self.workload.source
        if self.arrival.process == "trace":
            require(source in TRACE_SOURCES, "arrival.process", self.arrival.process,
                    f"a trace replays the timestamps of workload.source {', '.join(TRACE_SOURCES)} (not {source})")
        if self.arrival.process == "sessions":
            require(source == "sharegpt", "arrival.process", self.arrival.process,
                    f"sessions are ShareGPT conversations: workload.source=sharegpt (not {source})")
        if self.arrival.process == "all_at_once":
            require(self.arrival.duration_s is None, "arrival.duration_s", self.arrival.duration_s,
                    "null for all_at_once (an offline batch is bounded by its request count)")
        excluded = self.arrival.warmup_requests + self.arrival.cooldown_requests
        require(excluded < self.workload.num_requests, "arrival.warmup_requests", self.arrival.warmup_requests,
                f"warmup_requests + cooldown_requests ({excluded}) must be < workload.num_requests "
                f"({self.workload.num_requests})")
