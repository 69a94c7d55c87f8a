"""Run records for the report tests.

`run_folders`: two real CPU multiruns of E1 on the tiny model (two prompt lengths x two seeds; B at
twice A's lengths) and a multirun with a job that really fails (an activation transformers does not
know: the model cannot be built) beside one that completes. The three run at once, once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.report.report_records import A_LENGTHS, B_LENGTHS

REPO = Path(__file__).resolve().parents[2]
SMALL_E1 = ["experiment=e1", "output_len=4", "repeats=6", "benchmark.warmup=1",
            "hydra.job.config.override_dirname.exclude_keys=[experiment,resume,paths.cache_dir]"]


@dataclass
class RunFolders:
    a: Path       # prompt_len=384,768 seed=0,1
    b: Path       # prompt_len=768,1536 seed=0,1 (A's lengths doubled)
    failed: Path  # hidden_act=silu (completes), hidden_act=no_such_activation (fails at engine start)


@pytest.fixture(scope="session")
def run_folders(tmp_path_factory, model_cache) -> RunFolders:
    root = tmp_path_factory.mktemp("report-runs")
    folders = RunFolders(root / "a", root / "b", root / "failed")
    commands = {
        folders.a: [*SMALL_E1, f"prompt_len={','.join(map(str, A_LENGTHS))}", "seed=0,1"],
        folders.b: [*SMALL_E1, f"prompt_len={','.join(map(str, B_LENGTHS))}", "seed=0,1"],
        folders.failed: [*SMALL_E1, "prompt_len=64", "repeats=1",
                         "model.architecture.hidden_act=silu,no_such_activation"],
    }
    # one thread per process and at most two processes at once: two cores, no time-slicing to
    # blur the timings the A/B statistics compare (the failing sweep runs after A and B)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)

    def start(folder: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "launch.py", "-m", *commands[folder], f"hydra.sweep.dir={folder}",
             f"paths.cache_dir={model_cache}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    for group in ((folders.a, folders.b), (folders.failed,)):
        processes = {folder: start(folder) for folder in group}
        for folder, process in processes.items():
            output, _ = process.communicate(timeout=300)
            expected = 1 if folder == folders.failed else 0  # a sweep with a failed job exits non-zero
            assert process.returncode == expected, output[-3000:]
    return folders
