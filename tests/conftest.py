"""Shared test helpers: compose configs in-process and run launch.py in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import context_research.config  # noqa: F401  (registers the schemas)
from context_research.config import ConfigError, validate

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
HAS_VLLM = importlib.util.find_spec("vllm") is not None
HAS_NIXL = importlib.util.find_spec("nixl") is not None
# the host-library rules, last of validation's: (key, value) of their error -> the library is here
HOST_LIBRARY_ERRORS = {("serving", "vllm"): HAS_VLLM, ("serving", "vllm_server"): HAS_VLLM,
                       ("scheduler.transfer", "nixl"): HAS_NIXL}


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


def validate_on_this_host(cfg: DictConfig) -> dict | None:
    """`validate(cfg)`. Where vLLM (in process or `vllm serve`) or nixl is not installed a config that needs it must fail for
    that alone (those checks are the last rules, so every other rule passed): then None."""
    try:
        return validate(cfg)
    except ConfigError as error:
        if HOST_LIBRARY_ERRORS.get((error.key, error.value), True):
            raise
        assert "pip install" in str(error)
        return None


def typed(overrides: list[str], group: str):
    """One group's typed config (its schema's dataclass, or a dict of them for `collectors`), as
    `validate` builds it for the components, without the cross-field rules."""
    return OmegaConf.to_object(compose_config(overrides)[group])


def hf_engine(cache_dir, overrides: list[str] = ()):
    """An unstarted transformers engine on the CPU from the composed config (tiny_qwen3 by default)."""
    from context_research.serving.backends.hf import HFBackend

    overrides = ["serving.device=cpu", *overrides]
    return HFBackend(typed(overrides, "serving"), typed(overrides, "model"), str(cache_dir))


def aggregated(engine):
    """The aggregated scheduler bound to `engine`, as a job builds it."""
    from context_research.serving.schedulers.aggregated import AggregatedScheduler

    scheduler = AggregatedScheduler(typed([], "scheduler"))
    scheduler.bind({"aggregated": engine})
    return scheduler


def snapshot_figures(collector) -> dict:
    """A collector's summary sections as the flat metric names the report reads."""
    from context_research.metrics.schema import Summary

    return Summary().add(*collector.snapshot()).columns()


def outcome_figures(outcome) -> dict:
    """A benchmark outcome's sections as the flat metric names the report reads, with its checks."""
    from context_research.metrics.schema import Summary

    return {**Summary().add(*outcome.sections).columns(), "checks": dict(outcome.checks)}


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


def read_summary(job_dir: Path | str) -> dict:
    """A job's summary.json as the report reads it: one flat dict of metric names (metrics/schema.py)."""
    from context_research.metrics.schema import Summary

    return Summary.from_json(json.loads((Path(job_dir) / "summary.json").read_text())).columns()


def manifests(root: Path) -> list[dict]:
    """Every manifest.json under root, sorted by path."""
    return [json.loads(p.read_text()) | {"_dir": str(p.parent)} for p in sorted(root.glob("**/manifest.json"))]
