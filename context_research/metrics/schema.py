"""The one metrics schema: the sections of summary.json, written by the job and read by the report.

A job's summary is a `Summary`: the run's identity and checks, and one typed section per kind of
figure (latency distributions, throughput, load, SLOs and goodput, GPU samples, memory, KV transfer,
roofline, engine steps, task scores), each filled by the component that measures it. summary.json
holds `schema_version` and the sections by name:

    {"schema_version": 1, "run": {...}, "latency": {"n_requests": 4, ..., "distributions":
     {"ttft": {"mean": ..., "std": ..., "cv": ..., "percentiles": {"p50": ...}, "unit": "ms"}}}, ...}

The report reads it back through `Summary.from_json(...).columns()`: one flat row per job whose
column names are the metric names below (`ttft_p50_ms`, `req_s`, ...). Summaries written before the
schema (no `schema_version`: a flat dict of those same names) load the same way, so old records
and new give the same columns. Every metric's name is here; its formula is in the module named
beside its section.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

SCHEMA_VERSION = 1
Number = Optional[float]


@dataclass
class Distribution:
    """One per-request metric over the measured, successful requests (metrics/latency.py):
    mean, sample std, cv = std / mean and the percentiles (`p50`, ...), in `unit`."""

    mean: Number = None
    std: Number = None
    cv: Number = None
    percentiles: dict[str, Number] = field(default_factory=dict)
    unit: str = "ms"

    def columns(self, name: str) -> dict[str, Any]:
        """`{name}_mean_ms`, `{name}_std_ms`, `{name}_p50_ms`, ..., `{name}_cv`."""
        suffix = f"_{self.unit}" if self.unit else ""
        flat = {f"{name}_mean{suffix}": self.mean, f"{name}_std{suffix}": self.std}
        flat.update({f"{name}_{p}{suffix}": value for p, value in self.percentiles.items()})
        flat[f"{name}_cv"] = self.cv
        return flat


# `{metric}_{statistic}_ms` and `{metric}_cv` of a summary written before the schema
DISTRIBUTION_KEY = re.compile(r"^(?P<name>.+)_(?P<stat>mean|std|p\d+(?:\.\d+)?)_ms$")


@dataclass
class Section:
    """A group of summary figures; its field names are the metric names (columns of the report)."""

    key: ClassVar[str]

    def columns(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Section":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


@dataclass
class RunSection(Section):
    """What ran and whether it passed: every check held and no measured request failed (app.py)."""

    key: ClassVar[str] = "run"
    name: Optional[str] = None
    benchmark: Optional[str] = None
    scheduler: Optional[str] = None
    engine: Optional[str] = None
    model: Optional[str] = None
    engine_start_s: Number = None  # seconds spent starting engines for this job (0 when reused)
    measure_s: Number = None  # seconds of the benchmark run, collectors started to stopped
    passed: Optional[bool] = None
    checks: dict[str, bool] = field(default_factory=dict)
    # what makes a figure less than it looks: percentiles from too few requests, an unstable
    # measurement (metrics/measurement_warnings.py); printed when the job ends
    warnings: list[str] = field(default_factory=list)


@dataclass
class LatencySection(Section):
    """Request counts and the distribution of every per-request metric (metrics/latency.py)."""

    key: ClassVar[str] = "latency"
    n_requests: Optional[int] = None
    n_ok: Optional[int] = None
    n_errors: Optional[int] = None
    n_warmup: Optional[int] = None
    n_cooldown: Optional[int] = None
    distributions: dict[str, Distribution] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        flat = {k: v for k, v in dataclasses.asdict(self).items() if k != "distributions"}
        for name, distribution in self.distributions.items():
            flat.update(distribution.columns(name))
        return flat

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LatencySection":
        counts = {k: v for k, v in data.items() if k != "distributions" and k in cls.field_names()}
        distributions = {name: Distribution(**value) for name, value in (data.get("distributions") or {}).items()}
        return cls(**counts, distributions=distributions)

    def p50(self, metric: str) -> Number:
        distribution = self.distributions.get(metric)
        return distribution.percentiles.get("p50") if distribution else None


@dataclass
class ThroughputSection(Section):
    """Rates over the measurement window, first dispatch -> last completion (metrics/load.py)."""

    key: ClassVar[str] = "throughput"
    duration_s: Number = None
    completions: Optional[int] = None
    prompt_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    req_s: Number = None
    out_tok_s: Number = None
    total_tok_s: Number = None


@dataclass
class LoadSection(Section):
    """The load a run applied and what it put on the engine: in-flight requests and KV tokens
    against the KV capacity (metrics/load.py)."""

    key: ClassVar[str] = "load"
    arrival_process: Optional[str] = None
    concurrency: Optional[int] = None
    request_rate: Number = None
    burstiness: Number = None
    time_scale: Number = None  # trace replay: timestamps multiplied by it
    workload_source: Optional[str] = None  # a data set or trace (workloads/sources.py); null: synthetic
    workload_path: Optional[str] = None
    n_skipped_records: Optional[int] = None  # records of the file left out (too long, too short)
    prompt_len: Optional[int] = None
    output_len: Optional[int] = None
    shared_prefix_len: Optional[int] = None
    n_sent: Optional[int] = None
    peak_concurrency: Number = None
    mean_concurrency: Number = None
    kv_tokens_peak: Number = None
    kv_tokens_mean: Number = None
    kv_capacity_tokens: Number = None
    kv_load_peak: Number = None
    kv_load: Number = None


@dataclass
class SessionSection(Section):
    """Multi-turn sessions (workloads/sessions.py): the think time between turns, and per-session
    figures over the sessions whose every turn succeeded (benchmarks/throughput.py)."""

    key: ClassVar[str] = "sessions"
    think_time: Optional[str] = None
    think_time_mean_s: Number = None
    max_turns: Optional[int] = None
    n_sessions: Optional[int] = None
    turns_per_session_mean: Number = None
    session_p50_s: Number = None
    session_p95_s: Number = None


@dataclass
class PrefixCacheSection(Section):
    """The engine's prefix-cache reuse over the measured requests, overall and per turn of
    multi-turn sessions (metrics/prefix_cache.py); absent where the engine reports no cached tokens."""

    key: ClassVar[str] = "prefix_cache"
    prefix_cache_hit_rate: Number = None
    cached_prompt_tokens: Optional[int] = None
    measured_prompt_tokens: Optional[int] = None
    prefix_cache_hit_rate_by_turn: Optional[dict[str, Number]] = None  # sessions: turn (from 1) -> hit rate


@dataclass
class SLOSection(Section):
    """SLOs applied (ms, null = not applied), attainment and goodput (metrics/load.py)."""

    key: ClassVar[str] = "slo"
    slo_ttft_ms: Number = None
    slo_tpot_ms: Number = None
    slo_e2e_ms: Number = None
    slo_met: Optional[int] = None
    slo_attainment: Number = None
    goodput_req_s: Number = None


@dataclass
class GpuSection(Section):
    """NVML samples of the visible GPUs over the job (profiling/gpu.py)."""

    key: ClassVar[str] = "gpu"
    gpu_available: Optional[bool] = None
    gpu_unavailable_reason: Optional[str] = None
    gpu_count: Optional[int] = None
    gpu_samples: Optional[int] = None
    gpu_mem_peak_gb: Number = None  # the fullest GPU
    gpu_mem_total_peak_gb: Number = None  # every sampled GPU together, at their fullest moment
    gpu_mem_mean_gb: Number = None
    gpu_util_mean_pct: Number = None
    gpu_power_peak_w: Number = None
    gpu_power_mean_w: Number = None
    gpu_sm_clock_mean_mhz: Number = None
    gpu_sampling_error: Optional[str] = None


@dataclass
class MemorySection(Section):
    """torch peaks per phase and the decomposition of the job's peak GPU memory, GB = 1e9 bytes
    (profiling/memory.py)."""

    key: ClassVar[str] = "memory"
    memory_available: Optional[bool] = None
    memory_unavailable_reason: Optional[str] = None
    torch_load_allocated_peak_gb: Number = None
    torch_load_reserved_peak_gb: Number = None
    torch_warmup_allocated_peak_gb: Number = None
    torch_warmup_reserved_peak_gb: Number = None
    torch_measure_allocated_peak_gb: Number = None
    torch_measure_reserved_peak_gb: Number = None
    weights_gb: Number = None
    kv_cache_gb: Number = None
    kv_used_gb: Number = None
    kv_bytes_per_token_measured: Number = None
    activations_gb: Number = None
    cuda_graph_gb: Number = None
    torch_cache_gb: Number = None
    non_torch_gb: Number = None
    total_gb: Number = None
    nvml_used_gb: Number = None
    vllm_profile_activations_gb: Number = None
    vllm_profile_non_torch_gb: Number = None
    vllm_cudagraph_estimate_gb: Number = None
    vllm_kv_budget_gb: Number = None
    vllm_requested_gb: Number = None


@dataclass
class BudgetSection(Section):
    """The GPU memory the job's engines ran under (hardware/budget.py). `emulated`: a smaller card's
    memory (`memory_hardware`, `memory_budget_gb`) on this GPU (`compute_hardware`, `gpu_memory_gb`):
    its latencies are this GPU's compute under that memory, never the smaller card's. The cap the
    engine applied: vLLM's `gpu_memory_utilization` (the configured one x budget / GPU), the
    transformers engine's `torch_memory_fraction`."""

    key: ClassVar[str] = "budget"
    memory_budget_gb: Number = None
    emulated: Optional[bool] = None
    compute_hardware: Optional[str] = None
    memory_hardware: Optional[str] = None
    gpu_memory_gb: Number = None
    gpu_memory_utilization: Number = None
    torch_memory_fraction: Number = None
    # the longest sequence the engine accepts in that memory (vLLM's max_model_len: with max_model_len -1,
    # vLLM's auto-fit to its KV cache, E7's longest native context)
    engine_max_model_len: Optional[int] = None


