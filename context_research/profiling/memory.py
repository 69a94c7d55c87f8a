"""GPU memory accounting: torch allocator peaks per phase, the KV cache an engine holds, and the
decomposition of a job's peak GPU memory.

Phases: `load` (engine start: weights, and for vLLM its profiling run, KV allocation and CUDA
graph capture), `warmup` (the engine's warm-up request) and `measure` (this job's benchmark run,
its own warm-up requests included). The engines record the first two when they start (a cached
engine keeps its figures); `MemoryCollector` resets the peaks when the benchmark starts and reads
them when it ends. Engines report through `reset_memory_peaks()`, `memory_report()` and
`memory_phases`; in-process engines (hf) use `InProcessMemory`, vLLM reads the same figures in its
worker process (serving/backends/vllm_memory.py).

Decomposition of the measured phase (GB = 1e9 bytes), summed over the job's engines:

    weights      vLLM: its own accounting (`model_memory_usage`, bytes allocated while loading);
                 hf: the parameters' bytes
    kv_cache     vLLM: bytes of the KV cache tensors it allocated (the capacity);
                 hf: bytes of the live DynamicCache tensors at their peak
    kv_used      vLLM: peak KV usage (share of blocks held by requests) x kv_cache; hf: = kv_cache
    activations  torch's peak allocated bytes - weights - kv_cache - tensors held in CUDA graph
                 pools: activations and the engine's working buffers alive at the peak
    cuda_graph   bytes reserved by CUDA graph memory pools (vLLM's global pool; hf: any private pool)
    torch_cache  the PyTorch allocator's cache: reserved outside graph pools - allocated outside
                 graph pools, at the peak (blocks freed by activations, fragmentation)
    non_torch    NVML used at peak - torch reserved at peak: CUDA contexts, NCCL, cuBLAS and graph
                 objects, and any other process on the GPU
    total        weights + kv_cache + activations + cuda_graph + torch_cache + non_torch
    nvml_used    NVML's used memory at peak, all sampled GPUs together

activations, torch_cache and non_torch are residuals, so total equals nvml_used by construction:
the decomposition is complete. What checks it independently are the weights (2 bytes per
parameter in bf16) and the KV bytes per token (from the live cache tensors).

Where a figure cannot be measured (no CUDA, no NVML) it is NaN (null in summary.json) and
`memory_unavailable_reason` says why; weights, KV bytes and KV bytes per token are tensor
arithmetic and exact on any device.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from typing import Any, Iterable

from context_research.metrics.engine_steps import kv_cache_usage_peak
from context_research.metrics.schema import BudgetSection, GpuSection, MemorySection, Section, Summary
from context_research.profiling.base import MetricCollector

GB = 1e9
PHASES = ("load", "warmup", "measure")
DEFAULT_POOL = (0, 0)
NAN = math.nan

# what an engine's memory_report() holds (bytes unless named otherwise), NaN where unknown
TORCH_FIELDS = ("torch_allocated_peak_bytes", "torch_reserved_peak_bytes", "torch_allocated_bytes",
                "torch_reserved_bytes", "graph_pool_reserved_bytes", "graph_pool_allocated_bytes")
VLLM_FIELDS = ("vllm_profile_activations_bytes", "vllm_profile_non_torch_bytes", "vllm_cudagraph_estimate_bytes",
               "vllm_kv_budget_bytes", "vllm_requested_bytes")


def unavailable_torch_figures() -> dict[str, float]:
    return dict.fromkeys(TORCH_FIELDS, NAN)


def torch_memory(device: Any, graph_pools: Iterable[tuple[int, int]] | None = None) -> dict[str, float]:
    """The torch allocator's figures for one CUDA device, in bytes: current and peak (since the last
    `reset_peak_memory_stats`) allocated and reserved, and what CUDA graph pools reserve and hold.

    `graph_pools`: the pool ids graphs are captured into; None counts every private pool.
    """
    import torch

    index = device.index if getattr(device, "index", None) is not None else torch.cuda.current_device()
    wanted = None if graph_pools is None else {tuple(pool) for pool in graph_pools}
    graph_reserved = graph_allocated = 0
    for segment in torch.cuda.memory_snapshot():
        if segment.get("device") != index:
            continue
        pool = tuple(segment.get("segment_pool_id", DEFAULT_POOL))
        if pool != DEFAULT_POOL and (wanted is None or pool in wanted):
            graph_reserved += segment["total_size"]
            graph_allocated += segment["allocated_size"]
    return {
        "torch_allocated_peak_bytes": float(torch.cuda.max_memory_allocated(index)),
        "torch_reserved_peak_bytes": float(torch.cuda.max_memory_reserved(index)),
        "torch_allocated_bytes": float(torch.cuda.memory_allocated(index)),
        "torch_reserved_bytes": float(torch.cuda.memory_reserved(index)),
        "graph_pool_reserved_bytes": float(graph_reserved),
        "graph_pool_allocated_bytes": float(graph_allocated),
    }


def unique_storage_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind `tensors` (nested lists allowed; views counted once)."""
    seen: dict[int, int] = {}
    stack = list(tensors)
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif item is not None:
            storage = item.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def parameter_bytes(model: Any) -> int:
    """Bytes of a module's parameters (tied parameters counted once), with the scales bitsandbytes
    keeps beside its quantized weights."""
    return sum(p.numel() * p.element_size() + quantization_state_bytes(p) for p in model.parameters())


