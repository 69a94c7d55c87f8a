"""A sweep you can watch, through launch.py: a line per job as it starts (job k/N, elapsed, ETA, its
folder), from the launching process or joblib's workers; --dry-run lists the points and the very
folders the jobs get, running and creating nothing; -m ... --cfg job prints each point's config;
after a stop, the jobs that never started are listed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from context_research.cli.progress import SweepPlan, finished_job_seconds, progress_line, unstarted_jobs
from tests.conftest import REPO, manifests
from tests.test_resilience import interrupt_when

ENV = {"OMP_NUM_THREADS": "1"}
QUICK = ["output_len=2", "num_prompts=1"]
LINE = re.compile(r"^\[sweep\] job (\d+)/(\d+) · elapsed (\d+:\d\d:\d\d) · "
                  r"(ETA \d+:\d\d:\d\d|ETA after the first job) · (\S+)$", re.M)


def test_dry_run_lists_the_folders_the_sweep_then_uses(run_launch):
    dry, root = run_launch("-m", "prompt_len=16,17", *QUICK, "--dry-run", env=ENV)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert not (root / "sweep").exists() and not manifests(root)  # nothing created, nothing ran
    listed = re.findall(r"^  ([12])/2  (prompt_len=1[67])  ->  (\S+)$", dry.stdout, flags=re.M)
    assert [(n, point) for n, point, _ in listed] == [("1", "prompt_len=16"), ("2", "prompt_len=17")]
    assert dry.stdout.startswith(f"dry run: 2 jobs in {root}/sweep, nothing runs")

    real, _ = run_launch("-m", "prompt_len=16,17", *QUICK, env=ENV)
    assert real.returncode == 0, real.stderr[-3000:]
    assert [Path(m["_dir"]).name for m in manifests(root / "sweep")] == [folder for _, _, folder in listed]
    # the progress line of each job as it started: its number, the clock, and its folder
    lines = LINE.findall(real.stdout)
    assert [(k, n) for k, n, *_ in lines] == [("1", "2"), ("2", "2")]
    assert lines[0][3] == "ETA after the first job" and lines[1][3].startswith("ETA 0:")
    assert [Path(folder).name for *_, folder in lines] == [folder for _, _, folder in listed]


def test_dry_run_still_validates_every_point(run_launch):
    process, root = run_launch("-m", "prompt_len=16,0", "--dry-run", env=ENV)
    assert process.returncode == 2 and "error: prompt_len=0" in process.stderr
    assert not (root / "sweep").exists()


def test_a_single_run_dry_run_names_its_folder(run_launch):
    process, root = run_launch("--dry-run", env=ENV)
    assert process.returncode == 0
    assert process.stdout.splitlines() == ["dry run: 1 job, nothing runs", f"  {root}/run"]
    assert not (root / "run").exists()


def test_multirun_cfg_job_prints_each_point_without_a_traceback(run_launch):
    process, root = run_launch("-m", "prompt_len=16,17", "--cfg", "job", env=ENV)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "Traceback" not in process.stderr and not (root / "sweep").exists()
    documents = [d for d in yaml.safe_load_all(process.stdout)]
    assert [d["prompt_len"] for d in documents] == [16, 17] and "hydra" not in documents[0]
    assert re.findall(r"^# job (\d)/2: (\S+)$", process.stdout, flags=re.M) == [("1", "prompt_len=16"),
                                                                               ("2", "prompt_len=17")]
    package, _ = run_launch("-m", "prompt_len=16,17", "--cfg", "job", "--package", "model", env=ENV)
    assert [d["name"] for d in yaml.safe_load_all(package.stdout)] == ["tiny_qwen3", "tiny_qwen3"]


def test_joblib_workers_print_their_progress(run_launch):
    process, root = run_launch("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "prompt_len=16,17",
                               *QUICK, env=ENV)
    assert process.returncode == 0, process.stderr[-3000:]
    assert sorted((k, n) for k, n, *_ in LINE.findall(process.stdout)) == [("1", "2"), ("2", "2")]


def test_a_stopped_sweep_lists_the_jobs_that_never_started(tmp_path, model_cache):
    process = subprocess.Popen(
        [sys.executable, "launch.py", "-m", "prompt_len=16,17,18", "output_len=64", "num_prompts=4",
         f"hydra.sweep.dir={tmp_path}/sweep", f"paths.cache_dir={model_cache}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **ENV})
    output = interrupt_when(process, r"\[sweep\] job 2/3 ")  # SIGTERM as the second job starts
    assert process.returncode == 143, output[-3000:]
    header, *rest = output.split("never started: ")[1].splitlines()
    listed = [line.split() for line in rest if line.startswith("  ")]
    assert re.fullmatch(r"([12]) of 3 jobs", header) and len(listed) == int(header[0])
    # the third job never started (the second may have been stopped before its record was opened)
    assert listed[-1][0] == "prompt_len=18" and listed[-1][-1].endswith("2_num_prompts=4,output_len=64,prompt_len=18")


def test_eta_is_the_mean_job_time_times_the_jobs_left(tmp_path):
    plan = SweepPlan(sweep_dir=tmp_path, started=1000.0, parallel=1,
                     jobs=[(f"p={i}", tmp_path / f"{i}_p={i}") for i in range(5)])
    for i, (start, end) in enumerate(((1001, 1011), (1011, 1031))):  # two jobs done: 10 s and 20 s
        record(plan.jobs[i][1], start, end)
    record(tmp_path / "attempts_older", 500, 600)  # a job of an earlier sweep in the same folder does not count
    assert sorted(finished_job_seconds(tmp_path, plan.started)) == [10.0, 20.0]
    line = progress_line(plan, 2, plan.jobs[2][1], now=1031.0)
    assert line == f"[sweep] job 3/5 · elapsed 0:00:31 · ETA 0:00:45 · {plan.jobs[2][1]}"  # 15 s x 3 jobs left
    plan.parallel = 3
    assert "ETA 0:00:15" in progress_line(plan, 2, plan.jobs[2][1], now=1031.0)
    assert [label for label, _ in unstarted_jobs(plan)] == ["p=2", "p=3", "p=4"]


def record(folder: Path, started: float, ended: float) -> None:
    """A finished job's manifest with these start and end times (seconds since the epoch)."""
    import datetime
    import json

    def stamp(seconds: float) -> str:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()

    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"status": "completed", "started": stamp(started),
                                                      "ended": stamp(ended)}))
