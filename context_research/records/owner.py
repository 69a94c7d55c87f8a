"""One owner per job directory: the process running a job holds an exclusive lock on
`<job dir>/.owner.lock` from before it looks at an earlier record there until its own is written.

Two launches into one directory (the same sweep started twice, or two runs given the same
`hydra.run.dir`) would otherwise both write there, the second moving the first's live record into
attempts/. The second one is refused instead (`DirectoryInUse`, naming the owner from its manifest:
run id, pid and host); a directory whose owner has ended, however it ended, is free, since the
kernel drops the lock with the process.

The lock is a POSIX record lock (`fcntl.lockf`), not `flock`: processes the job forks (a vLLM
engine core) do not inherit it, so it never outlives the job's own process, and NFS supports it
between hosts. A process does not conflict with its own locks (one process runs one job at a
time), and closing any descriptor of the lock file drops its lock, so nothing else opens it. On a
file system that keeps no locks the job runs with a warning, unguarded.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from context_research.records.run_record import DamagedRecord, read_manifest

log = logging.getLogger(__name__)
LOCK = ".owner.lock"
# a file system that keeps no locks (NFS without its lock daemon, say): the job runs unguarded
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class DirectoryInUse(RuntimeError):
    """Another live process owns the job directory."""


class Ownership:
    """The lock on one job directory, held until `release` (or the end of a `with` block)."""

    def __init__(self, job_dir: Path, fd: int | None) -> None:
        self.job_dir, self._fd = job_dir, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __enter__(self) -> "Ownership":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(job_dir: str | Path) -> Ownership:
    """Take `job_dir` for this process, or raise DirectoryInUse naming its owner; OSError where the
    directory cannot be written."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(job_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in NO_LOCKS:
            log.warning("%s cannot be locked (%s): a second launch into it would not be refused", job_dir,
                        error.strerror)
            return Ownership(job_dir, None)
        if error.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        raise DirectoryInUse(f"{job_dir} belongs to a run still going ({describe_owner(job_dir)}); wait for it "
                             "to end, or write elsewhere (another hydra.run.dir or hydra.sweep.dir)") from None
    return Ownership(job_dir, fd)


def describe_owner(job_dir: Path) -> str:
    """The run holding `job_dir`, as its manifest names it."""
    try:
        manifest = read_manifest(job_dir)
    except DamagedRecord:
        manifest = None
    if not manifest:
        return "it is opening its record"
    owner = manifest.get("owner") or {}
    return (f"run {manifest.get('run_id')}, pid {owner.get('pid')} on {owner.get('host')}, "
            f"{manifest.get('status')} since {manifest.get('started')}")
