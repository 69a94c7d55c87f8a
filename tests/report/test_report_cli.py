"""`python -m context_research.report`: the files it writes and numbers that match the requests."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.report.report_records import A_LENGTHS, B_LENGTHS

from context_research.cli.report import main
from context_research.report.tables import TABLES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report_dir(run_folders, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main([str(run_folders.a), str(run_folders.b), str(run_folders.failed), "--out", str(out)]) == 0
    return out


def test_runs_as_a_module():
    process = subprocess.run([sys.executable, "-m", "context_research.report", "--help"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert process.returncode == 0 and "--out" in process.stdout and "--table" in process.stdout


def test_writes_report_tables_and_plots(report_dir, capsys):
    for name in ("report.md", "report.html", "jobs.csv", "summary.csv", "sweep.json", "repeats.csv", "ab.csv"):
        assert (report_dir / name).is_file(), name
    for stem in ("latency_vs_prompt_len", "latency_ecdf", "ab_a_vs_b"):
        assert (report_dir / "plots" / f"{stem}.png").stat().st_size > 0
        assert (report_dir / "plots" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    html = (report_dir / "report.html").read_text()
    assert "<img src='plots/latency_vs_prompt_len.svg'" in html and "<table" in html


def test_jobs_csv_numbers_equal_a_hand_computation(report_dir):
    jobs = pd.read_csv(report_dir / "jobs.csv")
    completed = jobs[jobs["status"] == "completed"]
    assert len(completed) == 9
    for _, job in completed.iterrows():
        requests = pd.read_parquet(Path(job["job_dir"]) / "requests.parquet")
        good = requests[(requests["phase"] == "measure") & requests["ok"]]
        assert job["n_ok"] == len(good)
        for metric in ("ttft", "tpot", "e2e"):
            for p in (50, 95, 99):
                assert job[f"{metric}_p{p}_ms"] == pytest.approx(np.percentile(good[f"{metric}_ms"], p), rel=1e-12)
            assert job[f"{metric}_mean_ms"] == pytest.approx(good[f"{metric}_ms"].mean(), rel=1e-12)
        gaps = np.concatenate(good["itl_ms"].to_list())
        assert job["itl_p95_ms"] == pytest.approx(np.percentile(gaps, 95), rel=1e-12)
        duration = good["last_token_s"].max() - good["dispatch_s"].min()
        assert job["req_s"] == pytest.approx(len(good) / duration, rel=1e-12)
        assert job["out_tok_s"] == pytest.approx(good["completion_tokens"].sum() / duration, rel=1e-12)


def test_failed_job_is_reported_with_its_error(report_dir):
    jobs = pd.read_csv(report_dir / "jobs.csv")
    failed = jobs[jobs["status"] == "failed"]
    assert len(failed) == 1
    error = failed["error"].iloc[0]
    assert "no_such_activation" in error
    markdown = (report_dir / "report.md").read_text()
    section = markdown.split("## Jobs not completed")[1].split("## ")[0]
    assert "failed" in section and error in section
    summary = pd.read_csv(report_dir / "summary.csv")
    assert summary["status"].tolist().count("failed") == 1


def test_summary_csv_is_the_e1_table(report_dir):
    summary = pd.read_csv(report_dir / "summary.csv")
    assert list(summary.columns[:len(TABLES["e1"].columns)]) == list(TABLES["e1"].columns)
    assert sorted(set(summary["prompt_len"])) == sorted({64, *A_LENGTHS, *B_LENGTHS})


def test_sweep_json_sums_the_jobs(report_dir, run_folders):
    sweeps = {Path(s["sweep"]).name: s for s in json.loads((report_dir / "sweep.json").read_text())}
    assert set(sweeps) == {"a", "b", "failed"}
    jobs = pd.read_csv(report_dir / "jobs.csv")
    a = jobs[jobs["label"] == "a"]
    entry = sweeps["a"]
    assert entry["n_jobs"] == 4
    assert entry["engine_start_s"] == pytest.approx(a["engine_start_s"].sum())
    assert entry["measure_s"] == pytest.approx(a["measure_s"].sum())
    wall = (pd.to_datetime(a["ended"]).max() - pd.to_datetime(a["started"]).min()).total_seconds()
    assert entry["wall_s"] == pytest.approx(wall)
    assert entry["wall_over_start_plus_measure"] == pytest.approx(wall / (entry["engine_start_s"] + entry["measure_s"]))


def test_captions_carry_units_model_engine_gpu(report_dir):
    markdown = (report_dir / "report.md").read_text()
    captions = [line for line in markdown.splitlines() if line.startswith("![")]
    assert len(captions) >= 3
    for caption in captions:
        assert "model tiny_qwen3" in caption and "engine hf" in caption and "GPU CPU" in caption
        assert "(ms" in caption or "(s)" in caption  # its unit


def test_ab_section_reports_the_ttft_increase(report_dir):
    ab = pd.read_csv(report_dir / "ab.csv")
    ttft = ab[(ab["b"] == "b") & (ab["metric"] == "ttft_ms")]
    assert len(ttft) == 4 and ttft["significant"].all()


def test_single_folder_and_errors(run_folders, tmp_path, capsys):
    assert main([str(run_folders.failed), "--out", str(tmp_path / "one"), "--table", "e6"]) == 0
    sweep = json.loads((tmp_path / "one" / "sweep.json").read_text())
    assert sweep["n_jobs"] == 2 and sweep["n_completed"] == 1
    assert pd.read_csv(tmp_path / "one" / "summary.csv")["fits"].tolist() == [True, False]
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "none")]) == 2
    assert "no job directories" in capsys.readouterr().err
