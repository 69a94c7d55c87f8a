"""How long E0 takes, start to finish, as a user sees it: `python launch.py` run several times in
fresh processes, each timed from start to exit (wall seconds), median and minimum printed, with the
CPU seconds each used (user + system, its threads together): on a machine other processes share,
the wall time includes their work and the CPU time mostly does not.

    python -m context_research.cli.bench_e0 --runs 5 [--warmup 1] [--repo DIR] [-- extra overrides ...]

Each run writes its record into a temporary folder; the model config cache is shared by the runs
(what "once installed" means: the first run ever materialises it) and a warm-up run fills it and
the file system's cache first. `--repo` times another checkout's launch.py (a before/after
comparison). The machine's load average is printed beside the figures: on a shared machine, other
processes' work is in every wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cpu_seconds() -> float:
    """User + system seconds of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(repo: Path, folder: Path, cache: Path, overrides: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `python launch.py` in `repo` (its record in `folder`); raises if it fails."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cpu, start = cpu_seconds(), time.perf_counter()
    process = subprocess.run([sys.executable, "launch.py", f"hydra.run.dir={folder}", f"paths.cache_dir={cache}",
                              *overrides], cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"python launch.py exited {process.returncode}:\n{process.stderr[-2000:]}")
    return wall, cpu_seconds() - cpu


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m context_research.cli.bench_e0",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose launch.py runs (default: this one)")
    parser.add_argument("overrides", nargs="*", help="overrides passed to every run (after --)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if not (args.repo / "launch.py").is_file():
        parser.error(f"--repo {args.repo}: no launch.py there")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-e0-") as scratch:
        root = Path(scratch)
        for i in range(args.warmup):
            run_once(args.repo, root / f"warmup-{i}", root / "cache", args.overrides)
        walls, cpus = [], []
        for i in range(args.runs):
            wall, cpu = run_once(args.repo, root / f"run-{i}", root / "cache", args.overrides)
            walls.append(wall)
            cpus.append(cpu)
            print(f"run {i + 1}/{args.runs}: {wall:.2f} s wall, {cpu:.2f} s CPU (load average "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
    command = " ".join(["python launch.py", *args.overrides])
    print(f"E0 wall: median {statistics.median(walls):.2f} s, min {min(walls):.2f} s; CPU: median "
          f"{statistics.median(cpus):.2f} s; over {args.runs} runs of `{command}` in {args.repo} "
          f"({os.cpu_count()} CPUs)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
