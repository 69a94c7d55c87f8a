"""Shared test helpers: compose configs in-process and run launch.py in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import context_research.config  # noqa: F401  (registers the schemas)

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def compose_config(overrides: list[str] | None = None, return_hydra_config: bool = False) -> DictConfig:
    """The job config `launch.py` would get for these overrides (no job is run)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []),
                       return_hydra_config=return_hydra_config)


def launch(args: list[str], timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python launch.py ARGS` from the repository root; returns the finished process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "launch.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache of materialised model configs for the whole session."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def run_launch(tmp_path, model_cache):
    """Run launch.py with its run and sweep directories under tmp_path.

    Returns (process, root): single runs land in root/run, multiruns in root/sweep.
    """
    def run(*args: str, timeout: float = 600, env: dict | None = None):
        process = launch([*args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep",
                          f"paths.cache_dir={model_cache}"], timeout=timeout, env=env)
        return process, tmp_path
    return run


def manifests(root: Path) -> list[dict]:
    """Every manifest.json under root, sorted by path."""
    return [json.loads(p.read_text()) | {"_dir": str(p.parent)} for p in sorted(root.glob("**/manifest.json"))]