def quantization_state_bytes(parameter: Any) -> int:
    """Bytes of the state a bitsandbytes weight holds outside its data: LLM.int8()'s per-row scales
    (`Int8Params.SCB`), 4-bit's per-block absmax and code book (`Params4bit.quant_state`, nested
    states included); 0 for any other parameter."""
    tensors = [getattr(parameter, "SCB", None)]
    state = getattr(parameter, "quant_state", None)
    while state is not None:
        tensors += [getattr(state, "absmax", None), getattr(state, "code", None)]
        state = getattr(state, "state2", None)
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def cache_bytes(cache: Any) -> tuple[int, int]:
    """(bytes, cached token positions) of a transformers Cache: keys and values of every layer;
    positions = batch x length of the longest layer."""
    total = positions = 0
    for layer in getattr(cache, "layers", ()):
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if tensor is not None and tensor.dim() >= 2:
                total += tensor.numel() * tensor.element_size()
                positions = max(positions, tensor.shape[0] * tensor.shape[-2])
    return total, positions


class KVCacheMeter:
    """KV bytes resident in the caches an engine's forward passes wrote, and their peak.

    Hooked after every forward pass of the model, so any path through the model (single requests,
    batches, transformers' own generate) is counted; caches are held weakly, so a finished
    request's cache leaves the count when it is freed.
    """

    def __init__(self) -> None:
        self._caches: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self.peak_bytes = 0
        self.bytes_per_token = NAN

    def hook(self, cache_keyword: str):
        """A `register_forward_hook(..., with_kwargs=True)` hook reading the cache argument."""
        def after_forward(module, args, kwargs, output):
            cache = kwargs.get(cache_keyword)
            if cache is not None:
                self.observe(cache)
        return after_forward

    def observe(self, cache: Any) -> None:
        self._caches[id(cache)] = cache
        size, positions = cache_bytes(cache)
        if positions:
            self.bytes_per_token = size / positions
        self.peak_bytes = max(self.peak_bytes, self.resident_bytes())

    def resident_bytes(self) -> int:
        return sum(cache_bytes(cache)[0] for cache in list(self._caches.values()))

    def reset_peak(self) -> None:
        """Like torch's reset_peak_memory_stats: the peak restarts from what is resident now."""
        self.peak_bytes = self.resident_bytes()


