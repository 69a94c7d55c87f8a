"""Run a command that ends with the harness: `python -m context_research.serving.servers.parent_watch
PID -- COMMAND...`.

Linux's PR_SET_PDEATHSIG makes the kernel send this process SIGTERM when the thread that started it
ends, even when the harness is killed outright (SIGKILL, the out-of-memory killer), which no handler
of the harness sees. The setting survives `exec`, so the command then replaces this process and keeps
it. PID is the harness's process id: if it is already gone when the setting takes effect, the
command is not run. Where prctl does not exist (not Linux) the command runs without the setting.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent thread ends (Linux only; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        sys.exit("usage: python -m context_research.serving.servers.parent_watch PID -- COMMAND [ARGS...]")
    parent, command = int(argv[0]), argv[2:]
    die_with_parent()
    if os.getppid() != parent:  # the harness ended before the setting took effect: nobody wants the server
        sys.exit(f"parent_watch: process {parent} is gone; not starting {command[0]}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
