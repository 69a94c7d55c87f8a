"""Resuming a sweep: which jobs are already done, and where an earlier attempt's files go.

A job whose directory holds a completed record with the same config hash is done; with
`resume=true` it is skipped. Any other earlier record in the directory (failed, interrupted,
`running` because its process was killed outright, or completed under another config or without
`resume`) is moved untouched into attempts/<its run_id>/ before the job runs again: a rerun never
overwrites a record and never deletes the evidence of an attempt. Hydra's .hydra/ (rewritten
for every attempt) and the job log (appended to by every attempt) stay where they are.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from context_research.records.run_record import ATTEMPTS, MANIFEST, config_hash

log = logging.getLogger(__name__)
KEPT_IN_PLACE = (".hydra", ATTEMPTS)


def earlier_manifest(job_dir: str | Path) -> dict[str, Any] | None:
    """The manifest already in `job_dir`, or None."""
    path = Path(job_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def is_done(manifest: dict[str, Any] | None, cfg: DictConfig) -> bool:
    """Whether `manifest` is a completed record of exactly this job config."""
    return bool(manifest) and manifest["status"] == "completed" and manifest["config_hash"] == config_hash(cfg)


def archive_attempt(job_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Move the earlier attempt's files (all but .hydra/, attempts/ and the job log) into
    attempts/<run_id>/, the manifest last, so an interrupted move is finished by the next one
    (the caller holds stop signals back meanwhile)."""
    job_dir = Path(job_dir)
    target = job_dir / ATTEMPTS / manifest["run_id"]
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(job_dir.iterdir(), key=lambda path: path.name == MANIFEST):
        if entry.name not in KEPT_IN_PLACE and entry.suffix != ".log":
            entry.rename(target / entry.name)
    log.info("earlier attempt (%s, %s) kept in %s", manifest["run_id"], manifest["status"], target)
    return target
