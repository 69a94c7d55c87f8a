"""Memory accounting inside vLLM's GPU worker, reached from the harness by method name.

The model, its KV cache and its CUDA graphs live in vLLM's engine-core (worker) process, so that
is where the torch allocator and vLLM's own startup accounting are read. vLLM mixes
`WorkerMemoryAccounting` into its worker class (engine argument `worker_extension_cls`), and the
harness calls `collective_rpc(REPORT)` / `collective_rpc(RESET)`: a plain method name, so no
code is serialised (VLLM_ALLOW_INSECURE_SERIALIZATION stays off) and the reply is a plain dict.

Read on the worker (vLLM 0.26, V1 and V2 model runners alike):
  weights_bytes         model_runner.model_memory_usage (torch bytes allocated while loading)
  kv_cache_bytes        storages of model_runner.kv_caches (the KV cache tensors), each counted once
  kv_capacity_tokens    cache_config.num_gpu_blocks x block_size
  torch_* / graph_pool_* this process's allocator; graph pool = vLLM's global CUDA graph pool
  vllm_*                figures of vLLM's startup memory profile (Worker.determine_available_memory):
                        peak_activation_memory, non_torch_memory, cudagraph_memory_estimate,
                        available_kv_cache_memory_bytes, requested_memory
"""

from __future__ import annotations

import math
from typing import Any

WORKER_EXTENSION = "context_research.serving.backends.vllm_memory.WorkerMemoryAccounting"
REPORT = "context_research_memory_report"
RESET = "context_research_reset_peak_memory"

# vLLM Worker attribute -> report key (absent when vLLM skipped its profile, e.g. kv_cache_memory_bytes set)
PROFILE_ATTRIBUTES = {
    "peak_activation_memory": "vllm_profile_activations_bytes",
    "non_torch_memory": "vllm_profile_non_torch_bytes",
    "cudagraph_memory_estimate": "vllm_cudagraph_estimate_bytes",
    "available_kv_cache_memory_bytes": "vllm_kv_budget_bytes",
    "requested_memory": "vllm_requested_bytes",
}


class WorkerMemoryAccounting:
    """Mixed into vLLM's GPU worker: `self` is the worker (device, model_runner, cache_config)."""

    def context_research_reset_peak_memory(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.device)

    def context_research_memory_report(self) -> dict[str, Any]:
        from vllm.platforms import current_platform

        from context_research.profiling.memory import torch_memory, unique_storage_bytes

        runner = self.model_runner
        report: dict[str, Any] = torch_memory(self.device, graph_pools=[current_platform.get_global_graph_pool()])
        report["weights_bytes"] = float(runner.model_memory_usage)
        report["kv_cache_bytes"] = float(unique_storage_bytes(runner.kv_caches))
        report["kv_capacity_tokens"] = int(self.cache_config.num_gpu_blocks or 0) * int(self.cache_config.block_size)
        for attribute, key in PROFILE_ATTRIBUTES.items():
            value = getattr(self, attribute, None)
            report[key] = float(value) if value is not None else math.nan
        return report