@dataclass
class KVTransferSection(Section):
    """KV moved between pools in disaggregated runs (metrics/kv_transfer.py)."""

    key: ClassVar[str] = "kv_transfer"
    kv_transfers: Optional[int] = None
    kv_bytes_total: Number = None
    kv_gb_per_req: Number = None
    kv_transfer_p50_ms: Number = None
    kv_transfer_p95_ms: Number = None
    kv_wait_p50_ms: Number = None
    kv_bandwidth_gb_s: Number = None
    stall_ratio: Number = None
    kv_simulated: Optional[bool] = None
    kv_transfer_mode: Optional[str] = None  # connector | nixl | nixl_same_gpu | simulated | device_copy | process
    kv_connector: Optional[str] = None  # vLLM's KV connector (NixlConnector, ExampleConnector, ...)
    kv_connector_debug: Optional[bool] = None  # vLLM's debug connector (ExampleConnector: files via storage)
    kv_accounting: Optional[str] = None  # where kv_bytes and kv_transfer_s came from: connector_stats
    # (the connector's own statistics, per request), connector_files (what it stored), derived (prompt
    # tokens x KV bytes per token; the broker's handoff span)
    # the connector's own statistics over the job's engine steps (NIXL: every transfer finished while
    # the job ran, its warm-up requests' too): transfers, bytes, summed transfer time, bandwidth
    # (bytes / that time), descriptors, failures (failed transfers and notifications, expired requests)
    kv_connector_transfers: Optional[int] = None
    kv_connector_bytes: Number = None
    kv_connector_transfer_s: Number = None
    kv_connector_bandwidth_gb_s: Number = None
    kv_connector_descriptors: Optional[int] = None
    kv_connector_failures: Optional[int] = None
    kv_ucx_transports: Optional[str] = None  # UCX transports of the RMA lanes NIXL moved the KV on
    kv_ucx_protocols: Optional[str] = None  # UCX's protocol for large RMA messages, as its log names it
    kv_ucx_source: Optional[str] = None  # the UCX log they were read from, or why they are null


