"""Length distributions and synthetic load requests: seeded, in range, shared prefix exact."""

from __future__ import annotations

import numpy as np
import pytest

from context_research.config.benchmark import LengthConfig, LoadWorkloadConfig
from context_research.config.errors import ConfigError
from context_research.workloads.lengths import sample_lengths
from context_research.workloads.synthetic import synthetic_requests


def draw(spec: LengthConfig, count: int = 2000, seed: int = 0) -> np.ndarray:
    return sample_lengths(spec, count, np.random.default_rng(seed))


def test_fixed_uniform_and_clipped_normal() -> None:
    assert set(draw(LengthConfig(mean=128)).tolist()) == {128}
    uniform = draw(LengthConfig(distribution="uniform", low=100, high=110))
    assert uniform.min() == 100 and uniform.max() == 110  # both ends included
    assert abs(uniform.mean() - 105) < 0.3
    normal = draw(LengthConfig(distribution="normal", mean=500, std=50, low=1, high=10_000))
    assert abs(normal.mean() - 500) < 5 and abs(normal.std() - 50) < 4
    clipped = draw(LengthConfig(distribution="normal", mean=500, std=200, low=400, high=600))
    assert clipped.min() == 400 and clipped.max() == 600
    assert (clipped == 400).mean() > 0.2  # the tails pile up on the bounds


def test_lengths_are_seeded() -> None:
    spec = LengthConfig(distribution="uniform", low=1, high=1000)
    assert np.array_equal(draw(spec, seed=4), draw(spec, seed=4))
    assert not np.array_equal(draw(spec, seed=4), draw(spec, seed=5))


@pytest.mark.parametrize("kwargs", [{"distribution": "zipf"}, {"distribution": "uniform", "low": 5},
                                    {"distribution": "uniform", "low": 5, "high": 4},
                                    {"distribution": "normal", "low": 1, "high": 9, "std": 0}])
def test_bad_length_specs_are_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        LengthConfig(**kwargs)


def test_synthetic_requests_share_exactly_the_prefix() -> None:
    workload = LoadWorkloadConfig(prompt_len=LengthConfig(distribution="uniform", low=40, high=60),
                                  output_len=LengthConfig(distribution="uniform", low=3, high=9),
                                  shared_prefix_len=16, num_requests=12, seed=3)
    made = synthetic_requests(workload, (10, 8000))
    again = synthetic_requests(workload, (10, 8000))
    assert [r.prompt_token_ids for r in made] == [r.prompt_token_ids for r in again]
    prefix = made[0].prompt_token_ids[:16]
    for request in made:
        assert 40 <= len(request.prompt_token_ids) <= 60 and 3 <= request.max_new_tokens <= 9
        assert request.prompt_token_ids[:16] == prefix
        assert all(10 <= t < 8000 for t in request.prompt_token_ids)
        assert request.ignore_eos
    # beyond the shared prefix the prompts differ at once
    assert len({r.prompt_token_ids[16] for r in made}) > 1
    assert len({len(r.prompt_token_ids) for r in made}) > 1


def test_shared_prefix_longer_than_the_shortest_prompt_is_rejected() -> None:
    with pytest.raises(ConfigError, match="shared_prefix_len"):
        LoadWorkloadConfig(prompt_len=LengthConfig(distribution="uniform", low=8, high=64), shared_prefix_len=9)
