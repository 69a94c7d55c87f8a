"""Where the pools of a disaggregated run go, from the GPUs present."""

from __future__ import annotations

import pytest

from context_research.serving.schedulers.placement import Placement, resolve


@pytest.mark.parametrize("engine,gpus,expected", [
    ("hf", 2, Placement("cuda:0", "cuda:1", "device_copy")),
    ("vllm", 2, Placement("cuda:0", "cuda:1", "connector")),
    ("hf", 1, Placement("cuda:0", "cuda:0", "simulated")),
    ("vllm", 1, Placement("cuda:0", "cuda:0", "simulated")),
    ("hf", 0, Placement("cpu", "cpu", "process")),
])
def test_auto_placement_follows_the_gpu_count(engine, gpus, expected):
    assert resolve(engine, "auto", "auto", "auto", gpus=gpus) == expected


@pytest.mark.parametrize("gpus,expected,mode", [
    (2, Placement("cuda:0", "cuda:1", "nixl"), "nixl"),
    (1, Placement("cuda:0", "cuda:0", "nixl"), "nixl_same_gpu"),
])
def test_nixl_uses_a_second_gpu_where_there_is_one_else_shares_the_first(gpus, expected, mode):
    placement = resolve("vllm", "auto", "auto", "nixl", gpus=gpus)
    assert placement == expected and placement.mode == mode and not placement.simulated
    assert placement.same_device == (gpus == 1)
    with pytest.raises(RuntimeError, match="needs a GPU"):
        resolve("vllm", "auto", "auto", "nixl", gpus=0)


def test_explicit_choices_are_kept_and_impossible_ones_refused():
    assert resolve("hf", "cpu", "cpu", "simulated") == Placement("cpu", "cpu", "simulated")
    assert resolve("hf", "cuda:1", "auto", "device_copy", gpus=2) == Placement("cuda:1", "cuda:0", "device_copy")
    assert resolve("hf", "auto", "auto", "simulated", gpus=2).simulated
    with pytest.raises(RuntimeError, match="needs a GPU"):
        resolve("vllm", "auto", "auto", "auto", gpus=0)
    with pytest.raises(RuntimeError, match="shares one device"):
        resolve("hf", "cuda:0", "cuda:1", "simulated")
    with pytest.raises(RuntimeError, match="needs two GPUs"):
        resolve("vllm", "cuda:0", "cuda:0", "connector")
