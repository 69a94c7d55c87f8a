"""Experiment tables: the columns each experiment of the plan is judged by, one row per job.

The registry maps an experiment name (summary.json's `name`, else the manifest's) to the file it
writes and its columns. A column's value comes from, in order:
1. the job's own record under that name: summary.json, the resolved config's top-level sweep axes
   (prompt_len, concurrency, ...), or the identity columns (engine, scheduler, model);
2. a summary field it renames (SOURCES, e.g. kv_transfer_ms_p50 <- kv_transfer_p50_ms), or for
   `<x>_gb` the summary's `<x>_bytes` / 1e9;
3. a rule over the record (DERIVED: fits, settings);
and is NaN otherwise: a missing metric is never invented. A table's `sums` columns are the sum of
other columns of the row (memory.csv's total_gb), so every record is totalled the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from context_research.report.loader import config_value


@dataclass(frozen=True)
class ExperimentTable:
    filename: str
    columns: tuple[str, ...]
    order_by: tuple[str, ...]  # the sweep axes, rows sorted by them
    # columns that are the sum of other columns of the row (the same definition for every record)
    sums: tuple[tuple[str, tuple[str, ...]], ...] = ()


TABLES: dict[str, ExperimentTable] = {
    "e1": ExperimentTable("summary.csv", (
        "prompt_len", "ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "tpot_p95_ms", "ttft_cv", "tpot_cv",
        "harness_overhead_p50_ms", "ttft_floor_ms", "tpot_floor_ms", "engine_ipc_p50_ms", "frontend_ttft_p50_ms",
        "ttft_measured_over_floor", "tpot_measured_over_floor"), ("prompt_len",)),
    "e2": ExperimentTable("summary.csv", (
        "concurrency", "prompt_len", "req_s", "out_tok_s", "total_tok_s", "ttft_p95_ms", "tpot_p95_ms",
        "itl_p95_ms", "slo_attainment", "goodput_req_s", "kv_load"), ("prompt_len", "concurrency")),
    "e2_rate": ExperimentTable("summary.csv", (
        "request_rate", "burstiness", "prompt_len", "req_s", "out_tok_s", "total_tok_s", "ttft_p50_ms", "ttft_p99_ms",
        "tpot_p50_ms", "tpot_p99_ms", "queue_wait_p99_ms", "mean_concurrency", "slo_attainment", "goodput_req_s",
        "kv_load"), ("burstiness", "request_rate")),
    "e3": ExperimentTable("summary.csv", (
        "engine", "scheduler", "prompt_len", "concurrency", "ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms",
        "tpot_p95_ms", "goodput_req_s", "kv_gb_per_req", "kv_transfer_ms_p50", "stall_ratio"),
        ("engine", "scheduler", "prompt_len", "concurrency")),
    "e5": ExperimentTable("memory.csv", (
        "engine", "prompt_len", "concurrency", "weights_gb", "kv_cache_gb", "kv_used_gb", "activations_gb",
        "cuda_graph_gb", "torch_cache_gb", "non_torch_gb", "total_gb", "nvml_used_gb"),
        ("engine", "prompt_len", "concurrency"),
        sums=(("total_gb", ("weights_gb", "kv_cache_gb", "activations_gb", "cuda_graph_gb", "torch_cache_gb",
                            "non_torch_gb")),)),
    "e6": ExperimentTable("summary.csv", (
        "prompt_len", "fits", "ttft_p50_ms", "tpot_p50_ms", "peak_mem_gb", "settings"), ("prompt_len",)),
}
# trailing columns on every table: which job a row is
JOB_COLUMNS = ("status", "label", "job")

# column -> summary fields it is another name for, with the factor to apply
SOURCES: dict[str, tuple[tuple[str, float], ...]] = {
    "kv_gb_per_req": (("kv_bytes_per_req", 1e-9),),
    "kv_transfer_ms_p50": (("kv_transfer_p50_ms", 1.0),),
    "peak_mem_gb": (("gpu_mem_peak_gb", 1.0),),
    "nvml_used_gb": (("gpu_mem_peak_gb", 1.0),),
}
# engine settings that decide what fits at long context, for the `settings` column
SETTINGS_EXCLUDED = ("_target_", "engine", "seed")


def fits(job: pd.Series) -> bool:
    """The job completed and every measured request finished."""
    return bool(job["status"] == "completed" and job.get("n_ok", 0) > 0 and job.get("n_errors", 1) == 0)


def settings(job: pd.Series) -> str:
    """The engine arguments the job ran with (serving config) and the model's length limit and format."""
    serving = config_value(job["config"], "serving") or {}
    items = [f"{k}={v}" for k, v in serving.items()
             if k not in SETTINGS_EXCLUDED and v is not None and not isinstance(v, (dict, list))]
    for key in ("max_model_len", "load_format"):
        value = config_value(job["config"], f"model.{key}")
        if value is not None:
            items.append(f"model.{key}={value}")
    for key, value in (config_value(job["config"], "model.hf_overrides") or {}).items():
        items.append(f"model.hf_overrides.{key}={value}")
    return " ".join(items)


DERIVED: dict[str, Callable[[pd.Series], Any]] = {"fits": fits, "settings": settings}


def present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def column_value(job: pd.Series, column: str) -> Any:
    """The value of one table column for one job (module docstring: where it comes from)."""
    if present(job.get(column)):
        return job[column]
    sources = SOURCES.get(column, ())
    if column.endswith("_gb"):
        sources = (*sources, (column[:-3] + "_bytes", 1e-9))
    for source, factor in sources:
        if present(job.get(source)):
            return float(job[source]) * factor
    if column in DERIVED:
        return DERIVED[column](job)
    return math.nan


def experiment_table(jobs: pd.DataFrame, spec: ExperimentTable) -> pd.DataFrame:
    """One row per job: the spec's columns, then the job's status, folder label and directory."""
    rows = [{column: column_value(job, column) for column in (*spec.columns, *JOB_COLUMNS)}
            for _, job in jobs.iterrows()]
    for total, parts in spec.sums:
        for row in rows:
            values = [row[part] for part in parts]
            row[total] = math.fsum(values) if all(present(v) for v in values) else math.nan
    table = pd.DataFrame(rows, columns=[*spec.columns, *JOB_COLUMNS])
    order = [c for c in spec.order_by if table[c].notna().any()]
    return table.sort_values(order, kind="stable").reset_index(drop=True) if order else table


def experiment_tables(jobs: pd.DataFrame, force: str | None = None) -> dict[str, tuple[str, pd.DataFrame]]:
    """{file name: (experiment, table)} for the experiments in `jobs` that have a table.

    `force` applies one experiment's table to every job. Two experiments that both write
    summary.csv get `summary_<name>.csv` each.
    """
    if force is not None:
        if force not in TABLES:
            raise ValueError(f"--table {force}: unknown experiment table; known: {', '.join(TABLES)}")
        return {TABLES[force].filename: (force, experiment_table(jobs, TABLES[force]))}
    present_names = [n for n in dict.fromkeys(jobs["name"]) if n in TABLES]
    claims: dict[str, int] = {}
    for name in present_names:
        claims[TABLES[name].filename] = claims.get(TABLES[name].filename, 0) + 1
    tables = {}
    for name in present_names:
        spec = TABLES[name]
        filename = spec.filename if claims[spec.filename] == 1 else spec.filename.replace(".csv", f"_{name}.csv")
        tables[filename] = (name, experiment_table(jobs[jobs["name"] == name], spec))
    return tables
