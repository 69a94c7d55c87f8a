"""Servers over HTTP end to end through launch.py: E0 and a two-point E1 on `transformers serve`
started by the harness on the embedded tiny model, each failure's documented outcome (a server that
does not start, a refused connection, a 500 and a cut stream from a real server), and no server
process left behind after a normal end, a failure or a SIGTERM of launch.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import transformers

from context_research.report.http_cost import http_cost_table
from context_research.report.loader import load_jobs
from tests.conftest import REPO, launch, manifests, read_summary
from tests.serving.scripted_server import MODEL, ScriptedServer, free_port

SERVER = "serving=transformers_server"


def group_gone(pgid: int, wait_s: float = 10.0) -> bool:
    """Whether no process of the group is left (waiting up to `wait_s` for its last ones to exit)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def server_of(manifest: dict) -> dict:
    return manifest["engines"]["aggregated"]


def test_e0_over_transformers_serve_needs_no_other_argument(run_launch):
    process, root = run_launch(SERVER, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    [manifest] = manifests(root / "run")
    job = Path(manifest["_dir"])
    assert manifest["status"] == "completed"
    engine = server_of(manifest)
    assert engine["engine"] == "transformers_server" and engine["server"] == "transformers serve"
    assert engine["server_version"] == transformers.__version__ and engine["api"] == "completions"
    assert engine["servers"][0]["models"][0]["id"] == engine["model"] == engine["model_dir"]
    log = Path(engine["server_log"])
    assert log == job / "transformers_server.log" and "Uvicorn running on" in log.read_text()
    summary = read_summary(job)
    assert summary["passed"] is True and summary["engine"] == "transformers_server"
    assert summary["checks"] == {"full_outputs": True, "reproducible": True}
    requests = pd.read_parquet(job / "requests.parquet")
    measured = requests[requests["phase"] == "measure"]
    assert len(measured) == 4 and measured["ok"].all() and (measured["completion_tokens"] == 16).all()
    assert (measured["prompt_tokens_sent"] == 64).all() and (measured["usage_completion_tokens"] == 16).all()
    assert (measured["ttft_ms"] > 0).all() and measured["tpot_ms"].notna().all()
    # transformers serve has no /metrics: the server figures are null, with the reason
    assert summary["server_metrics_available"] is False and "/metrics: HTTP 404" in summary["server_metrics_reason"]
    assert summary["loop_lag_p99_ms"] is not None and summary["client_limited"] in (True, False)
    assert (job / "timeseries" / "client.parquet").is_file()
    assert group_gone(engine["server_pgid"])  # a normal end stops the server


def test_a_two_point_e1_over_http_shares_one_server(run_launch, model_cache):
    process, root = run_launch("-m", "experiment=e1", SERVER, "prompt_len=32,64", "output_len=8", "repeats=2",
                               "benchmark.warmup=1", timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    jobs = manifests(root / "sweep")
    assert [m["status"] for m in jobs] == ["completed", "completed"]
    first, second = (server_of(m) for m in jobs)
    assert jobs[0]["engine_key"] == jobs[1]["engine_key"] and first["server_pgid"] == second["server_pgid"]
    # the log lies in the first job's folder; the second job's manifest says where
    assert first["server_log"] == second["server_log"] == str(Path(jobs[0]["_dir"]) / "transformers_server.log")
    summaries = [read_summary(m["_dir"]) for m in jobs]
    assert summaries[0]["engine_start_s"] > 0 and summaries[1]["engine_start_s"] == 0
    for summary, job, prompt_len in zip(summaries, jobs, (32, 64)):
        assert summary["passed"] is True and summary["n_requests"] == 2
        requests = pd.read_parquet(Path(job["_dir"]) / "requests.parquet")
        assert len(requests) == 3 and (requests["prompt_tokens_sent"] == prompt_len).all()  # warm-up + 2 measured
    assert group_gone(first["server_pgid"])  # stopped at the sweep's end
    # the same E1 in process: the report's HTTP-cost table pairs them by prompt length
    in_process = launch(["-m", "experiment=e1", "serving=hf", "prompt_len=32,64", "output_len=8", "repeats=2",
                         "benchmark.warmup=1", f"hydra.sweep.dir={root / 'in_process'}",
                         f"paths.cache_dir={model_cache}"], timeout=900)
    assert in_process.returncode == 0, in_process.stderr[-3000:]
    cost = http_cost_table(load_jobs([root / "in_process", root / "sweep"]))
    assert list(cost["prompt_len"]) == [32, 64] and set(cost["http"]) == {"transformers_server"}
    assert cost["same_prompts"].all() and cost["same_engine_args"].all()
    assert (cost["ttft_http_cost_ms"] == cost["ttft_p50_http_ms"] - cost["ttft_p50_in_process_ms"]).all()


def test_a_server_that_does_not_start_fails_the_job_with_one_line_and_its_log(run_launch, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    process, root = run_launch(SERVER, f"model.path={broken}", timeout=600)
    assert process.returncode == 1
    [line] = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert re.match(r"error: job failed: ServerFailed: serving=transformers_server \(transformers serve\) exited "
                    r"with code \d+ before it was healthy", line)
    [manifest] = manifests(root / "run")
    assert manifest["status"] == "failed"
    first, *tail = manifest["error"].splitlines()
    assert "log: " in first and tail[0].startswith("last ") and all(row.startswith("  | ") for row in tail[1:])
    started = re.search(r"started \(pid (\d+)\)", (Path(manifest["_dir"]) / "launch.log").read_text())
    assert group_gone(int(started.group(1)))


def test_a_refused_connection_fails_the_job_at_its_warm_up_in_one_line(run_launch):
    url = f"http://127.0.0.1:{free_port()}/v1"
    process, root = run_launch("serving=openai", f"serving.base_url={url}", "serving.model=m", timeout=300)
    assert process.returncode == 1
    assert f"the warm-up request to ['{url}'] failed: ClientConnectorError: Cannot connect to host" in process.stderr
    [manifest] = manifests(root / "run")
    assert manifest["status"] == "failed"


def test_http_errors_and_cut_streams_are_request_errors_never_crashes(run_launch):
    # requests in order: the engine's warm-up, the benchmark's warm-up, then the 4 measured ones
    script = {4: "500", 5: "drop"}
    with ScriptedServer(script=lambda index, body: script.get(index, "ok"), delay_s=0.001) as server:
        process, root = run_launch("serving=openai", f"serving.base_url={server.url}", f"serving.model={MODEL}",
                                   "serving.return_token_ids=true", "benchmark.check_reproducibility=false",
                                   timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    [manifest] = manifests(root / "run")
    assert manifest["status"] == "completed"
    engine = server_of(manifest)
    assert engine["servers"][0]["version"] == "scripted-1.0" and engine["kv_capacity_tokens"] == 64 * 16
    job = Path(manifest["_dir"])
    requests = pd.read_parquet(job / "requests.parquet").set_index("request_id")
    assert requests.loc["r0-p2", "error"] == "HTTP 500 Internal Server Error: scripted failure"
    assert requests.loc["r0-p3", "error"].startswith("the stream was cut (1 token chunks received)")
    assert requests.loc[["r0-p0", "r0-p1"], "ok"].all()
    assert (requests.loc[["r0-p0", "r0-p1"], "output_ids_source"] == "server").all()
    summary = read_summary(job)
    assert summary["n_errors"] == 2 and summary["n_ok"] == 2 and summary["passed"] is False
    # the server's own figures over the job (the benchmark's warm-up included, the engine's not):
    # 16 + 16 + 16 tokens, none for the 500, 1 before the cut
    assert summary["server_metrics_available"] is True and summary["server_generation_tokens"] == 49
    assert (job / "timeseries" / "server.parquet").is_file()


def test_sigterm_of_launch_stops_the_server(tmp_path, model_cache):
    process = subprocess.Popen(
        [sys.executable, "launch.py", SERVER, "num_prompts=40", "output_len=64",
         "benchmark.check_reproducibility=false", f"hydra.run.dir={tmp_path}/run", f"paths.cache_dir={model_cache}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    manifest_path = tmp_path / "run" / "manifest.json"
    deadline = time.monotonic() + 300
    engines = None
    while engines is None:  # the manifest names the server once the job has started it
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
        if manifest_path.is_file():
            engines = json.loads(manifest_path.read_text()).get("engines")
        time.sleep(0.2)
    pgid = engines["aggregated"]["server_pgid"]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-3000:]
    assert json.loads(manifest_path.read_text())["status"] == "interrupted"
    assert group_gone(pgid)
