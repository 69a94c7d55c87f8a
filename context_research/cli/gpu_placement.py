"""One GPU per job when a launcher runs several jobs side by side on one host.

The joblib launcher runs jobs in a pool of worker processes and submitit_local starts every job
at once; neither gives each job a GPU of its own (submitit_local shows every job the same ones).
Before a GPU job builds anything, `place_job` claims one of the GPUs its process may see and
narrows CUDA_VISIBLE_DEVICES to it. A claim is an exclusive `flock` on a lock file in one
directory per host, so concurrent sweeps on the host never share a GPU either; the kernel drops
the lock when the process ends, crashed or not, so no claim outlives its holder.

A joblib worker keeps its GPU for life (its CUDA context is bound to it), so when every GPU is
taken a joblib job fails at once rather than wait forever; `joblib_capacity_problem` catches
that before a sweep starts. A submitit_local job is a process of its own and waits for a GPU.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from context_research import devices

LOCK_DIR = Path(tempfile.gettempdir()) / "context-research-gpu-slots"
# launcher class (as named in hydra.launcher._target_) -> what a job does when every GPU is taken
SIDE_BY_SIDE_LAUNCHERS = {"JoblibLauncher": "fail", "submitit_launcher.LocalLauncher": "wait"}


class NoFreeGPU(RuntimeError):
    """A GPU job found no GPU it may use."""


class _Claim:
    """The GPU this process holds (device name and the locked file descriptor), if any."""

    device: str | None = None
    fd: int | None = None


def launcher_policy(launcher_target: str) -> str | None:
    """'fail' or 'wait' for launchers that run jobs side by side on one host, else None."""
    for name, policy in SIDE_BY_SIDE_LAUNCHERS.items():
        if launcher_target.endswith(name):
            return policy
    return None


def job_uses_gpu(serving: Mapping[str, Any], gpus_on_host: int) -> bool:
    """Whether a job with this `serving` config runs on a GPU. Engines without a `device` key
    (vLLM) always do; `auto` does when the host has one."""
    device = str(serving.get("device", "cuda"))
    return device.startswith("cuda") or (device == "auto" and gpus_on_host > 0)


def claim(devices: list[str], lock_dir: Path | None = None, wait: bool = False, poll_s: float = 2.0) -> str:
    """Lock the first free device of `devices` for the rest of this process's life; return it.

    With `wait`, poll until one comes free; otherwise raise NoFreeGPU at once.
    """
    if _Claim.device is not None:
        return _Claim.device
    lock_dir = lock_dir or LOCK_DIR
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock_dir.chmod(0o1777)  # shared by every user's sweeps on the host, like /tmp
    except PermissionError:
        pass
    while True:
        for device in devices:
            path = lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock"
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _Claim.device, _Claim.fd = device, fd
            return device
        if not wait:
            raise NoFreeGPU(f"every GPU this job may use ({','.join(devices)}) is held by another job on "
                            f"this host (locks in {lock_dir}); run fewer jobs side by side")
        time.sleep(poll_s)


def place_job(launcher_target: str, serving: Mapping[str, Any]) -> str | None:
    """Give this process one GPU of its own when its launcher runs jobs side by side and the job
    needs a GPU: claim it and narrow CUDA_VISIBLE_DEVICES to it. Returns the device, or None when
    placement does not apply. A process keeps the GPU it claimed for all its later jobs."""
    policy = launcher_policy(launcher_target)
    if policy is None:
        return None
    if _Claim.device is not None:
        return _Claim.device
    host = devices.host_gpus()
    if not job_uses_gpu(serving, len(host)):
        return None
    visible = devices.visible_entries(host=host)
    if not visible:
        raise NoFreeGPU("this job needs a GPU but CUDA_VISIBLE_DEVICES hides them all (submitit_local "
                        "does unless hydra.launcher.gpus_per_node is set: set it to the GPUs of this host; "
                        "for a CPU run set serving.device=cpu)")
    device = claim(visible, wait=policy == "wait")
    if "CUDA_VISIBLE_DEVICES" not in os.environ:  # `device` is an NVML index: PCI bus order
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    return device


def joblib_capacity_problem(n_jobs: int, sweep_jobs: int | None, serving: Mapping[str, Any]) -> str | None:
    """Why a joblib sweep of GPU jobs cannot give each job a GPU (None when it can): more workers
    than visible GPUs. `n_jobs` is joblib's (-1: one worker per CPU core)."""
    from joblib import effective_n_jobs

    host = devices.host_gpus()
    if not job_uses_gpu(serving, len(host)):
        return None
    gpus = len(devices.visible_entries(host=host))
    workers = effective_n_jobs(n_jobs)
    if sweep_jobs is not None:
        workers = min(workers, sweep_jobs)
    if workers <= gpus:
        return None
    return (f"at most {gpus}: up to {workers} jobs would run side by side and each GPU job needs a GPU "
            f"of its own ({gpus} visible)")
