"""Run a server that cannot outlive the harness: `python -m context_research.serving.servers.parent_watch
PID GRACE_S -- COMMAND...`, started as the leader of the server's own process group.

It runs COMMAND as its child (in the same process group) and exits with its exit code. Linux's
PR_SET_PDEATHSIG makes the kernel send this process SIGTERM when the thread that started it ends,
even when the harness is killed outright (SIGKILL, the out-of-memory killer), which no handler of
the harness sees. On that SIGTERM, with its parent PID gone, it stops the whole group: SIGTERM, then
SIGKILL once the server has exited or after GRACE_S. A SIGTERM while the harness lives comes from the
harness stopping the group itself (process.py), which then waits and escalates on its own: it is
let through.
Where prctl does not exist (not Linux) the server runs without the guard.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent thread ends (Linux only; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--" or not argv[0].isdigit():
        sys.exit("usage: python -m context_research.serving.servers.parent_watch PID GRACE_S -- COMMAND [ARGS...]")
    parent, grace_s, command = int(argv[0]), float(argv[1]), argv[3:]
    die_with_parent()
    if os.getppid() != parent:  # the harness ended before the guard took effect: nobody wants the server
        sys.exit(f"parent_watch: process {parent} is gone; not starting {command[0]}")
    child = subprocess.Popen(command)
    orphaned = threading.Event()

    def on_sigterm(signum, frame) -> None:
        if os.getppid() == parent or orphaned.is_set():  # the harness stops the group itself, or already done
            return
        orphaned.set()  # the harness is gone: SIGTERM to the group now, SIGKILL after the grace
        os.killpg(0, signal.SIGTERM)
        timer = threading.Timer(grace_s, os.killpg, (0, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_sigterm)
    code = child.wait()
    if orphaned.is_set():
        os.killpg(0, signal.SIGKILL)  # whatever the server left behind, this process included
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main(sys.argv[1:])
