"""The sweep callback (Hydra): a single run is validated before it starts, every sweep point before the
first job of a sweep starts (with the directory the records go to), and a multirun ends with a table
of its jobs and a non-zero exit if any failed.

The multirun hooks run in the launching process; the jobs may run elsewhere (joblib workers,
submitit processes, cluster nodes), so the end of a multirun reads their records from the sweep
directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from context_research.cli import dry_run, progress
from context_research.cli.errors import exit_with_errors, one_line
from context_research.config.errors import ConfigError
from context_research.config.validation import check_record_dir, validate
from context_research.records.run_record import DamagedRecord, read_manifest, record_dirs

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


def validate_all(configs: Iterable[tuple[str, Callable[[], DictConfig]]]) -> list[str]:
    """Validate several jobs; return one line per bad job (`label: error`)."""
    problems = []
    for label, compose in configs:
        try:
            validate(compose())
        except Exception as error:  # a ConfigError, or a composition error from Hydra for this point
            problems.append(f"{one_line(error)} (sweep point: {label})" if label else one_line(error))
    return problems


def prepare_joblib(config: DictConfig, sweep_jobs: int | None) -> None:
    """A joblib sweep of GPU jobs needs a GPU per worker (cli/gpu_placement.py), and a stop
    signal must reach the workers before joblib kills them (cli/interruption.py)."""
    launcher = config.hydra.launcher
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return
    from omegaconf import OmegaConf

    from context_research.cli.gpu_placement import joblib_capacity_problem
    from context_research.cli.interruption import pass_stop_signals_to_workers

    problem = joblib_capacity_problem(launcher.n_jobs, sweep_jobs, OmegaConf.to_container(config.serving))
    if problem:
        exit_with_errors([str(ConfigError("hydra.launcher.n_jobs", launcher.n_jobs, problem))])
    pass_stop_signals_to_workers(config.hydra.sweep.dir)


class _LaunchedSweep:
    """The sweep directory of the multirun this process launched (for `report_stopped_sweep`)."""

    dir: Path | None = None


class SweepCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exceptions into warnings: a bad run exits here instead
        try:
            validate(config)
            check_record_dir("hydra.run.dir", config.hydra.run.dir)
        except ConfigError as error:
            exit_with_errors([str(error)])
        dry_run.single_run(config)  # --dry-run: the run's folder, nothing runs

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_job_overrides(config)
        dry_run.show_configs(config, jobs)  # -m ... --cfg job: each point's config, nothing runs
        if jobs:
            from hydra.core.global_hydra import GlobalHydra

            loader = GlobalHydra.instance().config_loader()

            def composer(overrides: list[str]):
                return lambda: loader.load_sweep_config(config, overrides)

            problems = validate_all((label, composer(job)) for label, job in jobs)
            if problems:
                exit_with_errors(problems)
        try:
            check_record_dir("hydra.sweep.dir", config.hydra.sweep.dir)
        except ConfigError as error:
            exit_with_errors([str(error)])
        prepare_joblib(config, len(jobs) if jobs else None)
        if config.get("resume") and not record_dirs(config.hydra.sweep.dir):
            print(f"resume=true: {config.hydra.sweep.dir} holds no earlier jobs, so every job runs "
                  "(pass hydra.sweep.dir=<the sweep to resume>)", file=sys.stderr)
        _LaunchedSweep.dir = Path(config.hydra.sweep.dir)
        self.plan = progress.plan_sweep(config, jobs)  # travels to the jobs' processes with the callback
        dry_run.list_jobs(self.plan)  # --dry-run: the points and their folders, nothing runs

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        progress.job_started(getattr(self, "plan", None), config)  # job k/N, elapsed, ETA, its folder

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not report_sweep(config.hydra.sweep.dir):
            sys.exit(1)


def report_sweep(sweep_dir: str | Path) -> bool:
    """Print the table of a sweep's jobs, and one line on stderr listing those not completed
    with how to rerun them; True when every job completed."""
    sweep_dir = Path(sweep_dir)
    failed = []
    rows = []
    for job_dir in record_dirs(sweep_dir):
        try:
            manifest = read_manifest(job_dir)
        except DamagedRecord as error:
            manifest = {"status": "unreadable", "error": str(error)}
        job = job_dir.relative_to(sweep_dir).as_posix()
        rows.append(f"  {manifest['status']:<12} {job}")
        if manifest["status"] != "completed":
            failed.append(f"{job} ({manifest['status']}: {manifest.get('error')})")
    print(f"sweep {sweep_dir}: {len(rows)} jobs", *rows, sep="\n", flush=True)
    if failed:
        print(f"failed jobs: {'; '.join(failed)} (rerun them: the same command with resume=true "
              f"hydra.sweep.dir={sweep_dir})", file=sys.stderr, flush=True)
    return not failed


def report_stopped_sweep() -> None:
    """A sweep stopped by a signal never reaches on_multirun_end: report its jobs anyway."""
    if _LaunchedSweep.dir is not None:
        report_sweep(_LaunchedSweep.dir)
        progress.print_unstarted()
