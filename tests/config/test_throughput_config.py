"""The throughput benchmark and E2 compose, validate, and expand to the sweep they promise."""

from __future__ import annotations

import pytest
from tests.conftest import compose_config

from context_research.cli.sweep_callback import sweep_job_overrides
from context_research.config import ConfigError, validate

E2_CONCURRENCY = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_throughput_benchmark_composes_and_validates() -> None:
    cfg = compose_config(["benchmark=throughput", "concurrency=8", "num_prompts=32", "prompt_len=100"])
    benchmark = validate(cfg)["benchmark"]
    assert benchmark.arrival.process == "closed" and benchmark.arrival.concurrency == 8
    assert benchmark.workload.num_requests == 32 and benchmark.workload.prompt_len.mean == 100


@pytest.mark.parametrize("override, key", [
    ("benchmark.arrival.process=burst", "benchmark.arrival.process"),
    ("benchmark.arrival.warmup_requests=4", "benchmark.arrival.warmup_requests"),
    ("benchmark.workload.prompt_len.distribution=normal", "benchmark.workload.prompt_len.low"),
    ("benchmark.slo.ttft_ms=0", "benchmark.slo.ttft_ms"),
    ("prompt_len=4090", "prompt_len"),  # 4090 + 16 > the tiny model's 4096 positions
])
def test_bad_throughput_values_are_one_line_errors(override: str, key: str) -> None:
    cfg = compose_config(["benchmark=throughput", "num_prompts=4", override])
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert str(error.value).startswith(key) and "\n" not in str(error.value)


def test_length_bound_uses_the_longest_length_a_distribution_gives() -> None:
    cfg = compose_config(["benchmark=throughput", "benchmark.workload.prompt_len.distribution=uniform",
                          "benchmark.workload.prompt_len.low=8", "benchmark.workload.prompt_len.high=4085"])
    with pytest.raises(ConfigError, match="must be <= model.max_model_len"):
        validate(cfg)


def test_e2_preset_is_the_whole_sweep_in_one_command() -> None:
    cfg = compose_config(["experiment=e2"], return_hydra_config=True)
    jobs = [job for _, job in sweep_job_overrides(cfg)]
    points = {(job[0], job[1]) for job in jobs}
    assert len(jobs) == 18
    assert points == {(f"prompt_len={p}", f"concurrency={c}") for p in (1024, 8192) for c in E2_CONCURRENCY}


def test_e2_command_line_narrows_the_preset_sweep() -> None:
    cfg = compose_config(["experiment=e2"], return_hydra_config=True)
    # what `launch.py -m experiment=e2 concurrency=1,4 prompt_len=16` hands the callback
    cfg.hydra.overrides.task = ["experiment=e2", "concurrency=1,4", "prompt_len=16"]
    jobs = [job for _, job in sweep_job_overrides(cfg)]
    assert [job[:2] for job in jobs] == [["prompt_len=16", "concurrency=1"], ["prompt_len=16", "concurrency=4"]]


@pytest.mark.parametrize("concurrency, requests", [(1, 16), (4, 16), (8, 16), (16, 32), (256, 512)])
def test_e2_sends_two_rounds_and_measures_the_middle(concurrency: int, requests: int) -> None:
    cfg = compose_config(["experiment=e2", f"concurrency={concurrency}", "model.max_model_len=4096",
                          "prompt_len=1024"])
    benchmark = validate(cfg)["benchmark"]
    assert benchmark.workload.num_requests == requests
    assert benchmark.arrival.warmup_requests == benchmark.arrival.cooldown_requests == concurrency // 2
    assert (benchmark.workload.output_len.mean, benchmark.slo.ttft_ms) == (256, 2000)


def test_an_invalid_point_of_the_preset_sweep_stops_it_before_any_job(run_launch) -> None:
    # the tiny model holds 4096 positions: E2's 8192-token point is invalid, 1024 is fine
    process, root = run_launch("-m", "experiment=e2", "concurrency=1")
    assert process.returncode == 2
    assert "error: prompt_len=8192: prompt_len + output_len (8448)" in process.stderr
    assert "prompt_len=1024" not in process.stderr
    assert not list(root.glob("sweep/**/manifest.json"))
