"""One job's run record: manifest.json (status running -> completed | failed | interrupted),
requests.parquet, summary.json and timeseries/*.parquet, each written atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from context_research.records.atomic import write_json_atomic, write_parquet_atomic
from context_research.records.environment import (git_state, gpu_inventory, host_facts, package_versions,
                                                  recorded_environment)

MANIFEST = "manifest.json"
REQUESTS = "requests.parquet"
SUMMARY = "summary.json"
# what an interrupted or failed job finished before it stopped: evidence, never read as its figures
REQUESTS_PARTIAL = "requests.partial.parquet"
PARTIAL_NAMES = {REQUESTS: REQUESTS_PARTIAL, SUMMARY: "summary.partial.json"}
TIMESERIES = "timeseries"
# earlier attempts of a job, each in attempts/<its run_id>/ (see records/resume.py)
ATTEMPTS = "attempts"
STATUSES = ("running", "completed", "failed", "interrupted")
# keys that change how a sweep is run, not what a job computes
UNHASHED_KEYS = ("resume",)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """run-<UTC stamp>-<8 hex>: unique across parallel writers."""
    return f"run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def config_hash(cfg: DictConfig) -> str:
    """sha256 of the resolved job config (Hydra's own settings excluded)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in UNHASHED_KEYS:
        container.pop(key, None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(container)).encode()).hexdigest()


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
    def create(cls, job_dir: str | Path, cfg: DictConfig, overrides: list[str], repo_root: Path) -> "RunRecord":
        manifest = {
            "run_id": new_run_id(),
            "status": "running",
            "error": None,
            "name": cfg.get("name"),
            "started": utc_now(),
            "ended": None,
            "overrides": list(overrides),
            "seed": cfg.get("seed"),
            "config_hash": config_hash(cfg),
            "workload_hash": None,
            "engine_key": None,
            "git": git_state(repo_root),
            "versions": package_versions(),
            "gpu": gpu_inventory(),
            "host": host_facts(),
            "environment": recorded_environment(),
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
