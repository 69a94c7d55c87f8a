"""Memory-budget emulation (hardware/budget.py) and quantization applied by the engines: the budget
arithmetic, the engine arguments it gives vLLM, the fit check planning with it, the projected roofline
floors, the bnb one-line error, and an engine that fails to start not being started again."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
from omegaconf import OmegaConf

from context_research.config import ConfigError
from context_research.config.hardware import HardwareConfig
from context_research.hardware import fit, profiles
from context_research.hardware.budget import memory_budget, roofline_profiles
from context_research.hardware.profiles import GpuFacts, load_profile
from context_research.metrics.schema import BudgetSection, Summary
from context_research.profiling.roofline import floors, footprint
from context_research.serving.backends.vllm import engine_arguments
from tests.conftest import compose_config, hf_engine, typed, validate_on_this_host

# an H200 as NVML reports it: 143,771 MiB, of which the driver keeps 615 MiB (CUDA's total 150.11 GB: E5's
# vllm_requested_gb 135.10 is 0.9 of it)
H200 = GpuFacts("NVIDIA H200", 150_754_820_096, "9.0", reserved_bytes=644_874_240)
H200_CUDA_TOTAL = 150_754_820_096 - 644_874_240
L4 = GpuFacts("NVIDIA L4", 24_152_899_584, "8.9", reserved_bytes=380_108_800)
HAS_BNB = all(importlib.util.find_spec(name) is not None for name in ("bitsandbytes", "accelerate"))
E7_FP8 = ["experiment=e7", "precision=fp8", "prompt_len=32768", "concurrency=1"]


@pytest.fixture
def on_an_h200(monkeypatch):
    """This host as if NVML saw one H200 (the budget and the fit check read NVML through profiles.nvml_gpu)."""
    monkeypatch.setattr(profiles, "nvml_gpu", lambda index=0: H200)


def test_another_cards_profile_on_a_bigger_gpu_is_its_memory_there():
    budget = memory_budget(load_profile("rtx4090"), H200)
    assert (budget.budget_bytes, budget.gpu_total_bytes, budget.emulated) == (24e9, H200_CUDA_TOTAL, True)
    assert (budget.compute_hardware, budget.memory_hardware) == ("NVIDIA H200", "RTX 4090")
    # vLLM requests its configured share of the card: 0.9 x 24 GB of the GPU's CUDA total
    assert budget.vllm_gpu_memory_utilization(0.9) * H200_CUDA_TOTAL == pytest.approx(0.9 * 24e9)
    assert budget.vllm_gpu_memory_utilization(0.9) == pytest.approx(0.1438945, abs=1e-7)  # 21.6 / 150.11
    # the transformers engine: the budget less the CUDA context a 24 GB card also keeps outside torch
    assert budget.torch_memory_fraction() == pytest.approx((24e9 - 1_365_114_880) / H200_CUDA_TOTAL)
    assert budget.figures() == {"memory_budget_gb": 24.0, "emulated": True, "compute_hardware": "NVIDIA H200",
                                "memory_hardware": "RTX 4090", "gpu_memory_gb": H200_CUDA_TOTAL / 1e9}


def test_a_budget_on_auto_the_smaller_of_two_and_the_gpu_itself():
    budget = memory_budget(HardwareConfig(memory_budget_gb=48), H200)
    assert (budget.budget_bytes, budget.memory_hardware, budget.emulated) == (48e9, "48 GB budget", True)
    smaller = memory_budget(dataclasses.replace(load_profile("l40s"), memory_budget_gb=20), H200)
    assert (smaller.budget_bytes, smaller.memory_hardware) == (20e9, "20 GB budget")
    # its own datasheet, or auto resolved to it: the whole GPU as CUDA counts it, nothing capped
    for profile in (load_profile("h200"), profiles.resolve(HardwareConfig(), gpu=H200)):
        whole = memory_budget(profile, H200)
        assert (whole.budget_bytes, whole.emulated, whole.memory_hardware) == (H200_CUDA_TOTAL, False, "NVIDIA H200")
        assert whole.vllm_gpu_memory_utilization(0.9) == 0.9 and whole.torch_memory_fraction() == 1.0
    assert memory_budget(load_profile("rtx4090"), None) is None  # no GPU: nothing to cap


def test_a_budget_larger_than_the_gpu_is_one_line():
    with pytest.raises(ConfigError) as bigger:
        memory_budget(load_profile("h200"), L4)
    assert str(bigger.value) == ("hardware.name='H200': 141.00 GB is more than this GPU's 23.77 GB (NVIDIA L4): "
                                 "a budget emulates a smaller card on a bigger GPU")
    with pytest.raises(ConfigError, match=r"^hardware.memory_budget_gb=150.5: 150.50 GB is more than this GPU's 150.11"):
        memory_budget(HardwareConfig(memory_budget_gb=150.5), H200)


def test_vllm_engine_arguments_for_fp8_and_a_budget():
    serving, model = typed(E7_FP8, "serving"), typed(E7_FP8, "model")
    budget = memory_budget(HardwareConfig(memory_budget_gb=24), H200)
    args = engine_arguments(serving, model, "/models/qwen3", None, budget)
    assert args["quantization"] == "fp8" and args["kv_cache_dtype"] == "fp8" and args["load_format"] == "dummy"
    assert args["gpu_memory_utilization"] * H200_CUDA_TOTAL == pytest.approx(0.9 * 24e9)
    assert args["max_model_len"] == -1  # E7: vLLM fits the context to its memory
    assert args["dtype"] == "bfloat16"
    plain = engine_arguments(typed(["serving=vllm"], "serving"), typed([], "model"), "/models/tiny", None)
    assert "quantization" not in plain and plain["gpu_memory_utilization"] == 0.9
    assert plain["max_model_len"] == typed([], "model").max_model_len


def test_the_serving_config_carries_the_jobs_hardware():
    assert typed(["serving=vllm", "hardware=rtx4090"], "serving").hardware == load_profile("rtx4090")
    assert typed(["hardware.memory_budget_gb=24"], "serving").hardware.memory_budget_gb == 24


def test_the_fit_check_plans_with_the_engines_budget(on_an_h200):
    vllm = ["model=qwen3_8b", "serving=vllm", "model.load_format=dummy", "serving.max_model_len=32896"]
    with pytest.raises(ConfigError) as refused:
        validate_on_this_host(compose_config([*vllm, "hardware=rtx4090"]))
    assert ("0.9 x 24.00 GB (memory budget) - weights 16.38 - 1.52 non-KV leaves 3.70 GB of KV cache, "
            "25,072 tokens, less than one serving.max_model_len sequence of 32,896") in str(refused.value)
    assert "serving.kv_cache_dtype=fp8 (50,144 KV tokens)" in str(refused.value)
    validate_on_this_host(compose_config([*vllm, "hardware=rtx4090", "+precision=fp8"]))  # 144,352 KV tokens
    # the H200's own datasheet on the H200: the memory CUDA reports (150.11 GB), not the datasheet's 141
    with pytest.raises(ConfigError, match=r"0.1 x 150.11 GB \(GPU memory\)"):
        validate_on_this_host(compose_config([*vllm, "hardware=h200", "serving.gpu_memory_utilization=0.1"]))
    with pytest.raises(ConfigError, match=r"^hardware.name='H200': 141.00 GB is more than this GPU's 23.77 GB"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(profiles, "nvml_gpu", lambda index=0: L4)
            validate_on_this_host(compose_config([*vllm, "hardware=h200", "hardware.fit_check=false"]))


def test_an_emulated_card_gets_this_gpus_floors_and_its_own_as_projected(on_an_h200):
    from context_research.benchmarks.latency import LatencyBenchmark

    compute, projected = roofline_profiles(load_profile("rtx4090"))
    assert (compute.name, compute.memory_gb, projected.name) == ("H200", 150.754820096, "RTX 4090")
    assert roofline_profiles(load_profile("h200")) == (load_profile("h200"), None)

    overrides = ["model=qwen3_8b", "hardware=rtx4090", "prompt_len=8192", "output_len=128"]
    benchmark = LatencyBenchmark(typed(overrides, "benchmark"), typed(overrides, "model"))
    figures = benchmark.roofline()
    architecture = typed(overrides, "model").config_json
    h200, rtx4090 = load_profile("h200"), load_profile("rtx4090")
    own = floors(architecture, "bfloat16", 8192, 128, h200.hbm_bytes_per_s, h200.bf16_flops_per_s)
    card = floors(architecture, "bfloat16", 8192, 128, rtx4090.hbm_bytes_per_s, rtx4090.bf16_flops_per_s)
    assert figures["roofline_hardware"] == "H200" and figures["projected_hardware"] == "RTX 4090"
    assert figures["ttft_floor_ms"] == own["ttft_floor_ms"] and figures["tpot_floor_ms"] == own["tpot_floor_ms"]
    assert figures["projected_ttft_floor_ms"] == card["ttft_floor_ms"]
    assert figures["projected_tpot_floor_ms"] == pytest.approx(4.76 * figures["tpot_floor_ms"], rel=0.01)  # 4.8 / 1.008


def test_the_budget_section_names_compute_and_memory_apart():
    figures = {**memory_budget(load_profile("rtx4090"), H200).figures(), "gpu_memory_utilization": 0.1439,
               "engine_max_model_len": 25072}
    columns = Summary.from_json(Summary().add(BudgetSection.from_json(figures)).to_json()).columns()
    assert columns["compute_hardware"] == "NVIDIA H200" and columns["memory_hardware"] == "RTX 4090"
    assert columns["memory_budget_gb"] == 24.0 and columns["emulated"] is True
    assert columns["engine_max_model_len"] == 25072


def test_an_engine_on_the_cpu_has_no_budget(tmp_path):
    from context_research.profiling.memory import MemoryCollector

    engine = hf_engine(tmp_path, ["hardware=rtx4090"])
    engine.start()
    try:
        collector = MemoryCollector(typed([], "collectors")["memory"])
        collector.bind_engines({"aggregated": engine})
        collector.start()
        collector.stop()
        assert engine.memory_budget() is None and engine.describe()["memory_budget"] is None
        assert [section.key for section in collector.snapshot() if section is not None] == ["memory"]
    finally:
        engine.stop()


def test_each_quantization_runs_on_its_engine_and_bnb_needs_its_extra():
    with pytest.raises(ConfigError, match=r"^model.quantization='bnb_4bit': serving=hf applies it \(serving=vllm "
                                          r"applies fp8\); or null$"):
        validate_on_this_host(compose_config(["model=qwen3_8b", "serving=vllm", "model.load_format=dummy",
                                              "hardware=h200", "model.quantization=bnb_4bit"]))
    with pytest.raises(ConfigError, match=r"^model.quantization='fp8': serving=vllm applies it \(serving=hf "
                                          r"applies bnb_4bit, bnb_8bit\); or null$"):
        validate_on_this_host(compose_config(["hardware=h200", "model.quantization=fp8"]))


@pytest.mark.skipif(HAS_BNB, reason="bitsandbytes is installed here")
def test_without_bitsandbytes_bnb_is_one_line_before_any_engine_starts(run_launch):
    process, root = run_launch("model=qwen3_8b", "hardware=rtx4090", "model.quantization=bnb_8bit", timeout=120)
    assert process.returncode == 2
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: model.quantization='bnb_8bit': bitsandbytes not installed here: "
                      "pip install -e '.[bnb]'"] or errors == [
        "error: model.quantization='bnb_8bit': bitsandbytes and accelerate not installed here: pip install -e '.[bnb]'"]
    assert not list(root.glob("**/manifest.json"))


@pytest.mark.skipif(not HAS_BNB, reason="needs bitsandbytes and accelerate (pip install -e '.[bnb]')")
@pytest.mark.parametrize("quantization", ["bnb_8bit", "bnb_4bit"])
def test_bitsandbytes_weights_are_the_predicted_bytes(tmp_path, quantization):
    """bitsandbytes' CPU backend converts the same layers as on CUDA: the memory accounting counts its
    weights and scales, the footprint predicts them."""
    import torch

    from context_research.profiling.memory import parameter_bytes
    from context_research.serving.model_source import build_hf_model

    model = typed([f"model.quantization={quantization}"], "model")
    built = build_hf_model(model, tmp_path, "cpu", torch.bfloat16, 0, "sdpa")
    assert type(built.model.layers[0].mlp.down_proj).__name__ in ("Linear8bitLt", "Linear4bit")
    assert type(built.lm_head).__name__ == "Linear"  # the LM head stays in the model's dtype
    predicted = footprint(model.config_json, "bfloat16", None, quantization).weight_bytes
    assert parameter_bytes(built) == pytest.approx(predicted, rel=1e-3)


def test_an_engine_that_failed_to_start_is_not_started_again(tmp_path):
    """An engine on a GPU no host has (cuda:99) fails at start; the next job needing it fails at once."""
    from context_research.serving import engine_cache

    built = []

    def build():
        built.append(hf_engine(tmp_path, ["serving.device=cuda:99"]))
        return built[-1]

    key = engine_cache.engine_key({"device": "cuda:99", "test": tmp_path.name})
    with pytest.raises(Exception) as first:
        engine_cache.acquire({key: build})
    engine_cache.release_all()
    with pytest.raises(engine_cache.EngineStartFailed) as again:
        engine_cache.acquire({key: build})
    assert len(built) == 1
    assert str(again.value) == f"engine {key} failed to start earlier in this process: " \
                               f"{type(first.value).__name__}: {first.value}"


def test_e7s_config_reaches_the_engine_with_fp8_and_its_context_fitted():
    serving = typed(E7_FP8, "serving")
    assert (serving.kv_cache_dtype, serving.max_model_len, serving.hardware.fit_check) == ("fp8", 32896, False)
    assert OmegaConf.to_container(compose_config(E7_FP8).serving.extra_engine_args) == {"max_model_len": -1}
    assert fit.vllm_kv_capacity_tokens(footprint(typed(E7_FP8, "model").config_json, "bfloat16", "fp8", "fp8"),
                                       24e9, 0.9) == 144_352
