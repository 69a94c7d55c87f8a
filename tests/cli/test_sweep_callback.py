"""What a multirun checks before its first job, beyond validating its points: a joblib sweep that
cannot give each GPU job a GPU stops with one line and exit code 2, before any job runs."""

from __future__ import annotations

from tests.conftest import manifests


def test_joblib_sweep_of_gpu_jobs_needs_a_gpu_per_worker(run_launch):
    process, root = run_launch("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "serving.device=cuda",
                               "prompt_len=16,17", env={"CUDA_VISIBLE_DEVICES": ""})
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1].startswith("error: hydra.launcher.n_jobs=2: at most 0:")
    assert not manifests(root)

