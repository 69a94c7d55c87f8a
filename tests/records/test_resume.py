"""Resume bookkeeping: what counts as done (a whole completed record of the same config), where an
earlier attempt goes (damaged or not), which directories are jobs, and how an unfinished job's
figures are set aside."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from context_research.records import resume
from context_research.records.run_record import RunRecord, record_dirs
from tests.conftest import REPO, compose_config

SUMMARY = {"schema_version": 1, "latency": {"n_requests": 2, "n_warmup": 1, "n_cooldown": 0}}


def make_record(job_dir, cfg, status: str) -> RunRecord:
    """A record as a job leaves it: Hydra's files, the log, requests (3 rows) and a summary counting them."""
    record = RunRecord.create(job_dir, cfg, [], REPO)
    (job_dir / ".hydra").mkdir(exist_ok=True)
    (job_dir / ".hydra" / "config.yaml").write_text("prompt_len: 16\n")
    (job_dir / "launch.log").write_text("log line\n")
    record.write_requests(pd.DataFrame({"request_id": ["w", "a", "b"]}))
    record.write_summary(SUMMARY)
    record.finish(status, error=None if status == "completed" else "boom")
    return record


def not_done(job_dir, cfg):
    return resume.not_done_because(job_dir, resume.earlier_attempt(job_dir), cfg)


def test_done_means_completed_with_the_same_config_hash(tmp_path):
    cfg = compose_config(["prompt_len=16"])
    make_record(tmp_path / "a", cfg, "completed")
    make_record(tmp_path / "b", cfg, "failed")
    assert not_done(tmp_path / "a", cfg) is None
    assert not_done(tmp_path / "a", compose_config(["prompt_len=16", "resume=true"])) is None  # resume is not hashed
    assert not_done(tmp_path / "a", compose_config(["prompt_len=17"])) == "it completed under another config"
    assert not_done(tmp_path / "b", cfg) == "its record says failed"
    assert resume.earlier_attempt(tmp_path / "c") is None


@pytest.mark.parametrize("damage, reason", [
    (lambda job: (job / "requests.parquet").unlink(), "requests.parquet: missing (the summary counts 3 requests)"),
    (lambda job: (job / "summary.json").unlink(), "summary.json: missing"),
    (lambda job: (job / "summary.json").write_text('{"schema_version": 1, "lat'), "summary.json: unreadable"),
    (lambda job: (job / "summary.json").write_text('{"schema_version": 1, "latency": [1]}'),
     "summary.json: not a summary"),
    (lambda job: (job / "requests.parquet").write_bytes((job / "requests.parquet").read_bytes()[:100]),
     "requests.parquet: unreadable"),
    (lambda job: pd.DataFrame({"request_id": ["a"]}).to_parquet(job / "requests.parquet"),
     "requests.parquet: 1 rows where the summary counts 3 requests"),
])
def test_a_completed_record_with_a_damaged_file_is_not_done(tmp_path, damage, reason):
    cfg = compose_config(["prompt_len=16"])
    job = tmp_path / "0_prompt_len=16"
    make_record(job, cfg, "completed")
    damage(job)
    assert reason in not_done(job, cfg)


def test_a_truncated_manifest_is_an_unreadable_attempt_archived_under_a_new_name(tmp_path):
    cfg = compose_config(["prompt_len=16"])
    job = tmp_path / "0_prompt_len=16"
    make_record(job, cfg, "completed")
    truncated = (job / "manifest.json").read_bytes()[:50]
    (job / "manifest.json").write_bytes(truncated)

    earlier = resume.earlier_attempt(job)
    assert earlier.manifest is None and "manifest.json: unreadable (JSONDecodeError" in earlier.unreadable
    assert not_done(job, cfg) == earlier.unreadable
    target = resume.archive_attempt(job, earlier)
    assert target.parent == job / "attempts" and target.name.startswith("unnamed-run-")
    assert (target / "manifest.json").read_bytes() == truncated  # kept as it was


def test_a_run_id_that_is_no_run_id_never_names_a_path(tmp_path):
    job = tmp_path / "sweep" / "0"
    make_record(job, compose_config(), "failed")
    manifest = json.loads((job / "manifest.json").read_text())
    (job / "manifest.json").write_text(json.dumps({**manifest, "run_id": "../../../escaped"}))
    target = resume.archive_attempt(job, resume.earlier_attempt(job))
    assert target.parent == job / "attempts" and not (tmp_path / "escaped").exists()


def test_an_earlier_attempt_moves_to_attempts_untouched(tmp_path):
    job_dir = tmp_path / "3_prompt_len=16"
    earlier = make_record(job_dir, compose_config(["prompt_len=16"]), "failed").manifest
    (job_dir / "timeseries").mkdir()
    (job_dir / "timeseries" / "gpu.parquet").write_bytes(b"x")
    (job_dir / ".owner.lock").touch()

    target = resume.archive_attempt(job_dir, resume.earlier_attempt(job_dir))

    assert target == job_dir / "attempts" / earlier["run_id"]
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "requests.parquet", "summary.json",
                                                       "timeseries"]
    assert json.loads((target / "manifest.json").read_text()) == earlier
    # Hydra's own files, the job log (appended to by every attempt) and the owner's lock stay in place
    assert sorted(p.name for p in job_dir.iterdir()) == [".hydra", ".owner.lock", "attempts", "launch.log"]
    assert resume.earlier_attempt(job_dir) is None


def test_record_dirs_skip_earlier_attempts(tmp_path):
    cfg = compose_config()
    for name in ("0_a", "1_b"):
        make_record(tmp_path / name, cfg, "completed")
    resume.archive_attempt(tmp_path / "1_b", resume.earlier_attempt(tmp_path / "1_b"))
    make_record(tmp_path / "1_b", cfg, "completed")
    assert record_dirs(tmp_path) == [tmp_path / "0_a", tmp_path / "1_b"]


def test_unfinished_figures_are_set_aside_under_partial_names(tmp_path):
    record = RunRecord.create(tmp_path, compose_config(), [], REPO)
    record.write_summary({"n_requests": 3})
    record.set_aside_partial()
    assert not (tmp_path / "summary.json").exists()
    assert json.loads((tmp_path / "summary.partial.json").read_text()) == {"n_requests": 3}
