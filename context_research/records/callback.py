"""Hydra callback: a single run is validated before it starts, every sweep point before the
first job of a sweep starts, and a multirun ends with a table of its jobs and a non-zero exit if any failed."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from context_research.cli_errors import exit_with_errors
from context_research.config.errors import ConfigError
from context_research.config.validation import validate, validate_all

log = logging.getLogger(__name__)


def sweep_job_overrides(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, expanded the way Hydra's basic sweeper expands them (None for
    other sweepers, which choose their points as they go)."""
    if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch]


class RunRecordCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exceptions into warnings: a bad run exits here instead
        try:
            validate(config)
        except ConfigError as error:
            exit_with_errors([str(error)])

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_job_overrides(config)
        if not jobs:
            return
        from hydra.core.global_hydra import GlobalHydra

        loader = GlobalHydra.instance().config_loader()

        def composer(overrides: list[str]):
            return lambda: loader.load_sweep_config(config, overrides)

        problems = validate_all((" ".join(job), composer(job)) for job in jobs)
        if problems:
            exit_with_errors(problems)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = []
        rows = []
        for manifest_path in sorted(sweep_dir.glob("**/manifest.json")):
            manifest = json.loads(manifest_path.read_text())
            job = manifest_path.parent.relative_to(sweep_dir).as_posix()
            rows.append(f"  {manifest['status']:<12} {job}")
            if manifest["status"] != "completed":
                failed.append(f"{job} ({manifest['status']}: {manifest.get('error')})")
        print(f"sweep {sweep_dir}: {len(rows)} jobs", *rows, sep="\n")
        if failed:
            print(f"failed jobs: {'; '.join(failed)}", file=sys.stderr)
            sys.exit(1)