class InProcessMemory:
    """Memory accounting of an engine whose model runs in this process (the hf engine)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.device = device
        # a CUDA device without CUDA: the engine itself fails to load, with its own error
        self.on_cuda = device.type == "cuda" and torch.cuda.is_available()
        self.unavailable = None if self.on_cuda else f"torch.cuda unavailable: the engine runs on {device}"
        if self.on_cuda:  # the device's caching allocator must exist before its statistics are reset
            torch.empty(1, device=device)
        self.weights_bytes = NAN
        self.kv = KVCacheMeter()
        self.phases: dict[str, dict[str, float]] = {}

    def watch(self, model: Any, cache_keyword: str) -> None:
        """Count the model's parameters and meter the KV cache of each of its forward passes."""
        self.weights_bytes = float(parameter_bytes(model))
        model.register_forward_hook(self.kv.hook(cache_keyword), with_kwargs=True)

    def reset_peaks(self) -> None:
        """Start a phase: the allocator's cached blocks are released first, so the phase's
        reserved memory is its own, not what an earlier phase or job left cached."""
        self.kv.reset_peak()
        if self.on_cuda:
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def report(self) -> dict[str, Any]:
        figures = torch_memory(self.device) if self.on_cuda else unavailable_torch_figures()
        kv = float(self.kv.peak_bytes)
        return {**figures, "weights_bytes": self.weights_bytes, "kv_cache_bytes": kv, "kv_used_bytes": kv,
                "kv_bytes_per_token": float(self.kv.bytes_per_token), "unavailable": self.unavailable}

    def close_phase(self, phase: str) -> None:
        """Keep the phase's figures and start the next phase's peaks."""
        self.phases[phase] = self.report()
        self.reset_peaks()


