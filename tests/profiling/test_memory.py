"""Memory accounting: the hf engine's exact tensor arithmetic on CPU with honest NaN where CUDA and
NVML are absent, the KV meter over live caches, the decomposition's arithmetic, worker reports
summed over tensor-parallel ranks, and the E5 preset."""

from __future__ import annotations

import itertools
import math

import pytest

from context_research.config.collectors import MemoryCollectorConfig
from context_research.metrics.schema import GpuSection, Summary
from context_research.profiling.memory import (GB, MemoryCollector, combine_worker_reports,
                                               measured_decomposition, with_nvml)
from context_research.profiling.roofline import footprint
from context_research.requests import GenerationRequest
from tests.conftest import compose_config, hf_engine, snapshot_figures, typed, validate_on_this_host


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    backend = hf_engine(tmp_path_factory.mktemp("cache"))
    backend.start()
    backend.warmup()
    yield backend
    backend.stop()


def derived_figures(collector: MemoryCollector, nvml_total_peak_gb: float) -> dict:
    """What `derive` adds once the GPU collector's NVML peak is in the summary."""
    summary = Summary().add(*collector.snapshot(), GpuSection(gpu_mem_total_peak_gb=nvml_total_peak_gb))
    return Summary().add(*collector.derive(summary)).columns()


def EXACT(value: float):
    """Equal up to the rounding of a bytes -> GB division (the bytes themselves are integers)."""
    return pytest.approx(value, rel=1e-12)


def request(prompt_len: int, new: int) -> GenerationRequest:
    return GenerationRequest(request_id="m", prompt_token_ids=list(range(10, 10 + prompt_len)),
                             max_new_tokens=new, ignore_eos=True)


def test_hf_on_cpu_exact_bytes_and_nan_where_unmeasurable(engine):
    arch = engine.model_config.config_json
    per_token = footprint(arch, "float32").kv_bytes_per_token  # float32 on CPU
    collector = MemoryCollector(MemoryCollectorConfig())
    collector.bind_engines({"default": engine})
    collector.start()
    engine.generate(request(40, 6))
    collector.stop()
    figures = snapshot_figures(collector)
    # exact: parameters and the DynamicCache tensors (prompt + output - 1 positions at the end)
    assert figures["weights_gb"] * GB == EXACT(sum(p.numel() * 4 for p in engine.model.parameters()))
    assert figures["weights_gb"] * GB == EXACT(footprint(arch, "float32").weight_bytes)
    assert figures["kv_bytes_per_token_measured"] == per_token == 2 * 4 * 2 * 32 * 4
    assert figures["kv_cache_gb"] * GB == figures["kv_used_gb"] * GB == EXACT((40 + 6 - 1) * per_token)
    # no CUDA: torch figures unknown, not zero, and the reason is recorded
    assert figures["memory_available"] is False
    assert "cpu" in figures["memory_unavailable_reason"]
    for key in ("activations_gb", "cuda_graph_gb", "torch_cache_gb", "torch_measure_allocated_peak_gb",
                "torch_load_reserved_peak_gb"):
        assert math.isnan(figures[key]), key
    # no torch reserved figure: an NVML reading cannot give non-torch memory or a total either
    derived = derived_figures(collector, nvml_total_peak_gb=20.0)
    assert math.isnan(derived["non_torch_gb"]) and math.isnan(derived["total_gb"])
    assert derived["nvml_used_gb"] == 20.0
    # the engine's own phases: nothing cached after loading, the warm-up request's cache after warm-up
    assert engine.memory_phases["load"]["kv_cache_bytes"] == 0
    assert engine.memory_phases["warmup"]["kv_cache_bytes"] == (8 + 2 - 1) * per_token


def test_a_batch_is_metered_exactly_through_the_batched_path(engine):
    per_token = footprint(engine.model_config.config_json, "float32").kv_bytes_per_token
    engine.reset_memory_peaks()
    engine.generate_batch([request(20, 3) for _ in range(4)])
    report = engine.memory_report()
    assert report["kv_bytes_per_token"] == per_token
    assert report["kv_cache_bytes"] == 4 * (20 + 3 - 1) * per_token


def test_kv_meter_counts_live_caches_and_forgets_freed_ones(engine):
    per_token = footprint(engine.model_config.config_json, "float32").kv_bytes_per_token
    engine.reset_memory_peaks()
    first = engine.prefill(request(30, 1))  # each result holds its prompt's cache
    second = engine.prefill(request(20, 1))
    meter = engine.memory.kv
    assert meter.resident_bytes() == meter.peak_bytes == (30 + 20) * per_token
    del first
    assert meter.resident_bytes() == 20 * per_token
    assert meter.peak_bytes == 50 * per_token  # the peak stays until reset
    engine.reset_memory_peaks()
    assert meter.peak_bytes == 20 * per_token  # like torch: the peak restarts from what is resident
    del second
    assert meter.resident_bytes() == 0


def vllm_like_report(**overrides) -> dict:
    """One worker's report (bytes) as vllm_memory.WorkerMemoryAccounting gives it."""
    report = {"weights_bytes": 16.4e9, "kv_cache_bytes": 100e9, "kv_capacity_tokens": 678_168,
              "torch_allocated_peak_bytes": 118.0e9, "torch_reserved_peak_bytes": 120.5e9,
              "torch_allocated_bytes": 117e9, "torch_reserved_bytes": 120.5e9,
              "graph_pool_reserved_bytes": 0.8e9, "graph_pool_allocated_bytes": 0.1e9,
              "vllm_profile_activations_bytes": 2.1e9, "vllm_profile_non_torch_bytes": 0.3e9,
              "vllm_cudagraph_estimate_bytes": 0.0, "vllm_kv_budget_bytes": 100.1e9, "vllm_requested_bytes": 126e9}
    return {**report, **overrides}