@dataclass
class RooflineSection(Section):
    """Floors from the architecture and the hardware's peaks (profiling/roofline.py), and the
    measured p50 over each floor."""

    key: ClassVar[str] = "roofline"
    roofline_hardware: Optional[str] = None
    roofline_peaks: Optional[str] = None  # datasheet | measured (hardware.calibrate=true)
    roofline_reason: Optional[str] = None  # why a floor is null (no GPU, a ceiling the profile lacks)
    calibrated_device: Optional[str] = None
    calibrated_hbm_bytes_per_s: Number = None
    calibrated_bf16_flops_per_s: Number = None
    calibrated_fp8_flops_per_s: Number = None
    model_parameters: Number = None
    kv_bytes_per_token: Number = None
    ttft_floor_ms: Number = None
    tpot_floor_ms: Number = None
    # under an emulated memory budget (BudgetSection) the floors above are this GPU's; the emulated
    # card's own, from its profile, are projected: what its compute would allow, not measured here
    projected_hardware: Optional[str] = None
    projected_ttft_floor_ms: Number = None
    projected_tpot_floor_ms: Number = None
    ttft_measured_over_floor: Number = None
    tpot_measured_over_floor: Number = None

    def with_ratios(self, latency: LatencySection | None) -> "RooflineSection":
        """measured / floor = the metric's p50 over its floor, where both are known."""
        if latency is None:
            return self
        ratios = {}
        for metric in ("ttft", "tpot"):
            floor, measured = getattr(self, f"{metric}_floor_ms"), latency.p50(metric)
            if floor and measured is not None and not math.isnan(measured):
                ratios[f"{metric}_measured_over_floor"] = measured / floor
        return dataclasses.replace(self, **ratios)


