"""Faults injected for real, each checked for its exit code, its one-line message and that every
earlier record is intact: a crafted job folder that asks the report for the reader's secrets, two
launches into one directory, stop signals during start-up and under joblib, a launch killed
outright, damaged records, a file system that fills up (a tmpfs mounted in a user namespace), and
bad names, paths and bounds."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from context_research.config import ConfigError, validate
from context_research.records.run_record import completed_record_problem, read_manifest, record_dirs
from context_research.report.loader import load_jobs, load_requests
from tests.conftest import REPO, compose_config, hf_engine, manifests, typed

ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
QUICK = ["output_len=4", "num_prompts=1"]
RECORD_FILES = ("manifest.json", "summary.json", "requests.parquet")
CAN_MOUNT = shutil.which("unshare") is not None and subprocess.run(
    ["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True).returncode == 0
needs_mount = pytest.mark.skipif(not CAN_MOUNT, reason="mounting a tmpfs in a user namespace is not allowed here")


def start(args: list[str], cache: Path, **popen) -> subprocess.Popen:
    """`python launch.py ARGS` started in the background from the repository root."""
    env = {**os.environ, **ENV}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, "launch.py", *args, f"paths.cache_dir={cache}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    out, err = process.communicate(timeout=timeout)
    return out, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def record_bytes(root: Path) -> dict[str, bytes]:
    """Every record file under `root` (earlier attempts included), by path: to check nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (p.name in RECORD_FILES or "timeseries" in p.parts)}


