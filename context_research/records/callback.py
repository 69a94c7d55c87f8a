"""Hydra callback for sweeps: every sweep point is validated before the first job starts, and
the multirun ends with a table of its jobs and a non-zero exit if any failed."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from context_research.config.errors import InvalidSweep
from context_research.config.validation import validate_all

log = logging.getLogger(__name__)


def sweep_job_overrides(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, expanded the way Hydra's basic sweeper expands them (None for
    other sweepers, which choose their points as they go)."""
    if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch]


class RunRecordCallback(Callback):
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
            raise InvalidSweep(problems)

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
