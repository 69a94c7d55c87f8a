"""Memory-budget emulation and quantization on a real GPU (the device machine: python -m pytest -m gpu
tests/hardware). The vLLM test starts weightless Qwen3-8B once (a minute or two, less with a warm compile
cache); the others use the tiny model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from context_research.hardware import fit, profiles
from context_research.profiling.roofline import footprint
from tests.conftest import compose_config, hf_engine, manifests, read_summary

pytestmark = pytest.mark.gpu
HAS_BNB = all(importlib.util.find_spec(name) is not None for name in ("bitsandbytes", "accelerate"))


def test_nvmls_total_less_the_reservation_is_cudas_total():
    """The total both memory fractions multiply (hardware/budget.py) is the one CUDA reports."""
    import torch

    assert profiles.nvml_gpu(0).cuda_total_bytes == torch.cuda.mem_get_info(0)[1]


def test_a_24_gb_budget_gives_vllm_the_predicted_kv_capacity_and_fp8_weights(run_launch):
    """E7's 24 GB, fp8 engine: vLLM requests 0.9 x 24 GB of the H200, its KV capacity is within 5% of the
    fit check's prediction and its fp8 weights within 2% of the predicted bytes."""
    process, root = run_launch("experiment=e7_quick", "precision=fp8", "hardware.memory_budget_gb=24",
                               "prompt_len=8192", "concurrency=1", timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]
    (record,) = manifests(root / "run")
    summary = read_summary(Path(record["_dir"]))
    total = profiles.nvml_gpu(0).cuda_total_bytes
    assert summary["emulated"] is True and summary["memory_budget_gb"] == 24
    assert summary["gpu_memory_utilization"] == pytest.approx(0.9 * 24e9 / total)
    assert summary["vllm_requested_gb"] == pytest.approx(21.6, rel=1e-3)
    architecture = OmegaConf.to_container(compose_config(["model=qwen3_8b"]).model.architecture)
    fp8 = footprint(architecture, "bfloat16", "fp8", "fp8")
    predicted = fit.vllm_kv_capacity_tokens(fp8, 24e9, 0.9)
    print(f"KV capacity {summary['kv_capacity_tokens']:,.0f} tokens, predicted {predicted:,}; "
          f"weights {summary['weights_gb']:.4f} GB, predicted {fp8.weight_bytes / 1e9:.4f}")
    assert summary["kv_capacity_tokens"] == pytest.approx(predicted, rel=0.05)
    assert summary["weights_gb"] == pytest.approx(fp8.weight_bytes / 1e9, rel=0.02)
    assert summary["kv_bytes_per_token_measured"] == 73_728
    assert summary["engine_max_model_len"] == 40960  # the KV cache holds more than the model's positions
    assert record["engines"]["aggregated"]["engine_args"]["quantization"] == "fp8"


def test_the_transformers_engine_holds_to_its_budget(tmp_path):
    import torch

    engine = hf_engine(tmp_path, ["serving.device=cuda", "hardware.memory_budget_gb=4"])
    engine.start()
    try:
        budget = engine.memory_budget()
        assert budget["emulated"] and budget["memory_budget_gb"] == 4
        assert budget["torch_memory_fraction"] == pytest.approx((4e9 - fit.HF_CUDA_NON_TORCH_BYTES) /
                                                                torch.cuda.mem_get_info(0)[1])
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(4e9), dtype=torch.uint8, device="cuda")
    finally:
        engine.stop()
    spare = torch.empty(int(4e9), dtype=torch.uint8, device="cuda")  # stopped: the whole GPU again
    del spare
    torch.cuda.empty_cache()


@pytest.mark.skipif(not HAS_BNB, reason="needs bitsandbytes and accelerate (pip install -e '.[bnb]')")
@pytest.mark.parametrize("quantization", ["bnb_8bit", "bnb_4bit"])
def test_bitsandbytes_on_cuda_serves_with_the_predicted_weights(tmp_path, quantization):
    from context_research.requests import GenerationRequest

    engine = hf_engine(tmp_path, ["serving.device=cuda", f"model.quantization={quantization}"])
    engine.start()
    try:
        result = engine.generate(GenerationRequest(request_id="q", prompt_token_ids=[5] * 32, max_new_tokens=8,
                                                   ignore_eos=True))
        assert result.completion_tokens == 8 and engine.describe()["quantization"] == quantization
        model = engine.model_config
        predicted = footprint(model.config_json, model.dtype, None, quantization).weight_bytes
        assert engine.memory_report()["weights_bytes"] == pytest.approx(predicted, rel=1e-3)
    finally:
        engine.stop()
