"""Resilience on CPU, through launch.py: a sweep survives a failing point and an interruption by
a real signal, a rerun with resume=true finishes it, and the joblib and submitit_local launchers
write valid records from several processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from tests.conftest import REPO, manifests, read_summary

# one thread per job process: the timing of the interrupted job stays steady on a busy machine
ENV = {"OMP_NUM_THREADS": "1"}
QUICK = "prompt_len: {prompt_len}\noutput_len: 4\nnum_prompts: 1\n"
# Hydra's basic sweeper takes the product of its axes, so to give one point of six its own failing
# setting and another its own long workload the sweep runs over one axis of whole presets, kept
# in the test's own config group (hydra.searchpath), as researchers keep their sweep points.
POINTS = {
    "p0": QUICK.format(prompt_len=16),
    "p1": QUICK.format(prompt_len=17),
    # passes validation and fails at engine start on any host: transformers knows no such activation
    "p2": QUICK.format(prompt_len=18) + "model:\n  architecture:\n    hidden_act: no_such_activation\n",
    "p3": QUICK.format(prompt_len=19),
    "p4": QUICK.format(prompt_len=20),
    # last, because an interruption stops the sweep: long enough to be interrupted mid-way
    "p5": "prompt_len: 21\noutput_len: 48\nnum_prompts: 6\n",
}
SWEEP = "+point=" + ",".join(POINTS)


def write_points(conf: Path, points: dict[str, str]) -> None:
    (conf / "point").mkdir(parents=True, exist_ok=True)
    for name, body in points.items():
        (conf / "point" / f"{name}.yaml").write_text(f"# @package _global_\n{body}")


def by_job(root: Path) -> dict[str, dict]:
    """Manifests of the sweep's jobs (earlier attempts excluded), keyed by point name."""
    return {next(o for o in m["overrides"] if o.startswith("+point="))[len("+point="):]: m
            for m in manifests(root / "sweep") if "attempts" not in Path(m["_dir"]).parts}


def interrupt_when(process: subprocess.Popen, pattern: str, timeout: float = 180) -> str:
    """Read the process's output until `pattern` appears, then send SIGTERM; return all output."""
    chunks: list[str] = []

    def read() -> None:
        for chunk in iter(lambda: os.read(process.stdout.fileno(), 65536), b""):
            chunks.append(chunk.decode(errors="replace"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not re.search(pattern, "".join(chunks)):
        assert process.poll() is None, "".join(chunks)[-3000:]
        assert time.monotonic() < deadline, "".join(chunks)[-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.wait(120)
    reader.join(30)
    return "".join(chunks)


def test_failure_interruption_and_resume(tmp_path, model_cache, run_launch):
    conf = tmp_path / "conf"
    write_points(conf, POINTS)
    common = [f"hydra.searchpath=['file://{conf}']", f"paths.cache_dir={model_cache}"]

    first = subprocess.Popen(
        [sys.executable, "launch.py", "-m", SWEEP, *common, f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **ENV})
    # SIGTERM once p5 (prompt_len 21) has finished at least one of its 6 measured requests
    output = interrupt_when(first, r"latency 21 tok: +\d+%\|[^|\r\n]*\| [1-5]/6 ")

    assert first.returncode == 143, output[-3000:]  # 128 + SIGTERM, as a shell reports it
    jobs = by_job(tmp_path)
    assert {name: m["status"] for name, m in jobs.items()} == {
        "p0": "completed", "p1": "completed", "p2": "failed", "p3": "completed", "p4": "completed",
        "p5": "interrupted"}
    assert jobs["p2"]["error"]  # the engine's own error, recorded
    assert jobs["p5"]["error"] == "interrupted by SIGTERM"
    # p3 and p4 ran after the failure with a fresh engine
    assert all((Path(jobs[p]["_dir"]) / "summary.json").exists() for p in ("p3", "p4"))
    # the interrupted job keeps what it finished, under a name no reader takes for its figures
    p5_dir = Path(jobs["p5"]["_dir"])
    assert not (p5_dir / "summary.json").exists() and not (p5_dir / "requests.parquet").exists()
    partial = pd.read_parquet(p5_dir / "requests.partial.parquet")
    assert 1 <= (partial["phase"] == "measure").sum() < 6
    # the stopped sweep still reports its jobs, with one line listing those not completed
    failed_line = next(line for line in output.splitlines() if line.startswith("failed jobs: "))
    assert re.search(r"2_\+point=p2\S* \(failed: ", failed_line)
    assert re.search(r"5_\+point=p5\S* \(interrupted: interrupted by SIGTERM\)", failed_line)
    assert "error: interrupted by SIGTERM" in output

    # Rerun with the failing preset corrected. p2's directory keeps its name (its override,
    # +point=p2, is unchanged) and resume reruns failed jobs whatever their config; the other
    # presets are untouched, so their config hashes match and the four completed jobs are skipped.
    write_points(conf, {"p2": QUICK.format(prompt_len=18)})
    second, _ = run_launch("-m", SWEEP, "resume=true", *common, env=ENV)

    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("skipped (resume)") == 4
    rerun = by_job(tmp_path)
    assert {m["status"] for m in rerun.values()} == {"completed"} and len(rerun) == 6
    assert {p for p in rerun if rerun[p]["run_id"] != jobs[p]["run_id"]} == {"p2", "p5"}
    # the failed and the interrupted attempts are kept, untouched, beside the new records
    for point, status in (("p2", "failed"), ("p5", "interrupted")):
        attempt = Path(rerun[point]["_dir"]) / "attempts" / jobs[point]["run_id"]
        assert json.loads((attempt / "manifest.json").read_text())["status"] == status
    assert (Path(rerun["p5"]["_dir"]) / "attempts" / jobs["p5"]["run_id"] / "requests.partial.parquet").exists()
    assert len(pd.read_parquet(Path(rerun["p5"]["_dir"]) / "requests.parquet").query("phase == 'measure'")) == 6


def assert_four_valid_records(process, root: Path) -> None:
    assert process.returncode == 0, process.stderr[-3000:]
    records = manifests(root / "sweep")
    assert len(records) == 4
    assert {m["status"] for m in records} == {"completed"}
    assert len({m["run_id"] for m in records}) == 4
    assert sorted(next(o for o in m["overrides"] if o.startswith("prompt_len=")) for m in records) == [
        f"prompt_len={n}" for n in (16, 17, 18, 19)]
    for manifest in records:
        job_dir = Path(manifest["_dir"])
        assert read_summary(job_dir)["passed"] is True
        assert len(pd.read_parquet(job_dir / "requests.parquet")) == 2  # warm-up + 1 measured
    assert "sweep " in process.stdout and ": 4 jobs" in process.stdout  # the end callback, in the parent


def test_joblib_runs_jobs_in_parallel_processes(run_launch):
    # resume=true on a new sweep dir: nothing to skip, every job runs, and the user is told why
    process, root = run_launch("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "prompt_len=16,17,18,19",
                               "output_len=4", "num_prompts=1", "resume=true", env=ENV)
    assert_four_valid_records(process, root)
    assert "holds no earlier jobs, so every job runs" in process.stderr


def test_submitit_local_runs_each_job_in_its_own_process(run_launch):
    process, root = run_launch("-m", "hydra/launcher=submitit_local", "prompt_len=16,17,18,19",
                               "output_len=4", "num_prompts=1", env=ENV)
    assert_four_valid_records(process, root)
    assert (root / "sweep" / ".submitit").is_dir()

