"""Resume bookkeeping: what counts as done, where an earlier attempt goes, which directories
are jobs, and how an unfinished job's figures are set aside."""

from __future__ import annotations

import json

from context_research.records import resume
from context_research.records.run_record import RunRecord, record_dirs
from tests.conftest import REPO, compose_config


def make_record(job_dir, cfg, status: str) -> RunRecord:
    record = RunRecord.create(job_dir, cfg, [], REPO)
    (job_dir / ".hydra").mkdir(exist_ok=True)
    (job_dir / ".hydra" / "config.yaml").write_text("prompt_len: 16\n")
    (job_dir / "launch.log").write_text("log line\n")
    record.write_summary({"n_requests": 1})
    record.finish(status, error=None if status == "completed" else "boom")
    return record


def test_done_means_completed_with_the_same_config_hash(tmp_path):
    cfg = compose_config(["prompt_len=16"])
    completed = make_record(tmp_path / "a", cfg, "completed").manifest
    failed = make_record(tmp_path / "b", cfg, "failed").manifest
    assert resume.is_done(completed, cfg)
    assert resume.is_done(completed, compose_config(["prompt_len=16", "resume=true"]))  # resume is not hashed
    assert not resume.is_done(completed, compose_config(["prompt_len=17"]))
    assert not resume.is_done(failed, cfg)
    assert not resume.is_done(None, cfg)


def test_an_earlier_attempt_moves_to_attempts_untouched(tmp_path):
    job_dir = tmp_path / "3_prompt_len=16"
    earlier = make_record(job_dir, compose_config(["prompt_len=16"]), "failed").manifest
    (job_dir / "timeseries").mkdir()
    (job_dir / "timeseries" / "gpu.parquet").write_bytes(b"x")

    target = resume.archive_attempt(job_dir, earlier)

    assert target == job_dir / "attempts" / earlier["run_id"]
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "summary.json", "timeseries"]
    assert json.loads((target / "manifest.json").read_text()) == earlier
    # Hydra's own files and the job log (appended to by every attempt) stay in place
    assert sorted(p.name for p in job_dir.iterdir()) == [".hydra", "attempts", "launch.log"]
    assert resume.earlier_manifest(job_dir) is None


def test_record_dirs_skip_earlier_attempts(tmp_path):
    cfg = compose_config()
    for name in ("0_a", "1_b"):
        make_record(tmp_path / name, cfg, "completed")
    resume.archive_attempt(tmp_path / "1_b", resume.earlier_manifest(tmp_path / "1_b"))
    make_record(tmp_path / "1_b", cfg, "completed")
    assert record_dirs(tmp_path) == [tmp_path / "0_a", tmp_path / "1_b"]


def test_unfinished_figures_are_set_aside_under_partial_names(tmp_path):
    record = RunRecord.create(tmp_path, compose_config(), [], REPO)
    record.write_summary({"n_requests": 3})
    record.set_aside_partial()
    assert not (tmp_path / "summary.json").exists()
    assert json.loads((tmp_path / "summary.partial.json").read_text()) == {"n_requests": 3}
