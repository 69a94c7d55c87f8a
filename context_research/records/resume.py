"""Resuming a sweep: which jobs are already done, and where an earlier attempt's files go.

A job is done when its directory holds a whole completed record of the same config: the manifest
readable and `completed` with the same config hash, the summary readable by metrics/schema.py and
requests.parquet readable with the rows the summary counts (run_record.completed_record_problem).
With `resume=true` it is skipped. Any other earlier record in the directory (failed, interrupted,
`running` because its process was killed outright, damaged, or completed under another config or
without `resume`) is moved untouched into attempts/<its run_id>/ before the job runs again: a rerun
never overwrites a record and never deletes the evidence of an attempt. Hydra's .hydra/ (rewritten
for every attempt), the job log (appended to by every attempt) and the owner's lock stay where they
are. The caller owns the directory meanwhile (records/owner.py).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from context_research.records.owner import LOCK
from context_research.records.run_record import (ATTEMPTS, MANIFEST, RECORD_NAMES, RUN_ID, DamagedRecord,
                                                 completed_record_problem, config_hash, new_run_id, read_manifest)

log = logging.getLogger(__name__)
KEPT_IN_PLACE = (".hydra", ATTEMPTS, LOCK)


@dataclass
class EarlierAttempt:
    """What an earlier attempt left in a job directory: its manifest (None when it has none or it
    cannot be read) and, when its manifest cannot be read, why."""

    manifest: dict[str, Any] | None
    unreadable: str | None = None

    @cached_property
    def run_id(self) -> str:
        """The attempt's run id, or a new name where the manifest gives none a directory may take."""
        run_id = (self.manifest or {}).get("run_id")
        return run_id if isinstance(run_id, str) and RUN_ID.fullmatch(run_id) else f"unnamed-{new_run_id()}"


def earlier_attempt(job_dir: str | Path) -> EarlierAttempt | None:
    """The earlier attempt in `job_dir`, or None where it holds no record file (a manifest, a
    summary, requests, ...: an attempt whose manifest was deleted still counts)."""
    job_dir = Path(job_dir)
    if not any((job_dir / name).exists() for name in RECORD_NAMES):
        return None
    try:
        return EarlierAttempt(read_manifest(job_dir))
    except DamagedRecord as error:
        return EarlierAttempt(None, str(error))


def not_done_because(job_dir: str | Path, earlier: EarlierAttempt, cfg: DictConfig) -> str | None:
    """Why `earlier` is not a whole completed record of exactly this job config (None: it is)."""
    if earlier.manifest is None:
        return earlier.unreadable or f"no {MANIFEST}"
    status = earlier.manifest["status"]
    if status != "completed":
        return f"its record says {status}"
    if earlier.manifest.get("config_hash") != config_hash(cfg):
        return "it completed under another config"
    return completed_record_problem(job_dir)


def archive_attempt(job_dir: str | Path, earlier: EarlierAttempt) -> Path:
    """Move the earlier attempt's files (all but .hydra/, attempts/, the lock and the job log) into
    attempts/<run_id>/, the manifest last, so an interrupted move is finished by the next one
    (the caller holds stop signals back meanwhile)."""
    job_dir = Path(job_dir)
    target = job_dir / ATTEMPTS / earlier.run_id
    if (target / MANIFEST).exists():  # a run id used twice (a copied record): keep both
        target = target.with_name(f"{target.name}-{secrets.token_hex(4)}")
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(_attempt_files(job_dir), key=lambda path: path.name == MANIFEST):
        entry.rename(target / entry.name)
    status = earlier.manifest["status"] if earlier.manifest else earlier.unreadable
    log.info("earlier attempt (%s, %s) kept in %s", earlier.run_id, status, target)
    return target


def _attempt_files(job_dir: Path) -> list[Path]:
    return [entry for entry in job_dir.iterdir() if entry.name not in KEPT_IN_PLACE and entry.suffix != ".log"]
