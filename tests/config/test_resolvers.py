"""The config resolvers: arithmetic for presets and job folder names that fit the file system."""

from __future__ import annotations

from omegaconf import OmegaConf

from context_research.config.resolvers import MAX_DIRNAME_CHARS, job_dirname, register_resolvers


def test_short_job_names_are_hydras_own() -> None:
    assert job_dirname(3, "prompt_len=1024,serving=vllm") == "3_prompt_len=1024,serving=vllm"


def test_long_job_names_are_cut_with_a_hash_that_keeps_them_distinct() -> None:
    overrides = ",".join(f"model.architecture.field_{i}={i}" for i in range(12))
    first = job_dirname(0, overrides + ",seed=0")
    second = job_dirname(0, overrides + ",seed=1")
    assert len(first) == len(second) == MAX_DIRNAME_CHARS
    assert first.startswith("0_model.architecture.field_0=0,") and first != second
    assert job_dirname(0, overrides + ",seed=0") == first  # the same overrides, the same folder


def test_arithmetic_resolvers_scale_presets_with_a_sweep_axis() -> None:
    register_resolvers()
    cfg = OmegaConf.create({"concurrency": 8, "num_prompts": "${cr.max:16,${cr.mul:3,${concurrency}}}",
                            "half": "${cr.floordiv:${concurrency},2}",
                            "dir": "${cr.job_dirname:4,${concurrency}}"})
    assert (cfg.num_prompts, cfg.half, cfg.dir) == (24, 4, "4_8")