def test_decomposition_arithmetic_and_its_identity():
    report = {**combine_worker_reports([vllm_like_report()]), "kv_used_bytes": 0.25 * 100e9}
    parts = measured_decomposition([report])
    assert parts["weights_gb"] == pytest.approx(16.4) and parts["kv_cache_gb"] == pytest.approx(100.0)
    assert parts["kv_used_gb"] == pytest.approx(25.0)
    assert parts["activations_gb"] == pytest.approx(118.0 - 16.4 - 100.0 - 0.1)
    assert parts["cuda_graph_gb"] == pytest.approx(0.8)
    assert parts["torch_cache_gb"] == pytest.approx((120.5 - 0.8) - (118.0 - 0.1))
    assert parts["kv_bytes_per_token_measured"] == pytest.approx(100e9 / 678_168)
    full = {**parts, **with_nvml(parts, torch_reserved_gb=120.5, nvml_used_gb=122.0)}
    assert full["non_torch_gb"] == pytest.approx(122.0 - 120.5)
    # weights + kv + activations + graph pool + allocator cache + non-torch: complete by construction
    assert full["total_gb"] == pytest.approx(16.4 + 100.0 + 1.5 + 0.8 + 1.8 + 1.5)
    assert full["total_gb"] == pytest.approx(full["nvml_used_gb"])


def test_tensor_parallel_ranks_add_up_and_keep_bytes_per_token_of_the_whole_model():
    shard = vllm_like_report(weights_bytes=8.2e9, kv_cache_bytes=50e9)
    combined = combine_worker_reports([shard, shard])
    assert combined["weights_bytes"] == pytest.approx(16.4e9)
    assert combined["kv_cache_bytes"] == pytest.approx(100e9)
    assert combined["kv_capacity_tokens"] == 678_168  # every rank holds the same tokens
    assert combined["kv_bytes_per_token"] == pytest.approx(100e9 / 678_168)


class StepLoggingEngine:
    """What the collector needs of a vLLM engine: a report, peak resets and the step log."""

    def __init__(self) -> None:
        self.steps = [{"kv_cache_usage": 0.9}]  # an earlier job's steps: not this job's
        self.memory_phases = {"load": vllm_like_report(), "warmup": vllm_like_report()}
        self.resets = 0

    def reset_memory_peaks(self) -> None:
        self.resets += 1

    def memory_report(self) -> dict:
        return combine_worker_reports([vllm_like_report()])

    def step_log(self) -> list[dict]:
        return list(self.steps)


def test_kv_used_is_this_jobs_peak_usage_of_the_allocated_cache():
    engine = StepLoggingEngine()
    collector = MemoryCollector(MemoryCollectorConfig())
    collector.bind_engines({"default": engine})
    collector.start()
    engine.steps += [{"kv_cache_usage": 0.1}, {"kv_cache_usage": 0.3}, {"kv_cache_usage": 0.2}]
    collector.stop()
    figures = snapshot_figures(collector)
    assert engine.resets == 1 and figures["memory_available"] is True
    assert figures["kv_used_gb"] == pytest.approx(0.3 * 100.0)
    assert figures["torch_load_allocated_peak_gb"] == pytest.approx(118.0)
    assert figures["vllm_profile_activations_gb"] == pytest.approx(2.1)


def test_without_engines_the_collector_says_so():
    collector = MemoryCollector(MemoryCollectorConfig())
    collector.start()
    collector.stop()
    assert snapshot_figures(collector)["memory_available"] is False
    assert derived_figures(collector, nvml_total_peak_gb=1.0) == {}


def e5_points() -> list[list[str]]:
    """Every job of the E5 preset's sweep, as Hydra's basic sweeper orders them (first key slowest)."""
    cfg = compose_config(["experiment=e5"], return_hydra_config=True)
    axes = [[f"{key}={value}" for value in str(values).split(",")]
            for key, values in cfg.hydra.sweeper.params.items()]
    return [list(point) for point in itertools.product(*axes)]


def test_e5_sweeps_both_engines_over_1k_to_32k_and_every_point_validates():
    points = e5_points()
    values = {key: {p.split("=")[1] for point in points for p in point if p.startswith(f"{key}=")}
              for key in ("serving", "concurrency", "prompt_len")}
    assert values == {"serving": {"vllm", "hf"}, "concurrency": {"1", "16"},
                      "prompt_len": {"1024", "2048", "4096", "8192", "16384", "32768"}}
    assert points[0][0] == "serving=vllm"  # vLLM first: its engine process exits before hf loads
    for point in points:
        # the sweep's composition, whatever this machine's memory (hardware/fit.py judges fit; on the H200
        # it refuses hf 16 x 32K, which ran out of memory there: results/h200/e5)
        chosen = ["experiment=e5", *point, "hardware.fit_check=false"]
        cfg = compose_config(chosen)
        validate_on_this_host(cfg)
        benchmark = typed(chosen, "benchmark")
        assert typed(chosen, "model").name == "qwen3_8b" and typed(chosen, "serving").engine in ("vllm", "hf")
        # every request of the job resident together: one batch of `concurrency` requests
        assert benchmark.arrival.process == "all_at_once"
        assert benchmark.workload.num_requests == cfg.concurrency
