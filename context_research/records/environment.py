"""What a manifest says about where a job ran: git state, package versions, hardware.

Reads package versions from installed metadata (importing nothing heavy), the GPU and driver
from NVML, CPU and RAM from the OS. Environment variables are recorded only from an allow-list;
one whose name suggests a secret is redacted whole, and in the others what looks like a secret is
redacted: the password of a URL (`http://user:<redacted>@host`), `name=value` pairs whose name
suggests a secret, and tokens in the published formats of Hugging Face, OpenAI, GitHub, GitLab,
Slack, AWS and JWTs.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("context-research", "torch", "transformers", "vllm", "hydra-core", "omegaconf", "numpy", "pandas",
            "pyarrow", "nvidia-ml-py", "datasets", "scipy")
ENV_PREFIXES = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "VLLM_", "NCCL_", "OMP_NUM_THREADS",
                "PYTORCH_CUDA_ALLOC_CONF", "TORCH_", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SLURM_JOB_ID")
SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
REDACTED = "<redacted>"
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)")
SECRET_PAIR = re.compile(r"(?P<head>[\w.-]*(?:token|key|secret|password|passwd|credential|auth)[\w.-]*=)[^\s,;&]+",
                         re.IGNORECASE)
SECRET_TOKEN = re.compile(r"\b(?:hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}"
                          r"|github_pat_\w{30,}|glpat-[\w-]{20,}|xox[abposr]-[\w-]{10,}|AKIA[0-9A-Z]{16}"
                          r"|eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,})")


def git_state(root: Path) -> dict[str, Any]:
    """Commit sha and whether the working tree has uncommitted changes (None outside git)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_inventory() -> dict[str, Any]:
    """GPUs, driver and CUDA driver version from NVML; `available: false` with the reason otherwise."""
    try:
        import pynvml

        pynvml.nvmlInit()
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append({"index": index, "name": name.decode() if isinstance(name, bytes) else name,
                         "memory_total_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)})
        driver = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        return {"available": True, "driver": driver.decode() if isinstance(driver, bytes) else driver,
                "cuda_driver": f"{cuda // 1000}.{(cuda % 1000) // 10}", "gpus": gpus}
    except Exception as error:
        return {"available": False, "reason": f"{type(error).__name__}: {error}"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_facts() -> dict[str, Any]:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = None
    return {"hostname": platform.node(), "platform": platform.platform(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "ram_bytes": ram, "python_executable": sys.executable}


def redacted(value: str) -> str:
    """`value` with whatever in it looks like a secret replaced by <redacted> (see the module doc)."""
    value = URL_PASSWORD.sub(lambda match: match["head"] + REDACTED, value)
    value = SECRET_PAIR.sub(lambda match: match["head"] + REDACTED, value)
    return SECRET_TOKEN.sub(REDACTED, value)


def redacted_strings(value: Any) -> Any:
    """`value` (a config: dicts, lists, scalars) with `redacted` applied to every string in it."""
    if isinstance(value, dict):
        return {k: redacted_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted_strings(v) for v in value]
    return redacted(value) if isinstance(value, str) else value


def recorded_environment() -> dict[str, str]:
    """Allow-listed environment variables, secrets redacted (see the module doc)."""
    chosen = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    return {k: (REDACTED if SECRET.search(k) else redacted(v)) for k, v in sorted(chosen.items())}