def wait_until(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def whole(manifest: dict) -> bool:
    return manifest["status"] == "completed" and completed_record_problem(manifest["_dir"]) is None


# 1. the report never evaluates a record ----------------------------------------------------------

def write_job(job_dir: Path, manifest: dict, config: dict | None = None, overrides: list[str] = ()) -> None:
    """A job folder as a record holds one, written by hand (as anyone could)."""
    (job_dir / ".hydra").mkdir(parents=True)
    if config is not None:
        (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (job_dir / "manifest.json").write_text(json.dumps(manifest))
    (job_dir / "summary.json").write_text(json.dumps({"name": "e1", "ttft_p50_ms": 1.0}))


def test_the_report_never_evaluates_a_record(tmp_path, monkeypatch, capsys):
    from context_research.cli.report import main

    token = "hf_" + "Sup3rS3cretReadersT0ken" * 2
    monkeypatch.setenv("HF_TOKEN", token)  # the reporting user's secret
    asks = "${oc.env:HF_TOKEN}"
    sweep = tmp_path / "sweep"
    base = {"name": "e1", "seed": 0, "prompt_len": 64, "model": {"name": "tiny_qwen3"}, "serving": {"engine": "hf"},
            "scheduler": {"name": "aggregated"}, "benchmark": {"name": "latency"}}
    manifest = {"status": "completed", "error": None, "name": "e1", "started": "2026-01-01T00:00:00.000+00:00",
                "ended": "2026-01-01T00:00:10.000+00:00", "overrides": [f"+note={asks}"]}
    # written before manifests held their config: the report reads .hydra/config.yaml
    legacy = {**base, "concurrency": 4, "num_prompts": "${cr.max:6,${cr.mul:3,${concurrency}}}", "asks": asks,
              "copy": "${asks}", "quoted": "${oc.decode:'" + asks + "'}", "hour": "${now:%H}",
              "nested": {"asks": asks}}
    write_job(sweep / "0_prompt_len=64", {**manifest, "run_id": "run-20260101T000000000000Z-00000000"}, legacy,
              manifest["overrides"])
    # today's records: the config as it ran, in the manifest, read as data (the crafted .hydra/ unread)
    write_job(sweep / "1_prompt_len=64", {**manifest, "run_id": "run-20260101T000000000000Z-00000001",
                                          "config": {**base, "asks": asks, "num_prompts": "${cr.mul:2,3}"}},
              {**base, "asks": asks}, manifest["overrides"])

    jobs = load_jobs([sweep]).set_index("job")
    assert jobs.loc["0_prompt_len=64", "num_prompts"] == 12  # the project's own arithmetic resolves
    # text stays text, also where another value refers to it
    assert jobs.loc["0_prompt_len=64", ["asks", "copy", "hour"]].tolist() == [asks, asks, "${now:%H}"]
    assert jobs.loc["0_prompt_len=64", "config"]["nested"] == {"asks": asks}
    assert jobs.loc["1_prompt_len=64", ["asks", "num_prompts"]].tolist() == [asks, "${cr.mul:2,3}"]

    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    for name in ("report.html", "report.md", "jobs.csv"):
        assert token not in (out / name).read_text(), name
    assert asks in (out / "jobs.csv").read_text()


# 2. one owner per job directory ----------------------------------------------------------------

def test_two_runs_into_one_output_dir_keep_a_record_each(tmp_path, model_cache):
    runs = [start([*QUICK, f"paths.output_dir={tmp_path}"], model_cache) for _ in range(2)]
    outputs = [finish(run) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    records = manifests(tmp_path)
    assert len({m["_dir"] for m in records}) == 2 and all(whole(m) for m in records)
    assert sorted(m["owner"]["pid"] for m in records) == sorted(run.pid for run in runs)


def test_a_sweep_started_again_into_its_directory_is_refused_while_the_first_runs(tmp_path, model_cache):
    sweep = tmp_path / "sweep"
    args = ["-m", "output_len=64,4", "num_prompts=12", "prompt_len=16", f"hydra.sweep.dir={sweep}"]
    first = start(args, model_cache)
    wait_until(lambda: len(manifests(sweep)) == 1, what="the first sweep's first job")
    [running] = manifests(sweep)
    second = start(args, model_cache)
    _, second_err = finish(second)
    first_out, first_err = finish(first)

    assert second.returncode == 2, second_err[-3000:]
    assert error_lines(second_err) == [
        f"error: {running['_dir']} belongs to a run still going (run {running['run_id']}, pid {first.pid} on "
        f"{platform.node()}, running since {running['started']}); wait for it to end, or write elsewhere "
        "(another hydra.run.dir or hydra.sweep.dir)"]
    assert first.returncode == 0, first_err[-3000:]
    records = manifests(sweep)
    assert len(records) == 2 and all(whole(m) for m in records)  # no earlier attempt: nothing was moved
    assert records[0]["run_id"] == running["run_id"] and {m["owner"]["pid"] for m in records} == {first.pid}


# 3. a stop always stops ----------------------------------------------------------------------------

def maps_library(pid: int, name: str) -> bool:
    try:
        return name in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return True  # the process ended: stop waiting


@pytest.mark.parametrize("delay_s", [0.0, 0.2, 0.5])
def test_sigterm_during_the_first_import_of_torch_stops_the_sweep(tmp_path, model_cache, delay_s):
    sweep = tmp_path / "sweep"
    process = start(["-m", "prompt_len=16,17", *QUICK, f"hydra.sweep.dir={sweep}"], model_cache)
    wait_until(lambda: maps_library(process.pid, "libtorch_cpu"), what="torch's import")  # its C library loading
    time.sleep(delay_s)
    process.send_signal(signal.SIGTERM)
    _, err = finish(process, timeout=120)

    assert process.returncode == 143, err[-3000:]  # 128 + SIGTERM; never a crash (-11: SIGSEGV)
    assert error_lines(err) == [
        "error: interrupted by SIGTERM; stopped, the job in progress is recorded as interrupted"]
    [record] = manifests(sweep)  # the second job never started
    assert (record["status"], record["error"]) == ("interrupted", "interrupted by SIGTERM")
    assert not {"summary.json", "requests.parquet"} & {p.name for p in Path(record["_dir"]).iterdir()}


def test_a_stopped_joblib_sweep_starts_no_further_job(tmp_path, model_cache):
    sweep = tmp_path / "sweep"
    process = start(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "prompt_len=16,17,18,19,20,21",
                     *QUICK, f"hydra.sweep.dir={sweep}"], model_cache)
    wait_until(lambda: len(manifests(sweep)) == 2, what="both workers' first jobs")
    process.send_signal(signal.SIGTERM)
    _, err = finish(process, timeout=120)

    assert process.returncode == 143, err[-3000:]
    records = manifests(sweep)
    assert [m["status"] for m in records] == ["interrupted", "interrupted"], records  # none began after the stop


def test_an_engine_that_fails_to_stop_is_logged_and_the_others_still_stop(model_cache, caplog):
    from context_research.serving import engine_cache
    from context_research.serving.backends.hf import HFBackend

    class StuckOnStop(HFBackend):
        def stop(self) -> None:
            super().stop()
            raise RuntimeError("the engine would not stop")

    stuck = StuckOnStop(typed(["serving.device=cpu"], "serving"), typed([], "model"), str(model_cache))
    healthy = hf_engine(model_cache)
    engine_cache.acquire({"stuck": lambda: stuck, "healthy": lambda: healthy})
    engine_cache.release_all()  # what a stopped or failed job runs: it must not raise in place of the stop
    assert healthy.model is None  # released although the engine before it would not stop
    assert "engine stuck did not stop cleanly" in caplog.text and "the engine would not stop" in caplog.text


def live_children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (zombies excluded)."""
    children = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, parent = stat[stat.rindex(")") + 2:].split()[:2]
        if int(parent) == pid and state != "Z":
            children.append(int(entry))
    return children


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def test_a_launch_killed_outright_leaves_no_decode_worker_behind(tmp_path, model_cache):
    run_dir = tmp_path / "run"
    process = start(["scheduler=disaggregated", "num_prompts=50", "output_len=32", f"hydra.run.dir={run_dir}"],
                    model_cache)

    def decode_workers() -> list[int]:
        return [pid for pid in live_children(process.pid)
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]

    wait_until(lambda: decode_workers() or process.poll() is not None, what="the decode worker")
    workers = decode_workers()
    assert workers, process.communicate()[1][-3000:]
    wait_until(lambda: json.loads((run_dir / "manifest.json").read_text()).get("engine_key"), what="both pools")
    process.kill()
    process.wait()
    try:
        wait_until(lambda: not any(alive(pid) for pid in workers), timeout=10, what="the worker to end")
    finally:
        for pid in filter(alive, workers):
            os.kill(pid, signal.SIGKILL)
    # what SIGKILL cannot give: the job could record nothing, so its manifest still says running
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"


# 4. damaged records --------------------------------------------------------------------------------

def test_damaged_records_are_reported_unreadable_and_rerun(tmp_path, model_cache, capsys):
    from context_research.cli.report import main

    sweep = tmp_path / "sweep"
    args = ["-m", "prompt_len=16,17,18", *QUICK, f"hydra.sweep.dir={sweep}"]
    first = start(args, model_cache)
    _, err = finish(first)
    assert first.returncode == 0, err[-3000:]
    jobs = [Path(m["_dir"]) for m in manifests(sweep)]
    # a deleted file, a truncated manifest (a missing summary, a truncated summary or requests, rows
    # that disagree: tests/records/test_resume.py), and one record left whole
    (jobs[0] / "requests.parquet").unlink()
    (jobs[1] / "manifest.json").write_bytes((jobs[1] / "manifest.json").read_bytes()[:60])
    before = {job.name: record_bytes(job) for job in jobs}

    table = load_jobs([sweep]).set_index("job")
    assert table["status"].tolist() == ["unreadable", "unreadable", "completed"]
    assert table["error"].iloc[0].endswith("requests.parquet: missing (the summary counts 2 requests)")
    assert "manifest.json: unreadable (JSONDecodeError" in table["error"].iloc[1]
    assert set(load_requests(table.reset_index())["job"]) == {jobs[2].name}  # completed jobs only
    assert main([str(sweep), "--out", str(tmp_path / "report")]) == 0

    second = start([*args, "resume=true"], model_cache)
    out, err = finish(second)
    assert second.returncode == 0, err[-3000:]
    assert out.count("skipped (resume)") == 1  # the whole one; the damaged ones ran again
    records = [{**read_manifest(job), "_dir": job} for job in record_dirs(sweep)]  # earlier attempts left out
    assert [Path(m["_dir"]) for m in records] == jobs and all(whole(m) for m in records)
    assert record_bytes(jobs[2]) == before[jobs[2].name]
    for job in jobs[:2]:  # each damaged attempt kept under attempts/, byte for byte
        [attempt] = (job / "attempts").iterdir()
        kept = {name.split("/", 2)[-1]: data for name, data in record_bytes(job).items()
                if name.startswith("attempts/")}
        assert kept == before[job.name], attempt


# disk full: a tmpfs in a user namespace, sized so that the job's last write, its completed manifest, does not fit
FILL_AT_FINISH = """
set -e
mount -t tmpfs -o size=8m tmpfs "$DISK"
python launch.py hydra.run.dir="$DISK/earlier" $ARGS > /dev/null 2>&1
used=$(python -c "import os; s = os.statvfs('$DISK'); print((s.f_blocks - s.f_bfree) * s.f_frsize)")
mount -o remount,size=$((2 * used + 4096)) tmpfs "$DISK"
set +e
python launch.py hydra.run.dir="$DISK/full" $ARGS 2> "$OUT/stderr" > /dev/null
echo $? > "$OUT/rc"
cp -a "$DISK/." "$OUT/disk"
"""


@needs_mount
def test_a_disk_that_fills_at_finish_leaves_no_figure_beside_a_running_manifest(tmp_path, model_cache):
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {**os.environ, **ENV, "DISK": str(disk), "OUT": str(out),
           "ARGS": f"paths.cache_dir={model_cache} num_prompts=2 output_len=4"}
    env.pop("HYDRA_FULL_ERROR", None)
    subprocess.run(["unshare", "-rm", "sh", "-c", FILL_AT_FINISH], cwd=REPO, env=env, check=True, timeout=300)

    stderr = (out / "stderr").read_text()
    assert (out / "rc").read_text().strip() == "1", stderr[-3000:]
    full = out / "disk" / "full"
    manifest = full / "manifest.json"
    [line] = error_lines(stderr)
    assert line.startswith(f"error: job full failed (OSError: [Errno 28] No space left on device: '{disk}/full/")
    assert line.endswith(f"and its record could not be written: {disk}/full/manifest.json: No space left on device")
    assert json.loads(manifest.read_text())["status"] == "running"  # the last manifest that fit
    names = {p.name for p in full.iterdir()}
    assert not {"summary.json", "requests.parquet"} & names  # never final names beside running
    assert {"summary.partial.json", "requests.partial.parquet"} <= names
    [earlier] = manifests(out / "disk" / "earlier")
    assert whole(earlier)


# 5. names, paths and bounds ----------------------------------------------------------------------

@pytest.mark.parametrize("overrides, line", [
    (["name=a/b"], "name='a/b': one folder name of 1 to 200 letters, digits, '_', '-' or '.' (not first)"),
    (["name="], "name='': one folder name"),
    (["name=.."], "name='..': one folder name"),
    (["+serving.bogus=1"], "serving.bogus=1: no such key in serving; its keys: engine, device, dtype"),
    (["+bogus=1"], "bogus=1: no such key in the job config"),
    (["repeats=100000000"], "repeats=100000000: an integer >= 1 and <= 1,000,000"),
    (["num_prompts=1000", "repeats=1001"], "benchmark.repeats=1001: num_prompts x repeats (1,001,000) must be <="),
    (["seed=99999999999999999999"], "seed=99999999999999999999: an integer >= 0 and <= 2**63 - 1"),
    (["serving.seed=-5"], "serving.seed=-5: an integer >= 0 and <= 2**63 - 1"),
    (["concurrency=1000000000"], "concurrency=1000000000: an integer >= 1 and <= 1,000,000"),
    (["benchmark=throughput", "benchmark.arrival.rate=inf"],
     "benchmark.arrival.rate=inf: requests per second > 0; not inf or nan"),
    (["benchmark=throughput", "benchmark.slo.ttft_ms=inf"],
     "benchmark.slo.ttft_ms=inf: milliseconds > 0, or null; not inf or nan"),
    (["benchmark=throughput", "benchmark.arrival.process=poisson", "benchmark.arrival.duration_s=nan"],
     "benchmark.arrival.duration_s=nan: seconds > 0"),
    (["model.path=conf"], "model.path='conf': a checkpoint directory holding config.json"),
])
def test_bad_names_and_bounds_are_one_line_before_anything_runs(overrides, line):
    with pytest.raises(ConfigError) as caught:
        validate(compose_config(overrides))
    assert str(caught.value).startswith(line)


def test_a_gpu_device_on_a_host_without_one_is_refused_up_front(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # on any host: this process sees no GPU
    disaggregated = ["scheduler=disaggregated", "scheduler.transfer=simulated", "scheduler.prefill_device=cpu",
                     "scheduler.decode_device=cuda:1"]
    for key, overrides in (("serving.device", ["serving.device=cuda"]), ("scheduler.decode_device", disaggregated)):
        with pytest.raises(ConfigError) as caught:
            validate(compose_config(overrides))
        assert caught.value.key == key and "(0 visible, CUDA_VISIBLE_DEVICES='')" in str(caught.value)


def test_a_name_that_climbs_out_writes_nothing_anywhere(tmp_path, model_cache):
    outputs = tmp_path / "a" / "b" / "outputs"
    process = start(["name=../../escape", f"paths.output_dir={outputs}"], model_cache)
    _, err = finish(process, timeout=120)
    assert process.returncode == 2
    assert error_lines(err) == ["error: name='../../escape': one folder name of 1 to 200 letters, digits, '_', "
                                "'-' or '.' (not first)"]
    assert not list(tmp_path.rglob("*.json")) and not (tmp_path / "a" / "escape").exists()


@needs_mount
def test_run_and_sweep_dirs_that_cannot_hold_records_are_one_line(tmp_path, model_cache):
    (tmp_path / "a_file").write_text("")
    env = {**os.environ, **ENV, "RO": str(tmp_path / "ro"), "CACHE": str(model_cache), "FILE": str(tmp_path / "a_file")}
    env.pop("HYDRA_FULL_ERROR", None)
    script = ('mkdir -p "$RO" && mount -t tmpfs -o ro tmpfs "$RO" && '
              'python launch.py -m prompt_len=16,17 hydra.sweep.dir="$RO/sweep" paths.cache_dir="$CACHE"; '
              'echo "rc=$?"; python launch.py paths.output_dir="$FILE" paths.cache_dir="$CACHE"; echo "rc=$?"')
    process = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
    assert process.stdout.splitlines()[-2:] == ["rc=2", "rc=2"], process.stderr[-3000:]
    read_only, a_file = error_lines(process.stderr)
    assert read_only == (f"error: hydra.sweep.dir='{tmp_path}/ro/sweep': cannot hold run records: {tmp_path}/ro is "
                         "on a read-only file system")
    assert a_file.startswith(f"error: hydra.run.dir='{tmp_path}/a_file/e0/")
    assert a_file.endswith(f"': cannot hold run records: {tmp_path}/a_file is a file, not a directory")
