"""What a multirun checks before its first job, beyond validating its points: GPU jobs need GPUs
this process sees, and a joblib sweep that cannot give each GPU job a GPU stops with one line and
exit code 2, before any job runs."""

from __future__ import annotations

import pytest

from context_research import devices
from context_research.cli.sweep_callback import prepare_joblib
from tests.conftest import compose_config, manifests


def test_a_sweep_of_gpu_jobs_that_sees_no_gpu_stops_before_any_job(run_launch):
    process, root = run_launch("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "serving.device=cuda",
                               "prompt_len=16,17", env={"CUDA_VISIBLE_DEVICES": ""})
    assert process.returncode == 2
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: serving.device='cuda': a GPU this process can see (0 visible, CUDA_VISIBLE_DEVICES=''); "
                      f"cpu or auto where there is none (sweep point: prompt_len={n})" for n in (16, 17)]
    assert not manifests(root)


def test_joblib_sweep_of_gpu_jobs_needs_a_gpu_per_worker(monkeypatch, capsys):
    monkeypatch.setattr(devices, "host_gpus", lambda: ["GPU-0"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = compose_config(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "serving.device=cuda"],
                            return_hydra_config=True)
    with pytest.raises(SystemExit) as stopped:
        prepare_joblib(config, sweep_jobs=2)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: hydra.launcher.n_jobs=2: at most 1: up to 2 jobs would run side by side and each GPU job needs "
        "a GPU of its own (1 visible)"]
