"""Hardware profiles: every option composes through Hydra and validates; the datasheet figures are
dense rates with a cited source; `auto` resolves from NVML's name without importing torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from context_research.config import ConfigError, validate
from context_research.config.hardware import HardwareConfig
from context_research.hardware import profiles
from context_research.hardware.profiles import GpuFacts, load_profile, resolve
from tests.conftest import CONF, REPO, compose_config

OPTIONS = sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))
GPU_OPTIONS = [o for o in OPTIONS if o not in ("auto", "cpu")]


def test_the_profiles_the_plan_names_are_all_there():
    assert OPTIONS == sorted(["h200", "h100_sxm", "a100_80gb", "l40s", "rtx4090", "rtx3090", "a10g", "l4", "cpu",
                              "auto"])


@pytest.mark.parametrize("option", OPTIONS)
def test_every_profile_composes_and_validates(option):
    typed = validate(compose_config([f"hardware={option}"]))
    hardware = typed["hardware"]
    assert isinstance(hardware, HardwareConfig)
    if option in GPU_OPTIONS:
        assert hardware == load_profile(option)  # a datasheet profile is used as configured
    else:  # auto and cpu become the device this test runs on: a GPU profile, or the host
        assert hardware.kind in ("gpu", "cpu") and hardware.memory_gb > 0


@pytest.mark.parametrize("option", GPU_OPTIONS)
def test_each_gpu_profile_cites_its_datasheet_and_gives_dense_rates(option):
    text = (CONF / "hardware" / f"{option}.yaml").read_text()
    assert "https://" in text  # the document the figures come from
    profile = load_profile(option)
    assert profile.memory_gb and profile.hbm_bytes_per_s and profile.compute_capability
    if profile.fp8_flops_per_s is not None:
        assert profile.has_fp8
        # FP8 tensor cores run twice the BF16 rate on Ada and Hopper; a sparse figure would be 2x the dense one
        assert profile.fp8_flops_per_s == pytest.approx(2 * profile.bf16_flops_per_s, rel=0.03)
    else:
        assert not profile.has_fp8


def test_dense_rates_are_half_the_datasheets_sparse_figures():
    # H200 datasheet: BF16 1,979 and FP8 3,958 TFLOPS "with sparsity"; L4: 242 and 485
    assert load_profile("h200").bf16_flops_per_s == 989.5e12 and load_profile("h200").fp8_flops_per_s == 1979e12
    assert load_profile("l4").bf16_flops_per_s == 121e12 and load_profile("l4").fp8_flops_per_s == 242.5e12
    assert load_profile("rtx3090").fp8_flops_per_s is None  # Ampere: no FP8 tensor cores
    assert load_profile("a10g").bf16_flops_per_s is None  # no published A10G tensor rate


def test_each_nvml_name_belongs_to_one_profile():
    names = [name for p in profiles.datasheet_profiles() for name in p.nvml_names]
    assert len(names) == len(set(names)) and len(names) >= len(GPU_OPTIONS)


@pytest.mark.parametrize("nvml_name,option", [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100_sxm"),
                                              ("NVIDIA A100-SXM4-80GB", "a100_80gb"), ("NVIDIA L40S", "l40s"),
                                              ("NVIDIA GeForce RTX 4090", "rtx4090"),
                                              ("NVIDIA GeForce RTX 3090", "rtx3090"), ("NVIDIA A10G", "a10g"),
                                              ("NVIDIA L4", "l4")])
def test_auto_resolves_a_known_gpu_to_its_datasheet_with_nvmls_memory(nvml_name, option):
    datasheet = load_profile(option)
    facts = GpuFacts(nvml_name, memory_bytes=25_757_220_864, compute_capability=datasheet.compute_capability)
    resolved = resolve(HardwareConfig(), gpu=facts)
    assert resolved == dataclasses.replace(datasheet, memory_gb=25.757220864)  # NVML's memory, in GB


def test_the_auto_option_is_the_schemas_defaults():
    from omegaconf import OmegaConf

    assert OmegaConf.to_object(compose_config(["hardware=auto"]).hardware) == HardwareConfig()


def test_an_unknown_gpu_gets_its_nvml_memory_and_no_ceilings():
    resolved = resolve(HardwareConfig(), gpu=GpuFacts("NVIDIA B200", 191_000_000_000, "10.0"))
    assert (resolved.name, resolved.kind, resolved.memory_gb, resolved.compute_capability) == \
        ("NVIDIA B200", "gpu", 191.0, "10.0")
    assert resolved.hbm_bytes_per_s is None and resolved.bf16_flops_per_s is None and resolved.fp8_flops_per_s is None
    assert resolved.has_fp8  # judged from NVML's compute capability


def test_auto_without_a_gpu_is_the_host(monkeypatch):
    monkeypatch.setattr(profiles, "nvml_gpu", lambda index=0: None)
    resolved = resolve(HardwareConfig())
    assert resolved.name == "cpu" and resolved.kind == "cpu"
    assert resolved.memory_gb == pytest.approx(profiles.host_memory_bytes() / 1e9)
    assert resolved.bf16_flops_per_s is None and not resolved.is_gpu


def test_values_set_on_auto_win_and_the_job_options_carry_over():
    chosen = HardwareConfig(memory_budget_gb=24.0, fit_check=False, calibrate=True, hbm_bytes_per_s=4.3e12)
    resolved = resolve(chosen, gpu=GpuFacts("NVIDIA H200", 150_754_820_096, "9.0"))
    assert resolved.name == "H200" and resolved.bf16_flops_per_s == 989.5e12
    assert resolved.hbm_bytes_per_s == 4.3e12  # the command line's, over the datasheet's 4.8e12
    assert (resolved.memory_budget_gb, resolved.fit_check, resolved.calibrate) == (24.0, False, True)


def test_a_budget_above_the_devices_memory_is_refused():
    with pytest.raises(ConfigError, match=r"memory_budget_gb=200.0: at most the device's memory_gb \(141\)"):
        validate(compose_config(["hardware=h200", "hardware.memory_budget_gb=200"]))
    with pytest.raises(ConfigError, match=r"memory_budget_gb=500.0: at most the device's memory_gb \(24\)"):
        resolve(HardwareConfig(memory_budget_gb=500.0), gpu=GpuFacts("NVIDIA L4", 24_000_000_000, "8.9"))
    with pytest.raises(ConfigError, match=r"^hardware.memory_budget_gb=5000.0: at most the device's memory_gb"):
        validate(compose_config(["hardware.memory_budget_gb=5000"]))  # auto: this machine's GPU or RAM


def test_resolving_auto_imports_nvml_but_not_torch():
    code = ("import sys; from context_research.config.hardware import HardwareConfig; "
            "from context_research.hardware.profiles import resolve; resolve(HardwareConfig()); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    process = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0 and process.stdout.strip() == "ok", process.stderr


def test_available_memory_reads_memavailable(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n")
    assert profiles.available_memory_bytes(meminfo) == 20_000_000 * 1024
    assert profiles.available_memory_bytes(tmp_path / "missing") > 0  # os.sysconf's free pages instead
