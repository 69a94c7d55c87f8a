"""GPU placement for launchers that run jobs side by side: which jobs need a GPU, which GPUs a
process may use, and the lock-file claims that keep two processes off one GPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from context_research import devices
from context_research.cli import gpu_placement as placement
from tests.conftest import REPO


@pytest.mark.parametrize("target, policy", [
    ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "fail"),
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "wait"),
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", None),  # SLURM places jobs
    ("hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", None),  # so does Ray
    ("hydra._internal.core_plugins.basic_launcher.BasicLauncher", None),
])
def test_side_by_side_launchers_are_recognised_by_their_target(target, policy):
    assert placement.launcher_policy(target) == policy


@pytest.mark.parametrize("serving, gpus_on_host, expected", [
    ({"engine": "hf", "device": "cpu"}, 8, False),
    ({"engine": "hf", "device": "auto"}, 0, False),
    ({"engine": "hf", "device": "auto"}, 2, True),
    ({"engine": "hf", "device": "cuda:0"}, 0, True),
    ({"engine": "vllm"}, 8, True),  # no device key: a GPU engine
])
def test_job_uses_gpu(serving, gpus_on_host, expected):
    assert placement.job_uses_gpu(serving, gpus_on_host) is expected


def eight_gpu_host(monkeypatch):
    """NVML's answer on an 8-GPU host (this CPU machine has none)."""
    monkeypatch.setattr(devices, "host_gpus", lambda: [f"GPU-{index}" for index in range(8)])


def test_joblib_capacity_counts_workers_against_visible_gpus(monkeypatch):
    eight_gpu_host(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    gpu_job = {"engine": "hf", "device": "cuda"}
    assert placement.joblib_capacity_problem(2, 6, gpu_job) is None
    assert placement.joblib_capacity_problem(4, 2, gpu_job) is None  # only 2 jobs: 2 workers
    problem = placement.joblib_capacity_problem(3, 6, gpu_job)
    assert problem and problem.startswith("at most 2")
    assert placement.joblib_capacity_problem(8, 8, {"engine": "hf", "device": "cpu"}) is None


CLAIM = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from context_research.cli.gpu_placement import NoFreeGPU, claim
    try:
        print(claim(sys.argv[2].split(","), Path(sys.argv[1])), flush=True)
    except NoFreeGPU as error:
        print("none:", error, flush=True)
        sys.exit(0)
    sys.stdin.read()  # hold the GPU until the test closes stdin
""")


def claimer(lock_dir, devices: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(lock_dir), devices], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_each_process_claims_a_gpu_of_its_own_until_it_exits(tmp_path):
    first = claimer(tmp_path, "0,1")
    assert first.stdout.readline().strip() == "0"
    second = claimer(tmp_path, "0,1")
    assert second.stdout.readline().strip() == "1"
    third = claimer(tmp_path, "0,1")
    assert third.stdout.readline().startswith("none: every GPU this job may use (0,1) is held")
    third.wait(30)
    first.stdin.close()  # the first process ends: the kernel drops its lock
    first.wait(30)
    fourth = claimer(tmp_path, "0,1")
    assert fourth.stdout.readline().strip() == "0"
    for process in (second, fourth):
        process.stdin.close()
        process.wait(30)


PLACE = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from context_research import devices
    from context_research.cli import gpu_placement
    devices.host_gpus = lambda: [f"GPU-{index}" for index in range(8)]  # an 8-GPU host's NVML
    gpu_placement.LOCK_DIR = Path(sys.argv[1])
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    first = gpu_placement.place_job(joblib, {"engine": "hf", "device": "cuda"})
    again = gpu_placement.place_job(joblib, {"engine": "hf", "device": "cuda"})
    print(first, again, os.environ["CUDA_VISIBLE_DEVICES"])
""")


def test_a_joblib_gpu_job_is_narrowed_to_the_gpu_it_claims(tmp_path):
    placed = subprocess.run([sys.executable, "-c", PLACE, str(tmp_path)], cwd=REPO, text=True, capture_output=True,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": "4,5"}, timeout=60)
    assert placed.stdout.split() == ["4", "4", "4"], placed.stderr  # later jobs of the worker keep it


def test_placement_leaves_cpu_jobs_and_other_launchers_alone(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert placement.place_job(joblib, {"engine": "hf", "device": "cpu"}) is None
    assert placement.place_job("hydra._internal.core_plugins.basic_launcher.BasicLauncher", {"engine": "vllm"}) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_a_gpu_job_that_sees_no_gpu_says_how_to_show_it_one(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # what submitit_local sets without gpus_per_node
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    with pytest.raises(placement.NoFreeGPU, match="hydra.launcher.gpus_per_node"):
        placement.place_job(local, {"engine": "vllm"})
