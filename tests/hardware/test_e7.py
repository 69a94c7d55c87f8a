"""E7's sweep: budgets x precisions x prompts x concurrency, ordered so each (budget, precision)
engine serves all its jobs; what its comment says fits and does not, by the fit check's numbers."""

from __future__ import annotations

import itertools

from omegaconf import OmegaConf

from context_research.hardware import fit
from context_research.profiling.roofline import footprint
from tests.conftest import compose_config, typed, validate_on_this_host

ENGINE_KEYS = ("hardware.memory_budget_gb", "model.quantization", "serving.kv_cache_dtype")


def e7_points() -> list[list[str]]:
    """Every job, as Hydra's basic sweeper orders them (the last axis fastest)."""
    params = compose_config(["experiment=e7"], return_hydra_config=True).hydra.sweeper.params
    axes = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
    return [list(point) for point in itertools.product(*axes)]


def test_each_engine_serves_its_prompts_and_concurrencies_in_a_row():
    points = e7_points()
    assert len(points) == 3 * 4 * 4 * 3
    engines = [tuple(p for p in point if p.split("=")[0] in ENGINE_KEYS) for point in points]
    starts = [i for i, engine in enumerate(engines) if i == 0 or engine != engines[i - 1]]
    assert len(starts) == len(set(engines)) == 12  # every engine built once
    assert all(b - a == 12 for a, b in zip(starts, starts[1:]))


def test_each_engines_largest_job_validates_with_the_one_engine_length():
    lengths = set()
    for point in e7_points()[11::12]:  # each engine's last job: 32K prompts, 16 in flight
        assert "prompt_len=32768" in point and "concurrency=16" in point
        chosen = ["experiment=e7", *point, "hardware=h200"]
        validate_on_this_host(compose_config(chosen))
        serving, benchmark = typed(chosen, "serving"), typed(chosen, "benchmark")
        assert serving.engine == "vllm" and typed(chosen, "model").load_format == "dummy"
        assert benchmark.arrival.process == "closed"
        assert benchmark.workload.prompt_len.mean + benchmark.workload.output_len.mean <= 32896
        lengths.add(serving.max_model_len)
    assert lengths == {32896}


def test_at_24_gb_only_bf16_cannot_hold_a_32k_sequence():
    arch = OmegaConf.to_container(compose_config(["model=qwen3_8b"]).model.architecture)
    capacity = {(q, kv): fit.vllm_kv_capacity_tokens(footprint(arch, "bfloat16", kv, q), 24e9, 0.9)
                for q in (None, "fp8") for kv in (None, "fp8")}
    assert capacity[None, None] < 32896  # those engines fail at start, as the preset says
    assert min(v for k, v in capacity.items() if k != (None, None)) >= 32896
