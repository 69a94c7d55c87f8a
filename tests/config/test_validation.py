"""Bad input: one line naming the key and what is allowed, exit code 2, nothing recorded as completed."""

from __future__ import annotations

import pytest

from tests.conftest import manifests

BAD_OVERRIDES = [
    (["prompt_len=0"], "prompt_len=0: an integer >= 1"),
    (["prompt_len=abc"], "prompt_len=abc"),
    (["output_len=-3"], "output_len=-3: an integer >= 1"),
    (["concurrency=0"], "concurrency=0: an integer >= 1"),
    (["num_prompts=0"], "num_prompts=0"),
    (["repeats=0"], "repeats=0"),
    (["seed=-1"], "seed=-1"),
    (["prompt_len=5000"], "must be <= model.max_model_len (4096)"),
    (["model=gpt5"], "model=gpt5: no such option; allowed: llama3_1_8b, mistral_7b_v0_3"),
    (["scheduler=round_robin"], "scheduler=round_robin: no such option; allowed: aggregated"),
    (["scheduler.name=fifo"], "scheduler.name='fifo': allowed: aggregated, disaggregated"),
    (["serving.device=tpu"], "serving.device='tpu': auto, cpu, cuda or cuda:N"),
    (["model.path=/no/such/dir"], "model.path='/no/such/dir': an existing local directory, or null"),
    (["model.dtype=int3"], "model.dtype='int3': allowed: bfloat16, float16, float32"),
    (["promt_len=5"], "promt_len"),
    (["serving=vllm"], "model.load_format='auto': dummy when model.path is null"),
    (["serving=vllm", "model.load_format=dummy", "serving.gpu_memory_utilization=1.5"],
     "serving.gpu_memory_utilization=1.5: a fraction in (0, 1]"),
    (["collectors.gpu.interval_s=0"], "collectors.gpu.interval_s=0.0: seconds from 0.001 to 60"),
    (["hardware=tpu"], "hardware=tpu: no such option; allowed: a100_80gb, a10g, auto, cpu, h100_sxm, h200"),
    (["hardware.memory_budget_gb=-1"], "hardware.memory_budget_gb=-1.0: a number > 0, or null"),
    (["hardware=h200", "hardware.compute_capability=9"],
     "hardware.compute_capability='9': null or \"major.minor\", e.g. \"8.9\""),
    (["model.quantization=int3"], "model.quantization='int3': null or one of fp8, bnb_4bit, bnb_8bit"),
    (["hardware=a100_80gb", "model.quantization=fp8"],
     "model.quantization='fp8': a GPU with FP8 tensor cores (compute capability >= 8.9: Ada, Hopper or newer)"),
]


@pytest.mark.parametrize("overrides,expected", BAD_OVERRIDES, ids=[" ".join(o) for o, _ in BAD_OVERRIDES])
def test_bad_override_is_one_clear_line(run_launch, overrides, expected):
    process, root = run_launch(*overrides, timeout=120)
    assert process.returncode == 2, process.stderr[-2000:]
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, process.stderr
    assert expected in errors[0]
    assert "Traceback" not in process.stderr
    assert not [m for m in manifests(root) if m["status"] == "completed"]


def test_a_bad_sweep_point_stops_the_sweep_before_any_job(run_launch):
    process, root = run_launch("-m", "prompt_len=32,5000", timeout=120)
    assert process.returncode == 2
    assert "prompt_len=5000" in process.stderr and "(sweep point: prompt_len=5000)" in process.stderr
    assert manifests(root) == []  # the valid point did not run either
