"""One job's run record: manifest.json (status running -> completed | failed | interrupted),
requests.parquet, summary.json and timeseries/*.parquet, each written atomically.

The manifest holds the job's config as resolved when it ran (`config`, secrets redacted as in
records/environment.py) and its config-group choices, so a reader never evaluates a record: it
reads them as data. It names its owner (host and pid),
the process holding the job directory (records/owner.py). The readers below say why a record
cannot be read or its files disagree (`DamagedRecord`), for resume and the report alike."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import secrets
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from context_research.metrics.schema import LatencySection, Summary
from context_research.records.atomic import write_json_atomic, write_parquet_atomic
from context_research.records.environment import (git_state, gpu_inventory, host_facts, package_versions,
                                                  recorded_environment, redacted_strings)

MANIFEST = "manifest.json"
REQUESTS = "requests.parquet"
SUMMARY = "summary.json"
# what an interrupted or failed job finished before it stopped: evidence, never read as its figures
REQUESTS_PARTIAL = "requests.partial.parquet"
PARTIAL_NAMES = {REQUESTS: REQUESTS_PARTIAL, SUMMARY: "summary.partial.json"}
TIMESERIES = "timeseries"
# the files a job writes: a directory holding any of them holds a record (or what is left of one)
RECORD_NAMES = (MANIFEST, REQUESTS, SUMMARY, *PARTIAL_NAMES.values(), TIMESERIES)
# earlier attempts of a job, each in attempts/<its run_id>/ (see records/resume.py)
ATTEMPTS = "attempts"
STATUSES = ("running", "completed", "failed", "interrupted")
# keys that change how a sweep is run, not what a job computes
UNHASHED_KEYS = ("resume",)
RUN_ID = re.compile(r"run-\d{8}T\d{12}Z-[0-9a-f]{8}")


class DamagedRecord(ValueError):
    """A record file that cannot be read, or files of one record that disagree; the message names
    the file and says why."""


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """run-<UTC stamp>-<8 hex>: unique across parallel writers."""
    return f"run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def config_hash(cfg: DictConfig | dict[str, Any]) -> str:
    """sha256 of the resolved job config (Hydra's own settings excluded); `cfg` may be the resolved
    container already."""
    container = dict(cfg) if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    for key in UNHASHED_KEYS:
        container.pop(key, None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(container)).encode()).hexdigest()


def read_manifest(job_dir: str | Path) -> dict[str, Any] | None:
    """The manifest in `job_dir` (None when there is none); DamagedRecord when it cannot be read."""
    path = Path(job_dir) / MANIFEST
    if not path.exists():
        return None
    manifest = _read_json(path)
    if not isinstance(manifest, dict) or manifest.get("status") not in STATUSES:
        raise DamagedRecord(f"{path}: not a run manifest (no status of {', '.join(STATUSES)})")
    return manifest


def read_summary(job_dir: str | Path) -> Summary | None:
    """The summary in `job_dir` as metrics/schema.py reads it (None when there is none)."""
    path = Path(job_dir) / SUMMARY
    if not path.exists():
        return None
    data = _read_json(path)
    try:
        summary = Summary.from_json(data)
        summary.columns()
    except Exception as error:  # any shape from_json cannot take: a summary only in name
        raise DamagedRecord(f"{path}: not a summary ({type(error).__name__}: {error})") from None
    return summary


def request_rows(job_dir: str | Path) -> int | None:
    """The row count of requests.parquet in `job_dir`, from its footer (None when there is none)."""
    path = Path(job_dir) / REQUESTS
    if not path.exists():
        return None
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException) as error:
        raise DamagedRecord(f"{path}: unreadable ({error})") from None


def completed_record_problem(job_dir: str | Path) -> str | None:
    """Why the record in `job_dir`, whose manifest says completed, is not whole (None: it is): its
    summary must be readable and its requests.parquet readable with the rows the summary counts
    (measured, warm-up and cool-down requests)."""
    try:
        summary = read_summary(job_dir)
        if summary is None:
            return f"{Path(job_dir) / SUMMARY}: missing"
        rows = request_rows(job_dir)
    except DamagedRecord as error:
        return str(error)
    latency = summary.get(LatencySection)
    counted = None if latency is None or latency.n_requests is None else sum(
        n or 0 for n in (latency.n_requests, latency.n_warmup, latency.n_cooldown))
    if counted and rows is None:
        return f"{Path(job_dir) / REQUESTS}: missing (the summary counts {counted} requests)"
    if counted is not None and rows is not None and rows != counted:
        return f"{Path(job_dir) / REQUESTS}: {rows} rows where the summary counts {counted} requests"
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as error:  # ValueError: truncated or not JSON, or not UTF-8
        raise DamagedRecord(f"{path}: unreadable ({type(error).__name__}: {error})") from None


def record_dirs(root: str | Path) -> list[Path]:
    """Job directories under `root` that hold a run record, sorted; earlier attempts excluded."""
    return sorted(path.parent for path in Path(root).glob(f"**/{MANIFEST}")
                  if ATTEMPTS not in path.relative_to(root).parts[:-1])


class RunRecord:
    """Writer for one job directory. The manifest is rewritten (atomically) at each change."""

    def __init__(self, job_dir: str | Path, manifest: dict[str, Any]) -> None:
        self.job_dir = Path(job_dir)
        self.manifest = manifest

    @classmethod
    def create(cls, job_dir: str | Path, cfg: DictConfig, overrides: list[str], repo_root: Path,
               choices: dict[str, Any] | None = None) -> "RunRecord":
        resolved = OmegaConf.to_container(cfg, resolve=True)
        manifest = {
            "run_id": new_run_id(),
            "status": "running",
            "error": None,
            "name": cfg.get("name"),
            "started": utc_now(),
            "ended": None,
            "overrides": list(overrides),
            "seed": cfg.get("seed"),
            "config_hash": config_hash(resolved),
            "workload_hash": None,
            "engine_key": None,
            "git": git_state(repo_root),
            "versions": package_versions(),
            "gpu": gpu_inventory(),
            "host": host_facts(),
            "environment": recorded_environment(),
            "owner": {"host": platform.node(), "pid": os.getpid()},
            "choices": dict(choices or {}),
            "config": redacted_strings(resolved),  # what looks like a secret in it redacted
        }
        record = cls(job_dir, manifest)
        record._write_manifest()
        return record

    def _write_manifest(self) -> None:
        write_json_atomic(self.job_dir / MANIFEST, self.manifest)

    def update(self, **fields: Any) -> None:
        self.manifest.update(fields)
        self._write_manifest()

    def finish(self, status: str, error: str | None = None) -> None:
        assert status in STATUSES[1:], status
        self.update(status=status, error=error, ended=utc_now())

    def set_aside_partial(self) -> None:
        """Rename figures already written by a job that then did not complete to their partial names."""
        for name, partial in PARTIAL_NAMES.items():
            if (self.job_dir / name).exists():
                os.replace(self.job_dir / name, self.job_dir / partial)

    def write_requests(self, frame, name: str = REQUESTS) -> None:
        write_parquet_atomic(self.job_dir / name, frame)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.job_dir / SUMMARY, summary)

    def write_timeseries(self, name: str, frame) -> None:
        write_parquet_atomic(self.job_dir / TIMESERIES / f"{name}.parquet", frame)
