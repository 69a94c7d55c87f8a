"""What a command would run, without running it:

    python launch.py -m experiment=e2 --dry-run     # every sweep point and its job folder, validated
    python launch.py --dry-run                      # the single run's folder
    python launch.py -m experiment=e2 --cfg job     # each sweep point's composed config (Hydra refuses
                                                    # --cfg with -m; --resolve and --package apply)

launch.py takes these flags off the command line before Hydra parses it (`take_flags`); the sweep
callback acts on them once Hydra has composed the config: `--cfg` before the points are validated
(to look at a config is to debug it), `--dry-run` after, so a dry run also says whether every point
would start. Either exits 0 with nothing created: Hydra makes the job folders only when jobs run.
Hydra turns a callback's exceptions into warnings and goes on to run the jobs, so these functions
end the process on any failure (`ends_the_process`): a dry run never falls through into a real one.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import Callable

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from context_research.cli.errors import exit_with_errors, one_line
from context_research.cli.progress import SweepPlan, display_path

MULTIRUN_FLAGS = ("-m", "--multirun")
CONFIG_FLAGS = ("-c", "--cfg")
PACKAGE_FLAGS = ("-p", "--package")
CONFIG_TYPES = ("job", "hydra", "all")


@dataclass
class Request:
    """The flags launch.py took off the command line."""

    dry_run: bool = False
    show_config: str | None = None  # job | hydra | all (with -m)
    resolve: bool = False
    package: str | None = None


class _Requested:
    request = Request()


def flag_value(argv: list[str], i: int, names: tuple[str, ...]) -> tuple[str | None, int]:
    """(value, arguments used) of the flag at argv[i] (`--cfg job`, `--cfg=job`, `-cjob`), or (None, 0)."""
    argument = argv[i]
    for name in names:
        if argument == name:
            return (argv[i + 1] if i + 1 < len(argv) else ""), 2
        if argument.startswith(f"{name}="):
            return argument.split("=", 1)[1], 1
        if len(name) == 2 and argument.startswith(name) and len(argument) > 2 and not argument.startswith("--"):
            return argument[2:], 1
    return None, 0


def take_flags(argv: list[str]) -> list[str]:
    """argv for Hydra, without `--dry-run` and, in a multirun, without `--cfg`, `--resolve` and
    `--package` (remembered for the sweep callback)."""
    request = Request()
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    kept, i = [], 0
    while i < len(argv):
        if argv[i] == "--dry-run":
            request.dry_run, i = True, i + 1
            continue
        if multirun:
            show, used = flag_value(argv, i, CONFIG_FLAGS)
            package, used_package = flag_value(argv, i, PACKAGE_FLAGS)
            if used:
                if show not in CONFIG_TYPES:
                    print(f"error: --cfg {show}: allowed: {', '.join(CONFIG_TYPES)}", file=sys.stderr)
                    sys.exit(2)
                request.show_config, i = show, i + used
                continue
            if used_package:
                request.package, i = package, i + used_package
                continue
            if argv[i] == "--resolve":
                request.resolve, i = True, i + 1
                continue
        kept.append(argv[i])
        i += 1
    _Requested.request = request
    return kept


def requested() -> Request:
    return _Requested.request


def ends_the_process(function: Callable) -> Callable:
    """When a dry run or --cfg is requested, `function` must end the process: exit 0 when it has
    printed (a closed pipe, as in `| head`, included), exit 2 with the error's one line otherwise."""

    @functools.wraps(function)
    def guarded(*args, **kwargs):
        request = requested()
        if not (request.dry_run or request.show_config):
            return function(*args, **kwargs)
        try:
            return function(*args, **kwargs)
        except BrokenPipeError:  # the reader stopped reading: what it read was printed
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except Exception as error:
            exit_with_errors([one_line(error)])

    return guarded


@ends_the_process
def single_run(config: DictConfig) -> None:
    """--dry-run without -m: the run's folder (the config was validated), then exit."""
    if requested().dry_run:
        print(f"dry run: 1 job, nothing runs\n  {display_path(str(config.hydra.run.dir))}", flush=True)
        sys.exit(0)


@ends_the_process
def list_jobs(plan: SweepPlan) -> None:
    """--dry-run: the sweep's points and their job folders (every point was validated), then exit."""
    if not requested().dry_run:
        return
    if plan.problem:
        raise RuntimeError(f"--dry-run: the job folders could not be worked out: {plan.problem}")
    if not plan.jobs:
        print("dry run: this sweeper chooses its points as it runs; nothing to list", flush=True)
        sys.exit(0)
    print(f"dry run: {len(plan.jobs)} jobs in {display_path(plan.sweep_dir)}, nothing runs", flush=True)
    width = len(str(len(plan.jobs)))
    for number, (label, folder) in enumerate(plan.jobs, start=1):
        print(f"  {number:>{width}}/{len(plan.jobs)}  {label or '(no swept keys)'}  ->  {folder.name}", flush=True)
    sys.exit(0)


def job_config(config: DictConfig, index: int, overrides: list[str]) -> DictConfig:
    """Job `index`'s composed config, as the launcher hands it to the job."""
    from hydra.core.global_hydra import GlobalHydra

    job = GlobalHydra.instance().config_loader().load_sweep_config(config, overrides)
    with read_write(job.hydra), open_dict(job.hydra):
        job.hydra.job.num = index
        job.hydra.job.id = index
    return job


@ends_the_process
def show_configs(config: DictConfig, jobs: list[tuple[str, list[str]]] | None) -> None:
    """-m ... --cfg job|hydra|all: each sweep point's config, printed as Hydra's --cfg prints one run's
    (its own sanitising of the job or hydra part), one YAML document per point; then exit."""
    request = requested()
    if request.show_config is None:
        return
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    hydra = GlobalHydra.instance().hydra
    points = jobs if jobs is not None else [("(the sweeper chooses its points as it runs: the base config)", [])]
    for index, (label, overrides) in enumerate(points):
        job = job_config(config, index, overrides) if jobs is not None else config
        HydraConfig.instance().set_config(job)  # ${hydra:...} resolves for --resolve
        OmegaConf.set_readonly(job.hydra, None)
        shown = hydra.get_sanitized_cfg(job, request.show_config)
        if request.package not in (None, "_global_"):
            shown = OmegaConf.select(shown, request.package)
        print(("---\n" if index else "") + f"# job {index + 1}/{len(points)}: {label or '(no swept keys)'}",
              flush=True)
        if not OmegaConf.is_config(shown):
            print(shown, flush=True)
            continue
        if request.resolve:
            OmegaConf.resolve(shown)
        sys.stdout.write((f"# @package {request.package}\n" if request.package else "") + OmegaConf.to_yaml(shown))
    sys.stdout.flush()
    sys.exit(0)
