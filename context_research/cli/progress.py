"""A sweep you can watch. As each job starts, one line:

    [sweep] job 3/18 · elapsed 0:02:13 · ETA 0:10:40 · multirun/e2/2026-01-01_10-00-00/2_concurrency=4

`elapsed` counts from the sweep's start; the ETA is the mean time of the sweep's jobs finished so far
(their manifests' start and end) x the jobs left, this one included, over the launcher's parallel
workers (joblib's n_jobs; one otherwise). After a stop, the jobs that never started are listed
beside the sweep's table (`print_unstarted`).

The plan is made in the launching process when the multirun starts and travels with Hydra's
callbacks to the processes that run the jobs (joblib workers get a copy), so every job can say
where it stands; the ETA reads the records, so it holds whichever process ran the earlier jobs.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from context_research.records.run_record import MANIFEST, record_dirs


@dataclass
class SweepPlan:
    """A multirun's jobs as the sweeper expands them: (label, job folder) each, in launch order;
    empty when the sweeper chooses its points as it goes (then only `job k` is known)."""

    sweep_dir: Path
    started: float  # time.time() when the multirun started
    parallel: int = 1
    jobs: list[tuple[str, Path]] = field(default_factory=list)
    problem: str | None = None  # why the jobs' folders could not be worked out (the sweep runs anyway)


class _Launched:
    """The plan of the multirun this process launched (for `print_unstarted` after a stop)."""

    plan: SweepPlan | None = None


def job_dir(config: DictConfig, index: int, overrides: list[str]) -> Path:
    """The folder Hydra gives job `index` with these overrides: the sweep dir and its subdir pattern
    (`hydra.sweep.subdir`) resolved with the job's number and override_dirname, as Hydra sets them."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = [o for o in OverridesParser.create().parse_overrides(overrides) if not o.is_hydra_override()]
    naming = config.hydra.job.config.override_dirname
    job = copy.deepcopy(config)  # keeps the resolved ${now:...} of the sweep dir (OmegaConf's resolver cache)
    with read_write(job.hydra), open_dict(job.hydra):
        job.hydra.job.num = index
        job.hydra.job.id = index
        job.hydra.job.override_dirname = get_overrides_dirname(
            overrides=parsed, exclude_keys=list(naming.exclude_keys), item_sep=naming.item_sep, kv_sep=naming.kv_sep)
    return Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(job, "hydra.sweep.subdir"))


def parallel_workers(config: DictConfig) -> int:
    """Jobs the launcher runs at once: joblib's n_jobs (-1: every core), else one."""
    launcher = config.hydra.launcher
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return 1
    n_jobs = int(launcher.get("n_jobs", 1) or 1)
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)


def plan_sweep(config: DictConfig, jobs: list[tuple[str, list[str]]] | None) -> SweepPlan:
    """The plan of a multirun that starts now (`jobs`: cli/sweep_callback.py sweep_job_overrides)."""
    plan = SweepPlan(sweep_dir=Path(str(config.hydra.sweep.dir)), started=time.time(),
                     parallel=parallel_workers(config))
    try:
        plan.jobs = [(label, job_dir(config, index, overrides)) for index, (label, overrides) in enumerate(jobs or [])]
    except Exception as error:  # progress lines are a convenience: a sweep never fails for them
        plan.problem = f"{type(error).__name__}: {error}"
    _Launched.plan = plan
    return plan


def clock(seconds: float) -> str:
    """0:02:13"""
    return str(datetime.timedelta(seconds=round(seconds)))


def finished_job_seconds(sweep_dir: Path, since: float) -> list[float]:
    """Run time of each job of the sweep that finished since `since` (time.time()), from its manifest."""
    seconds = []
    for folder in record_dirs(sweep_dir):
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("status") == "running" or not manifest.get("ended"):
            continue
        started, ended = (datetime.datetime.fromisoformat(manifest[k]).timestamp() for k in ("started", "ended"))
        if started >= since:
            seconds.append(ended - started)
    return seconds


def progress_line(plan: SweepPlan, number: int, folder: Path, now: float | None = None) -> str:
    """The line printed as job `number` (0-based, Hydra's hydra.job.num) starts in `folder`."""
    now = time.time() if now is None else now
    total = len(plan.jobs)
    parts = [f"job {number + 1}/{total}" if total else f"job {number + 1}", f"elapsed {clock(now - plan.started)}"]
    if total:
        done = finished_job_seconds(plan.sweep_dir, plan.started)
        left = total - number
        parts.append(f"ETA {clock(sum(done) / len(done) * left / plan.parallel)}" if done
                     else "ETA after the first job")
    return "[sweep] " + " · ".join(parts + [display_path(folder)])


def display_path(folder: Path) -> str:
    """The folder relative to the working directory when it lies below it."""
    try:
        return str(Path(folder).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def job_started(plan: SweepPlan | None, config: DictConfig) -> None:
    """Hydra's on_job_start: print the job's progress line (multirun jobs only)."""
    if plan is None or config.hydra.mode != RunMode.MULTIRUN:
        return
    print(progress_line(plan, int(config.hydra.job.num), Path(config.hydra.runtime.output_dir)), flush=True)


def unstarted_jobs(plan: SweepPlan | None) -> list[tuple[str, Path]]:
    """The planned jobs whose folder holds no record: they never started."""
    if plan is None:
        return []
    return [(label, folder) for label, folder in plan.jobs if not (folder / MANIFEST).is_file()]


def print_unstarted() -> None:
    """After a stop: one line per job of this process's multirun that never started."""
    never = unstarted_jobs(_Launched.plan)
    if never:
        print(f"never started: {len(never)} of {len(_Launched.plan.jobs)} jobs", flush=True)
        for label, folder in never:
            print(f"  {label or '(no swept keys)'}  {display_path(folder)}", flush=True)