@dataclass
class EngineStepsSection(Section):
    """The engines' own step samples during the job (metrics/engine_steps.py)."""

    key: ClassVar[str] = "engine_steps"
    engine_steps: Optional[int] = None
    kv_cache_usage_peak: Number = None
    num_running_peak: Number = None
    num_waiting_peak: Number = None
    num_preemptions: Optional[int] = None


@dataclass
class ServerSection(Section):
    """A server's own figures over the job, from its /metrics (profiling/server_metrics.py): counter
    and histogram deltas, gauge peaks; null with `server_metrics_reason` where the server has none."""

    key: ClassVar[str] = "server"
    server_metrics_available: Optional[bool] = None
    server_metrics_reason: Optional[str] = None
    server_metrics_samples: Optional[int] = None
    server_prefix_cache_queries: Number = None  # tokens looked up in the prefix cache
    server_prefix_cache_hits: Number = None  # tokens found there
    server_prefix_cache_hit_rate: Number = None
    server_preemptions: Number = None
    server_prompt_tokens: Number = None
    server_generation_tokens: Number = None
    server_requests: Number = None  # requests the server finished
    server_queue_time_mean_ms: Number = None
    server_queue_time_p50_ms: Number = None
    server_queue_time_p99_ms: Number = None
    server_prefill_time_mean_ms: Number = None
    server_prefill_time_p50_ms: Number = None
    server_prefill_time_p99_ms: Number = None
    server_decode_time_mean_ms: Number = None
    server_decode_time_p50_ms: Number = None
    server_decode_time_p99_ms: Number = None
    server_kv_cache_usage_peak: Number = None  # a fraction of the KV cache
    server_kv_cache_usage_mean: Number = None
    server_num_running_peak: Number = None
    server_num_waiting_peak: Number = None


@dataclass
class ClientSection(Section):
    """The harness's own health over the job (profiling/client_health.py): event-loop lag and CPU
    share; for HTTP engines, whether the client rather than the server limited the run, and why."""

    key: ClassVar[str] = "client"
    loop_lag_samples: Optional[int] = None
    loop_lag_p50_ms: Number = None
    loop_lag_p99_ms: Number = None
    loop_lag_max_ms: Number = None
    client_cpu_share: Number = None  # process CPU time / wall time, in cores
    loop_cpu_share: Number = None  # the event-loop thread's CPU time / wall time, of one core
    client_limited: Optional[bool] = None
    client_warnings: list[str] = field(default_factory=list)


@dataclass
class TaskSection(Section):
    """A capability task's figures (scores, sample ids, quality under budget), as the task gives them."""

    key: ClassVar[str] = "task"
    figures: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        return dict(self.figures)

    def to_json(self) -> dict[str, Any]:
        return dict(self.figures)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TaskSection":
        return cls(figures=dict(data))


