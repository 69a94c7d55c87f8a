"""Resolvers for the configs, registered once per process when `context_research.config` is
imported:

- arithmetic for presets whose values scale with a sweep axis, for example
  `num_prompts: ${cr.max:16,${cr.mul:2,${concurrency}}}` (two rounds of the in-flight requests,
  at least 16), and `cr.ceil` for a count that scales with a rate (E2 by rate: 16 s of arrivals);
- `cr.job_dirname`, a sweep job's folder name that fits the file system (see `job_dirname`);
- `cr.run_tag`, what makes a single run's default directory unique (see `run_tag`);
- `cr.help_groups`, the config groups of the project's --help (config/help.py)."""

from __future__ import annotations

import functools
import hashlib
import math
import secrets

from omegaconf import OmegaConf

from context_research.config.help import help_groups

MAX_DIRNAME_CHARS = 200  # below the 255-byte file name limit of Linux file systems, with room to spare


def job_dirname(job_num: int, override_dirname: str) -> str:
    """`<job number>_<overrides>`, the overrides cut short and given a hash of the whole when the
    name would be longer than MAX_DIRNAME_CHARS (a sweep with many overrides otherwise fails to
    create its job folders). Distinct override sets keep distinct names."""
    name = f"{job_num}_{override_dirname}"
    if len(name) <= MAX_DIRNAME_CHARS:
        return name
    digest = hashlib.sha256(override_dirname.encode()).hexdigest()[:12]
    return f"{name[:MAX_DIRNAME_CHARS - len(digest) - 1]}~{digest}"


@functools.cache
def run_tag() -> str:
    """Six random hex digits, drawn once per process: two runs started in the same second get
    directories of their own (`hydra.run.dir` ends `<time stamp>_<tag>`), and every reading of
    the run directory in one process gives the same one."""
    return secrets.token_hex(3)


RESOLVERS = {
    "cr.mul": lambda *factors: math.prod(factors),
    "cr.max": lambda *values: max(values),
    "cr.floordiv": lambda value, divisor: value // divisor,
    "cr.ceil": math.ceil,
    "cr.job_dirname": job_dirname,
    "cr.run_tag": run_tag,
    "cr.help_groups": help_groups,
}


def register_resolvers() -> None:
    """Register every resolver with OmegaConf (idempotent)."""
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
