"""Figures do not move across the contracts redesign: records written before it (tests/fixtures/legacy_records,
no schema_version) load, and today's report over them gives the tables that the code of that time gave; the
same configs run again give the same summaries, up to timing noise, and the same tokens."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from context_research.metrics.schema import SCHEMA_VERSION, Summary
from context_research.report.build import build_report
from context_research.report.loader import flatten
from context_research.report.roofline import FLOOR_FIGURES
from tests.conftest import REPO, read_summary

LEGACY = REPO / "tests" / "fixtures" / "legacy_records"
FOLDERS = ("e0", "e1", "e2", "disagg")
# where the loaded folder lies: the only columns that name this machine's paths
PATH_COLUMNS = ("folder", "sweep", "job_dir")
# the commands of tests/fixtures/legacy_records/README.md; a run or sweep in <dir>
COMMANDS = {
    "e0": ["hydra.run.dir={dir}"],
    "e1": ["-m", "experiment=e1", "prompt_len=64,128", "repeats=3", "output_len=8", "benchmark.warmup=1",
           "hydra.sweep.dir={dir}"],
    "e2": ["-m", "experiment=e2", "prompt_len=64", "concurrency=1,2", "output_len=8", "hydra.sweep.dir={dir}"],
    "disagg": ["scheduler=disaggregated", "num_prompts=3", "output_len=8", "name=disagg", "hydra.run.dir={dir}"],
}
# figures that are counts, bytes, settings or checks: equal on a rerun (times differ run to run, and so do the
# tokens and completions that fall inside a load run's measurement window)
EXACT = ("name", "benchmark", "scheduler", "engine", "model", "passed", "checks.full_outputs", "checks.reproducible",
         "n_requests", "n_ok", "n_errors", "n_warmup", "n_cooldown", "arrival_process", "concurrency", "prompt_len",
         "output_len", "n_sent", "slo_ttft_ms", "slo_tpot_ms", "weights_gb", "kv_cache_gb", "kv_used_gb", "kv_bytes_per_token_measured",
         "memory_available", "gpu_available", "kv_transfers", "kv_bytes_total", "kv_gb_per_req", "kv_simulated",
         "kv_transfer_mode", "stall_ratio_is_finite")
# figures the redesign corrected, and how: the CPU decode worker of a disaggregated run holds its own copy of
# the model and the KV it decodes from, which the memory collector now counts (it counted the prefill engine's)
CORRECTED = {("disagg", "weights_gb"): 2.0, ("disagg", "kv_cache_gb"): None, ("disagg", "kv_used_gb"): None}
TIMED = ("ttft_p50_ms", "tpot_p50_ms", "e2e_p50_ms", "itl_p50_ms", "req_s", "out_tok_s", "measure_s")


def without_foreign_floors(table: pd.DataFrame) -> pd.DataFrame:
    """The report's one correction of these tables since: the records are CPU runs whose floors used
    H200 peaks (before the hardware group), which the report no longer shows on a CPU run
    (report/roofline.py): their floors and ratios are NaN, and jobs.csv says why in `roofline_reason`."""
    corrected = table.copy()
    floors = [c for c in FLOOR_FIGURES if c in corrected]
    if not floors:
        return corrected
    corrected[floors] = np.nan
    if "roofline_hardware" in corrected:
        corrected["roofline_reason"] = [f"the floors used {hardware} peaks on a CPU run: not shown"
                                        for hardware in corrected["roofline_hardware"]]
    return corrected


def summaries(folder: Path) -> dict[str, dict]:
    """Each job's summary by its job folder's name (Hydra numbers sweep jobs the same way every run)."""
    return {path.parent.name: flatten(read_summary(path.parent)) for path in sorted(folder.glob("**/summary.json"))
            if "attempts" not in path.parts}


@pytest.mark.parametrize("folder", FOLDERS)
def test_records_without_a_schema_version_load_with_their_own_names(folder):
    for path in (LEGACY / folder).glob("**/summary.json"):
        stored = json.loads(path.read_text())
        assert "schema_version" not in stored
        loaded = flatten(Summary.from_json(stored).columns())
        for key, value in flatten(stored).items():
            assert loaded[key] == value or (isinstance(value, float) and math.isnan(value) and math.isnan(loaded[key]))


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_report_gives_the_tables_it_gave_before_the_redesign(folder, tmp_path):
    build_report([LEGACY / folder], tmp_path)
    expected = sorted(p.name for p in (LEGACY / "expected" / folder).glob("*.csv"))
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == expected
    for name in expected:
        before = without_foreign_floors(pd.read_csv(LEGACY / "expected" / folder / name))
        now = pd.read_csv(tmp_path / name)
        assert list(now.columns) == list(before.columns), name  # no column renamed, added or lost
        for column in (c for c in before.columns if c not in PATH_COLUMNS):
            if pd.api.types.is_numeric_dtype(before[column]):
                np.testing.assert_array_equal(now[column].to_numpy(float), before[column].to_numpy(float), column)
            else:
                assert now[column].astype(str).tolist() == before[column].astype(str).tolist(), column


@pytest.fixture(scope="module")
def reruns(tmp_path_factory, model_cache) -> Path:
    """The fixture's four commands run again with today's code, two at a time (two cores)."""
    root = tmp_path_factory.mktemp("reruns")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    for pair in (FOLDERS[:2], FOLDERS[2:]):
        processes = {name: subprocess.Popen(
            [sys.executable, "launch.py", *(a.format(dir=root / name) for a in COMMANDS[name]),
             f"paths.cache_dir={model_cache}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) for name in pair}
        for name, process in processes.items():
            output, _ = process.communicate(timeout=300)
            assert process.returncode == 0, output[-3000:]
    return root


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_same_configs_rerun_give_the_same_summaries_and_tokens(folder, reruns):
    before, now = summaries(LEGACY / folder), summaries(reruns / folder)
    assert list(now) == list(before)
    written = list((reruns / folder).glob("**/summary.json"))
    assert written and all(json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION for path in written)
    for job in before:
        old, new = before[job], now[job]
        for summary in (old, new):
            summary["stall_ratio_is_finite"] = math.isfinite(summary.get("stall_ratio") or math.nan)
        for key in EXACT:
            if key not in old:
                continue
            if (folder, key) in CORRECTED:
                factor = CORRECTED[folder, key]
                assert new[key] > old[key] if factor is None else new[key] == pytest.approx(factor * old[key]), key
            else:
                assert new[key] == pytest.approx(old[key], nan_ok=True), (job, key)
        for key in TIMED:
            if key in old:
                assert math.isfinite(new[key]) and new[key] > 0, (job, key)
    for path in (LEGACY / folder).glob("**/requests.parquet"):
        job = path.parent.relative_to(LEGACY / folder)
        old = pd.read_parquet(path).set_index("request_id")
        new = pd.read_parquet(reruns / folder / job / "requests.parquet").set_index("request_id")
        assert list(new.index) == list(old.index)
        assert new["output_token_ids"].map(list).tolist() == old["output_token_ids"].map(list).tolist()
        assert new["prompt_tokens"].tolist() == old["prompt_tokens"].tolist()
        for column in ("route", "prefill_pool", "decode_pool", "kv_bytes", "phase", "ok"):
            if column in old:
                assert new[column].tolist() == old[column].tolist(), column
