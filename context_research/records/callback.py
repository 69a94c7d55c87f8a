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


def sweep_job_overrides(config: DictConfig) -> list[tuple[str, list[str]]] | None:
    """(label, overrides) of each job, expanded the way Hydra's basic sweeper expands them; the
    label names only the swept keys. None for other sweepers, which choose points as they go."""
    if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    swept = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    jobs = [list(job) for batch in batches for job in batch]
    return [(" ".join(o for o in job if o.split("=", 1)[0] in swept), job) for job in jobs]


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

        problems = validate_all((label, composer(job)) for label, job in jobs)
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