def combine_worker_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One engine's report from its workers' (tensor-parallel ranks: each holds a shard, so bytes
    add up; KV bytes per token of the whole model = all ranks' KV bytes / the tokens they hold)."""
    combined: dict[str, Any] = {key: math.fsum(float(r[key]) for r in reports)
                                for key in reports[0] if key.endswith("_bytes")}
    tokens = reports[0]["kv_capacity_tokens"]
    combined["kv_capacity_tokens"] = tokens
    combined["kv_bytes_per_token"] = combined["kv_cache_bytes"] / tokens if tokens else NAN
    combined["unavailable"] = None
    return combined


def unavailable_report(reason: str) -> dict[str, Any]:
    """An engine's report when its memory cannot be read at all."""
    return {**unavailable_torch_figures(), "weights_bytes": NAN, "kv_cache_bytes": NAN, "kv_bytes_per_token": NAN,
            "unavailable": reason}


def total_over(reports: Iterable[dict[str, Any]], key: str) -> float:
    """Sum over engines; NaN when any engine does not know it."""
    return math.fsum(float(r.get(key, NAN)) for r in reports)


def measured_decomposition(reports: list[dict[str, Any]]) -> dict[str, float]:
    """The components known without NVML, in GB (see the module docstring)."""
    weights = total_over(reports, "weights_bytes")
    kv = total_over(reports, "kv_cache_bytes")
    allocated = total_over(reports, "torch_allocated_peak_bytes")
    reserved = total_over(reports, "torch_reserved_peak_bytes")
    graph_reserved = total_over(reports, "graph_pool_reserved_bytes")
    graph_allocated = total_over(reports, "graph_pool_allocated_bytes")
    per_token = {float(r["kv_bytes_per_token"]) for r in reports}
    return {
        "weights_gb": weights / GB,
        "kv_cache_gb": kv / GB,
        "kv_used_gb": total_over(reports, "kv_used_bytes") / GB,
        "kv_bytes_per_token_measured": per_token.pop() if len(per_token) == 1 else NAN,
        "activations_gb": (allocated - weights - kv - graph_allocated) / GB,
        "cuda_graph_gb": graph_reserved / GB,
        "torch_cache_gb": ((reserved - graph_reserved) - (allocated - graph_allocated)) / GB,
    }


TORCH_COMPONENTS = ("weights_gb", "kv_cache_gb", "activations_gb", "cuda_graph_gb", "torch_cache_gb")


def with_nvml(decomposition: dict[str, float], torch_reserved_gb: float, nvml_used_gb: float) -> dict[str, float]:
    """The components that need NVML's used memory at peak: non_torch and the total."""
    non_torch = nvml_used_gb - torch_reserved_gb
    total = math.fsum(decomposition[k] for k in TORCH_COMPONENTS) + non_torch
    return {"non_torch_gb": non_torch, "total_gb": total, "nvml_used_gb": nvml_used_gb}


class MemoryCollector(MetricCollector):
    """Per-phase torch peaks of the job's engines and the decomposition of its peak GPU memory.

    Bound to the job's engines (`bind_engines`) before `start`; `derive` completes the
    decomposition once the GPU collector's NVML peak is in the summary.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.engines: dict[str, Any] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self._steps_before: dict[str, int] = {}

    def bind_engines(self, engines: dict[str, Any]) -> None:
        self.engines = dict(engines)

    def start(self) -> None:
        for pool, engine in self.engines.items():
            engine.reset_memory_peaks()
            self._steps_before[pool] = len(engine.step_log())

    def stop(self) -> None:
        for pool, engine in self.engines.items():
            report = dict(engine.memory_report())
            if "kv_used_bytes" not in report:  # vLLM: the used share of its preallocated KV cache
                usage = kv_cache_usage_peak(engine.step_log()[self._steps_before.get(pool, 0):])
                report["kv_cache_usage_peak"] = usage
                report["kv_used_bytes"] = usage * report["kv_cache_bytes"]
            self.reports[pool] = report

    def _phase_peaks(self) -> dict[str, float]:
        figures = {}
        for phase in PHASES:
            if phase == "measure":
                reports = list(self.reports.values())
            else:
                reports = [e.memory_phases.get(phase, {}) for e in self.engines.values()]
            for kind in ("allocated", "reserved"):
                figures[f"torch_{phase}_{kind}_peak_gb"] = total_over(reports, f"torch_{kind}_peak_bytes") / GB
        return figures

    def snapshot(self) -> list[Section]:
        if not self.reports:
            return [MemorySection(memory_available=False, memory_unavailable_reason="no engine reported its memory")]
        reports = list(self.reports.values())
        reasons = sorted({r["unavailable"] for r in reports if r.get("unavailable")})
        figures: dict[str, Any] = {**self._phase_peaks(), **measured_decomposition(reports)}
        for key in VLLM_FIELDS:
            if any(key in r for r in reports):
                figures[key.replace("_bytes", "_gb")] = total_over(reports, key) / GB
        return [MemorySection(memory_available=not reasons,
                              memory_unavailable_reason="; ".join(reasons) if reasons else None, **figures),
                self._budget()]

    def _budget(self) -> BudgetSection | None:
        """The memory budget the engines ran under (one hardware config for all of a job's pools: the
        first GPU engine's); None where no engine runs on a GPU or reports one."""
        reports = (getattr(engine, "memory_budget", lambda: None)() for engine in self.engines.values())
        budgets = [budget for budget in reports if budget is not None]
        return BudgetSection.from_json(budgets[0]) if budgets else None

    def derive(self, summary: Summary) -> list[Section]:
        """non_torch, total and NVML's used memory, from the GPU collector's peak (all GPUs)."""
        memory, gpu = summary.get(MemorySection), summary.get(GpuSection)
        if memory is None or memory.torch_measure_reserved_peak_gb is None:
            return []
        nvml = gpu.gpu_mem_total_peak_gb if gpu is not None else None
        figures = with_nvml(dataclasses.asdict(memory), memory.torch_measure_reserved_peak_gb,
                            NAN if nvml is None else float(nvml))
        return [dataclasses.replace(memory, **figures)]
