"""Loading run folders: one row per job, one row per request; nothing instantiated or unpickled."""

import pandas as pd
import pytest
import yaml
from tests.report.report_records import A_LENGTHS, E8_H200, SESSIONS_JOB, TRACE_JOB, job_config, write_record

from context_research.report.loader import load_jobs, load_requests


def test_one_row_per_job_with_config_axes_and_identity(run_folders):
    jobs = load_jobs([run_folders.a])
    assert len(jobs) == 4
    assert set(jobs["status"]) == {"completed"}
    assert sorted(jobs["prompt_len"]) == sorted(2 * list(A_LENGTHS))
    assert sorted(jobs["seed"]) == [0, 0, 1, 1]
    assert set(jobs["model"]) == {"tiny_qwen3"} and set(jobs["engine"]) == {"hf"} and set(jobs["gpu"]) == {"CPU"}
    assert set(jobs["choice.serving"]) == {"hf"}
    for overrides in jobs["override_map"]:  # Hydra's and the paths keys never identify a job
        assert set(overrides) == {"experiment", "prompt_len", "seed", "output_len", "repeats", "benchmark.warmup"}
    assert jobs["run_id"].str.match(r"run-\d{8}T\d+Z-[0-9a-f]{8}").all()


def test_axes_a_job_did_not_apply_are_not_its_figures():
    """A trace replay applies no concurrency and a data set's prompts no prompt_len or output_len: the
    config's top-level defaults (16, 64, 16) are not the job's figures, its load section's are."""
    jobs = load_jobs([E8_H200]).set_index("job")
    for job in (TRACE_JOB, SESSIONS_JOB):
        config = jobs.loc[job, "config"]
        assert (config["concurrency"], config["prompt_len"], config["output_len"]) == (16, 64, 16)
        assert pd.isna(jobs.loc[job, "prompt_len"]) and pd.isna(jobs.loc[job, "output_len"])
    assert pd.isna(jobs.loc[TRACE_JOB, "concurrency"]) and jobs.loc[TRACE_JOB, "time_scale"] == 1.0
    assert jobs.loc[SESSIONS_JOB, "concurrency"] == 16  # conversations at once: the sessions' load axis


def test_failed_job_is_kept_with_its_error(run_folders):
    jobs = load_jobs([run_folders.failed])
    assert sorted(jobs["status"]) == ["completed", "failed"]
    failed = jobs.set_index("status").loc["failed"]
    assert "no_such_activation" in failed["error"]
    assert failed["engine"] == "hf" and failed["model"] == "tiny_qwen3"  # from its config: it wrote no summary
    assert not failed["has_requests"]


def test_requests_one_row_per_measured_request(run_folders):
    jobs = load_jobs([run_folders.a])
    measured = load_requests(jobs)
    assert set(measured["phase"]) == {"measure"}
    assert measured.groupby("job").size().tolist() == jobs["n_requests"].astype(int).tolist()
    everything = load_requests(jobs, phase=None)
    assert len(everything) == len(measured) + int(jobs["n_warmup"].sum())
    assert set(load_requests(jobs, columns=["phase", "ttft_ms", "no_such_column"]).columns) == {
        "phase", "ttft_ms", "label", "job", "run_id", "job_dir"}


def test_job_without_manifest_shows_as_unrecorded(tmp_path):
    job = tmp_path / "sweep" / "0_prompt_len=64"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(job_config("e1", prompt_len=64)))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["prompt_len=64"]))
    jobs = load_jobs([tmp_path / "sweep"])
    assert jobs["status"].tolist() == ["unrecorded"]
    assert "manifest.json" in jobs["error"].iloc[0]
    assert jobs["override_map"].iloc[0] == {"prompt_len": "64"}


def test_targets_are_never_instantiated(tmp_path):
    config = job_config("e1", prompt_len=64)
    config["serving"]["_target_"] = "module_that_does_not_exist.Backend"
    write_record(tmp_path / "sweep" / "0", ["prompt_len=64"], {"name": "e1", "ttft_p50_ms": 1.0}, config)
    jobs = load_jobs([tmp_path / "sweep"])
    assert jobs["ttft_p50_ms"].tolist() == [1.0]


def test_python_tags_in_a_record_are_refused(tmp_path):
    marker = tmp_path / "executed"
    job = tmp_path / "sweep" / "0"
    write_record(job, [], None, job_config("e1"), status="failed", error="boom")
    (job / ".hydra" / "config.yaml").write_text(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    [row] = load_jobs([tmp_path / "sweep"]).to_dict("records")
    assert row["status"] == "unreadable" and "ConstructorError" in row["error"]  # a row, never a crash
    assert not marker.exists()


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_jobs([tmp_path / "nowhere"])


def test_nested_summary_fields_become_columns(tmp_path):
    write_record(tmp_path / "s" / "0", [], {"name": "e1", "checks": {"reproducible": True}, "gpu_mem_peak_gb": None},
                 job_config("e1"))
    jobs = load_jobs([tmp_path / "s"])
    assert jobs["checks.reproducible"].tolist() == [True]
    assert pd.isna(jobs["gpu_mem_peak_gb"].iloc[0])


def test_earlier_attempts_of_a_rerun_job_are_not_jobs(tmp_path):
    job = write_record(tmp_path / "sweep" / "0_prompt_len=64", ["prompt_len=64"], {"name": "e1"},
                       job_config("e1", prompt_len=64))
    write_record(job / "attempts" / "run-earlier", ["prompt_len=64"], None, job_config("e1", prompt_len=64),
                 status="interrupted", error="interrupted by SIGTERM")
    jobs = load_jobs([tmp_path / "sweep"])
    assert jobs["status"].tolist() == ["completed"]


def test_preset_arithmetic_is_resolved_and_runtime_only_values_stay_text(tmp_path):
    config = job_config("e3", prompt_len=64)
    config.update(concurrency=4, num_prompts="${cr.max:6,${cr.mul:3,${concurrency}}}", started="${now:%H}")
    write_record(tmp_path / "sweep" / "0", ["concurrency=4"], {"name": "e3", "ttft_p50_ms": 1.0}, config)
    jobs = load_jobs([tmp_path / "sweep"])
    assert jobs["num_prompts"].tolist() == [12]  # E3's num_prompts at concurrency 4
    assert jobs["prompt_len"].tolist() == [64]
