"""What a multirun checks before its first job: a bad sweep point or a launcher that cannot give
each GPU job a GPU stops it with one line and exit code 2, before any job directory exists."""

from __future__ import annotations

from conftest import manifests


def test_a_bad_sweep_point_stops_the_sweep_before_any_job(run_launch):
    process, root = run_launch("-m", "prompt_len=16,9999")
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1].startswith("error: prompt_len=9999")
    assert not (root / "sweep").exists()


def test_joblib_sweep_of_gpu_jobs_needs_a_gpu_per_worker(run_launch):
    process, root = run_launch("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "serving.device=cuda",
                               "prompt_len=16,17", env={"CUDA_VISIBLE_DEVICES": ""})
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1].startswith("error: hydra.launcher.n_jobs=2: at most 0:")
    assert not manifests(root)

