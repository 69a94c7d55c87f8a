"""GPU memory decomposition of weightless Qwen3-8B on a real GPU (vLLM dummy weights; hf seeded
random weights): the components sum to NVML's used memory within 3%, the weights are within 1% of
2 bytes x parameters, and the KV cache holds 147,456 bytes per token (bf16).

Run on the GPU host: python -m pytest -m gpu tests/profiling/test_memory_gpu.py -q
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from context_research.profiling.memory import GB
from context_research.profiling.roofline import footprint
from tests.conftest import compose_config, manifests, read_summary

pytestmark = pytest.mark.gpu

PROMPT_LEN, OUTPUT_LEN = 4096, 32
COMPONENTS = ("weights_gb", "kv_cache_gb", "activations_gb", "cuda_graph_gb", "torch_cache_gb", "non_torch_gb")


@pytest.fixture(scope="module")
def qwen3_8b():
    return footprint(OmegaConf.to_container(compose_config(["model=qwen3_8b"]).model.architecture), "bfloat16")


@pytest.mark.parametrize("serving", ["vllm", "hf"])
def test_qwen3_8b_decomposition(serving, run_launch, qwen3_8b):
    process, root = run_launch(f"serving={serving}", "model=qwen3_8b", "model.load_format=dummy", "name=memory_gpu",
                               f"prompt_len={PROMPT_LEN}", f"output_len={OUTPUT_LEN}", "num_prompts=1",
                               "benchmark.check_reproducibility=false", timeout=900)
    assert process.returncode == 0, process.stderr[-4000:]
    [manifest] = manifests(root / "run")
    summary = read_summary(Path(manifest["_dir"]))
    assert summary["gpu_available"] is True and summary["memory_available"] is True, summary

    assert summary["kv_bytes_per_token_measured"] == qwen3_8b.kv_bytes_per_token == 147_456
    assert summary["weights_gb"] * GB == pytest.approx(2 * qwen3_8b.parameters, rel=0.01)  # 16.4 GB
    for key in COMPONENTS:
        assert summary[key] is not None and math.isfinite(summary[key]) and summary[key] >= 0, (key, summary[key])
    assert summary["total_gb"] == pytest.approx(sum(summary[k] for k in COMPONENTS), rel=1e-9)
    assert summary["total_gb"] == pytest.approx(summary["nvml_used_gb"], rel=0.03), summary
    assert summary["torch_measure_reserved_peak_gb"] >= summary["torch_measure_allocated_peak_gb"] > 0
    for phase in ("load", "warmup"):
        assert summary[f"torch_{phase}_allocated_peak_gb"] > summary["weights_gb"] * 0.99

    # the job held at least its prompt's KV cache, and no more than what is allocated
    prompt_kv_gb = PROMPT_LEN * 147_456 / GB
    assert prompt_kv_gb <= summary["kv_used_gb"] <= summary["kv_cache_gb"]
    if serving == "hf":  # the cache holds exactly prompt + output - 1 positions at its peak
        assert summary["kv_cache_gb"] * GB == pytest.approx((PROMPT_LEN + OUTPUT_LEN - 1) * 147_456, rel=1e-12)
        assert summary["cuda_graph_gb"] == 0.0
    else:  # vLLM preallocates its cache and captures CUDA graphs; its own profile is recorded beside
        assert summary["kv_cache_gb"] > 10 * summary["kv_used_gb"]
        assert summary["cuda_graph_gb"] > 0
        assert math.isfinite(summary["vllm_profile_activations_gb"])
