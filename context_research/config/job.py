"""The root schema: sweep keys at the top, one node per config group."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from context_research.config.bounds import require_count, require_seed
from context_research.config.errors import require
from context_research.config.resolvers import MAX_DIRNAME_CHARS

# a job name is one folder name: letters, digits, `_`, `-` and `.` (not first, so never `..` or hidden)
JOB_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{MAX_DIRNAME_CHARS - 1}}}")


@dataclass
class PathsConfig:
    """Where records and generated files go (relative paths are taken from the launch directory)."""

    output_dir: str = "outputs"
    sweep_dir: str = "multirun"
    cache_dir: str = ".cache/context_research"
    data_dir: str = "data"


@dataclass
class JobConfig:
    """One job. The top-level keys are the sweep axes, interpolated into the groups that use them:
    `python launch.py -m experiment=e1 prompt_len=1024,4096` sweeps them as typed."""

    name: str = "e0"
    prompt_len: int = 64
    output_len: int = 16
    concurrency: int = 1
    num_prompts: int = 4
    repeats: int = 1
    seed: int = 0
    # skip jobs whose directory already holds a completed record of the same config (not hashed)
    resume: bool = False
    model: Any = MISSING
    serving: Any = MISSING
    scheduler: Any = MISSING
    benchmark: Any = MISSING
    collectors: Any = MISSING
    hardware: Any = MISSING
    paths: Any = MISSING

    def __post_init__(self) -> None:
        require(bool(JOB_NAME.fullmatch(self.name or "")), "name", self.name,
                f"one folder name of 1 to {MAX_DIRNAME_CHARS} letters, digits, '_', '-' or '.' (not first)")
        require(self.prompt_len >= 1, "prompt_len", self.prompt_len, "an integer >= 1")
        require(self.output_len >= 1, "output_len", self.output_len, "an integer >= 1")
        require_count("concurrency", self.concurrency)
        require_count("num_prompts", self.num_prompts)
        require_count("repeats", self.repeats)
        require_seed("seed", self.seed)
