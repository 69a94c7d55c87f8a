"""One owner per job directory: a live owner's directory is refused with its name, the directory is
free once the owner ends however it ends, and a process the owner forked never keeps it."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys

import pytest

from context_research.records import owner
from tests.conftest import REPO

HOLD = """
import os, sys, time
from omegaconf import OmegaConf
from context_research.records import owner
from context_research.records.run_record import RunRecord
job_dir, repo, fork = sys.argv[1], sys.argv[2], sys.argv[3] == "fork"
held = owner.claim(job_dir)
RunRecord.create(job_dir, OmegaConf.create({"name": "t"}), [], repo)
child = os.fork() if fork else None
if child == 0:  # a forked child (like a vLLM engine core) that outlives the owner
    time.sleep(60)
    os._exit(0)
print(f"held {child}", flush=True)
if fork:
    os._exit(0)
time.sleep(60)
"""


def hold(job_dir, mode: str = "") -> tuple[subprocess.Popen, int | None]:
    """A process owning `job_dir` (with `fork`: it forks a child and ends); returns it and the child's pid."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(job_dir), str(REPO), mode], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    word, child = process.stdout.readline().split()
    assert word == "held"
    return process, None if child == "None" else int(child)


def test_a_live_owners_directory_is_refused_until_the_owner_is_killed(tmp_path):
    holder, _ = hold(tmp_path)
    try:
        with pytest.raises(owner.DirectoryInUse) as refused:
            owner.claim(tmp_path)
        run_id = json.loads((tmp_path / "manifest.json").read_text())["run_id"]
        assert str(refused.value).startswith(f"{tmp_path} belongs to a run still going (run {run_id}, pid "
                                             f"{holder.pid} on {platform.node()}, running since ")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    owner.claim(tmp_path).release()  # the kernel dropped the lock with the killed process


def test_a_child_the_owner_forked_does_not_keep_the_directory(tmp_path):
    holder, child = hold(tmp_path, "fork")
    holder.wait()
    try:
        os.kill(child, 0)  # the child lives on
        owner.claim(tmp_path).release()
    finally:
        os.kill(child, signal.SIGKILL)