SECTIONS: tuple[type[Section], ...] = (RunSection, LatencySection, ThroughputSection, LoadSection, SessionSection,
                                       PrefixCacheSection, SLOSection, GpuSection, MemorySection, BudgetSection,
                                       KVTransferSection, RooflineSection, EngineStepsSection, ServerSection,
                                       ClientSection)


@dataclass
class Summary:
    """A job's summary: its sections by key, and what a summary held that no section names
    (`other`: kept, so an old record loses nothing). A summary from before the schema remembers
    which names it held (`flat_keys`), so it gives the report exactly those columns."""

    sections: dict[str, Section] = field(default_factory=dict)
    other: dict[str, Any] = field(default_factory=dict)
    schema_version: Optional[int] = SCHEMA_VERSION
    flat_keys: Optional[tuple[str, ...]] = None

    def add(self, *sections: Section | None) -> "Summary":
        """Put sections in (a later one of the same kind replaces an earlier one)."""
        for section in sections:
            if section is not None:
                self.sections[section.key] = section
        return self

    def get(self, kind: type[Section]) -> Section | None:
        return self.sections.get(kind.key)

    @property
    def run(self) -> RunSection:
        return self.sections.setdefault(RunSection.key, RunSection())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": self.schema_version}
        data.update({key: section.to_json() for key, section in self.sections.items()})
        data.update(self.other)
        return data

    def columns(self) -> dict[str, Any]:
        """One flat row: every section's metric names (the report's columns)."""
        flat: dict[str, Any] = {}
        for section in self.sections.values():
            flat.update(section.columns())
        flat.update({k: v for k, v in self.other.items() if k not in flat})
        if self.flat_keys is not None:  # before the schema: the names it held, in its order, and the ratios since
            derived = {k: v for k, v in flat.items()
                       if k.endswith("_measured_over_floor") and k not in self.flat_keys and v is not None}
            flat = {**{k: flat[k] for k in self.flat_keys if k in flat}, **derived}
        return flat

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Summary":
        """A summary.json as written by any version: sections by key, or a flat dict from before the schema."""
        if "schema_version" not in data:
            return cls.from_flat(data)
        kinds = {kind.key: kind for kind in (*SECTIONS, TaskSection)}
        sections = {key: kinds[key].from_json(value) for key, value in data.items() if key in kinds}
        other = {k: v for k, v in data.items() if k not in kinds and k != "schema_version"}
        return cls(sections=sections, other=other, schema_version=data["schema_version"])

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> "Summary":
        """A summary written before the schema: its keys are the metric names, so each goes to the
        section that names it, `{metric}_{stat}_ms` to the latency distributions, the rest kept."""
        rest = dict(flat)
        summary = cls(schema_version=None, flat_keys=tuple(flat))
        for kind in SECTIONS:
            if kind is LatencySection:
                continue
            claimed = {k: rest.pop(k) for k in list(rest) if k in kind.field_names()}
            if claimed:
                summary.add(kind.from_json(claimed))
        latency = LatencySection(**{k: rest.pop(k) for k in list(rest) if k in LatencySection.field_names()})
        for key in list(rest):  # what no section field claimed (kv_transfer_p50_ms is the KV section's)
            match = DISTRIBUTION_KEY.match(key)
            if match:
                distribution = latency.distributions.setdefault(match["name"], Distribution())
                value = rest.pop(key)
                if match["stat"] in ("mean", "std"):
                    setattr(distribution, match["stat"], value)
                else:
                    distribution.percentiles[match["stat"]] = value
        for name, distribution in latency.distributions.items():
            distribution.cv = rest.pop(f"{name}_cv", None)
        if latency.distributions or any(getattr(latency, name) is not None for name in LatencySection.field_names()
                                        if name != "distributions"):
            summary.add(latency)
        roofline = summary.get(RooflineSection)
        if roofline is not None:  # the report derived the ratios of these summaries
            summary.add(roofline.with_ratios(summary.get(LatencySection)))
        summary.other = rest
        return summary
