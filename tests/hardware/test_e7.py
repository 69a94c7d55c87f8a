"""E7's sweep: budgets x precisions x prompts x concurrency, ordered so each (budget, precision)
engine serves all its jobs; the precision group; what fits by the fit check's numbers."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from omegaconf import OmegaConf

from context_research.hardware import fit
from context_research.profiling.roofline import footprint
from context_research.serving import engine_cache
from tests.conftest import compose_config, typed, validate_on_this_host

PRECISIONS = {"bf16": (None, "auto"), "fp8_kv": (None, "fp8"), "fp8": ("fp8", "fp8")}


def points(preset: str) -> list[list[str]]:
    """Every job, as Hydra's basic sweeper orders them (the last axis fastest)."""
    params = compose_config([f"experiment={preset}"], return_hydra_config=True).hydra.sweeper.params
    axes = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
    return [[f"experiment={preset}", *point] for point in itertools.product(*axes)]


def engine_key(overrides: list[str]) -> str:
    """The engine cache's key for a job (app.build_engines: its serving and model configs)."""
    cfg = compose_config(overrides)
    serving, model = OmegaConf.to_object(cfg.serving), OmegaConf.to_object(cfg.model)
    return engine_cache.engine_key(dataclasses.asdict(serving), dataclasses.asdict(model), "aggregated")


@pytest.mark.parametrize("option", PRECISIONS)
def test_each_precision_sets_the_weights_and_the_kv_cache(option):
    for base in (["experiment=e7"], ["serving=vllm", "model.load_format=dummy", f"+precision={option}"]):
        overrides = [*base, f"precision={option}"] if base[0] == "experiment=e7" else base
        quantization, kv = PRECISIONS[option]
        assert typed(overrides, "model").quantization == quantization
        assert typed(overrides, "serving").kv_cache_dtype == kv
    chosen = compose_config(["experiment=e7", f"precision={option}"], return_hydra_config=True)
    assert chosen.hydra.runtime.choices.precision == option  # the report's choice.precision


@pytest.mark.parametrize("preset,concurrencies", [("e7", 3), ("e7_quick", 2)])
def test_each_engine_serves_its_prompts_and_concurrencies_in_a_row(preset, concurrencies):
    jobs = points(preset)
    per_engine = 4 * concurrencies
    assert len(jobs) == 3 * 3 * per_engine
    engines = [engine_key(job) for job in jobs[::per_engine]]  # each run of jobs starts one engine
    assert len(set(engines)) == 9
    for start in range(0, len(jobs), per_engine):  # and the prompts and concurrencies do not change it
        assert {engine_key(job) for job in (jobs[start], jobs[start + per_engine - 1])} == {engines[start // per_engine]}


def test_every_point_validates_with_the_one_engine_length():
    for job in points("e7")[11::12]:  # each engine's last job: 32K prompts, 16 in flight
        assert "prompt_len=32768" in job and "concurrency=16" in job
        validate_on_this_host(compose_config([*job, "hardware=h200"]))
        serving, benchmark = typed(job, "serving"), typed(job, "benchmark")
        assert serving.engine == "vllm" and typed(job, "model").load_format == "dummy"
        assert benchmark.arrival.process == "closed" and benchmark.arrival.warmup_requests == 16
        assert serving.max_model_len == 32896 and serving.extra_engine_args == {"max_model_len": -1}


def test_the_quick_run_is_one_round_of_16_tokens():
    for concurrency in (1, 4):
        job = ["experiment=e7_quick", f"concurrency={concurrency}", "prompt_len=32768"]
        benchmark, serving = typed(job, "benchmark"), typed(job, "serving")
        assert benchmark.workload.num_requests == concurrency and benchmark.arrival.warmup_requests == 0
        assert benchmark.workload.output_len.mean == 16 and serving.max_cudagraph_capture_size == 16
        assert serving.max_model_len == 32896 and serving.extra_engine_args == {"max_model_len": -1}
        assert compose_config(job).name == "e7_quick"  # the report gives it E7's table


def test_what_the_fit_check_predicts_for_e7s_engines():
    """0.9 x budget - weights - 1.52 GB, in blocks of 16 tokens: at 24 GB bf16 holds no 32K sequence
    (25,072 tokens), and each step of precision doubles the KV tokens or frees 6.9 GB of weights."""
    architecture = OmegaConf.to_container(compose_config(["model=qwen3_8b"]).model.architecture)
    capacity = {}
    for (option, (quantization, kv)), budget in itertools.product(PRECISIONS.items(), (24, 48, 80)):
        model = footprint(architecture, "bfloat16", None if kv == "auto" else kv, quantization)
        capacity[budget, option] = fit.vllm_kv_capacity_tokens(model, budget * 1e9, 0.9)
    assert capacity[24, "bf16"] == 25_072 < 32_896 <= capacity[24, "fp8_kv"] == 50_144
    assert capacity[24, "fp8"] == 144_352 and capacity[80, "fp8"] == 827_952
    assert all(capacity[b, "fp8_kv"] in (2 * capacity[b, "bf16"], 2 * capacity[b, "bf16"] + 16) for b in (24, 48, 80))
