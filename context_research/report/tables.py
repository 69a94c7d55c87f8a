"""Experiment tables: the columns each experiment of the plan is judged by, one row per job.

The registry maps an experiment name (summary.json's `name`, else the manifest's) to the file it
writes and its columns. A column's value comes from, in order:
1. the job's own record under that name: summary.json, the resolved config's top-level sweep axes
   (prompt_len, concurrency, ...), or the identity columns (engine, scheduler, model);
2. a summary field it renames (SOURCES, e.g. kv_transfer_ms_p50 <- kv_transfer_p50_ms), or for
   `<x>_gb` the summary's `<x>_bytes` / 1e9;
3. a rule over the record (DERIVED: fits, settings, and E7's precision, budget and the fit check's
   predictions for the job's engine, from its config);
and is NaN otherwise: a missing metric is never invented. A table's `sums` columns are the sum of
other columns of the row (memory.csv's total_gb), so every record is totalled the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from context_research.config.hardware import GB
from context_research.config.model import engine_dtype
from context_research.hardware.fit import vllm_kv_capacity_tokens
from context_research.profiling.roofline import ModelFootprint, footprint
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
    # the columns, then the acceptance's checks beside them and what the job ran on
    "e7": ExperimentTable("fits.csv", (
        "budget_gb", "precision", "prompt_len", "concurrency", "fits", "preemptions", "ttft_p50_ms", "tpot_p50_ms",
        "kv_capacity_tokens", "kv_capacity_predicted_tokens", "kv_capacity_error_pct", "engine_max_model_len",
        "weights_gb", "weights_predicted_gb", "weights_error_pct", "kv_bytes_per_token_measured",
        "kv_bytes_per_token_predicted", "outcome", "compute_hardware", "memory_hardware"),
        ("budget_gb", "precision", "prompt_len", "concurrency")),
    # real workloads over HTTP: per workload (and sessions' concurrency), the latency, the rates, the prefix
    # cache's hit rate per request and from the server's /metrics, how late the sends were (queue_wait) and
    # what the sessions were
    "e8": ExperimentTable("summary.csv", (
        "arrival_process", "workload_source", "concurrency", "time_scale", "n_ok", "n_errors", "req_s", "out_tok_s",
        "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms",
        "e2e_p99_ms", "queue_wait_p50_ms", "queue_wait_p99_ms", "prefix_cache_hit_rate", "server_prefix_cache_hit_rate",
        "cached_prompt_tokens", "measured_prompt_tokens", "server_kv_cache_usage_peak", "server_preemptions",
        "n_skipped_records", "n_sessions", "turns_per_session_mean", "session_p50_s", "session_p95_s"),
        ("workload_source", "concurrency")),
}
TABLES["e7_quick"] = TABLES["e7"]  # E7 reduced to a few minutes of device time: the same table
E7_NAMES = ("e7", "e7_quick")
# trailing columns on every table: which job a row is
JOB_COLUMNS = ("status", "label", "job")

# column -> summary fields it is another name for, with the factor to apply
SOURCES: dict[str, tuple[tuple[str, float], ...]] = {
    "kv_gb_per_req": (("kv_bytes_per_req", 1e-9),),
    "kv_transfer_ms_p50": (("kv_transfer_p50_ms", 1.0),),
    "peak_mem_gb": (("gpu_mem_peak_gb", 1.0),),
    "nvml_used_gb": (("gpu_mem_peak_gb", 1.0),),
    "budget_gb": (("memory_budget_gb", 1.0),),
    "preemptions": (("num_preemptions", 1.0),),
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


# E7 (the budget track) -------------------------------------------------------------------------
PRECISIONS = {(None, "auto"): "bf16", (None, "fp8"): "fp8_kv", ("fp8", "fp8"): "fp8"}  # conf/precision/


def precision(job: pd.Series) -> str:
    """The job's precision: its `precision=` choice, else named from its weights and KV cache dtypes."""
    if present(job.get("choice.precision")):
        return job["choice.precision"]
    config = job["config"]
    quantization = config_value(config, "model.quantization")
    kv = config_value(config, "serving.kv_cache_dtype") or "auto"
    return PRECISIONS.get((quantization, kv), f"{quantization or config_value(config, 'model.dtype')} weights, {kv} KV")


def budget_gb(job: pd.Series) -> float:
    """The memory the job planned with where its engine recorded none (a job that did not start):
    hardware.memory_budget_gb, else a GPU profile's memory (the card emulated on a bigger GPU)."""
    hardware = config_value(job["config"], "hardware") or {}
    if present(hardware.get("memory_budget_gb")):
        return float(hardware["memory_budget_gb"])
    if hardware.get("kind") == "gpu" and present(hardware.get("memory_gb")):
        return float(hardware["memory_gb"])
    return math.nan


def job_footprint(job: pd.Series) -> ModelFootprint | None:
    """The fit check's footprint of the job's model at its precision (profiling/roofline.py)."""
    model = config_value(job["config"], "model") or {}
    architecture = {**(model.get("architecture") or {}), **(model.get("hf_overrides") or {})}
    if not architecture or not model.get("dtype"):
        return None
    serving = config_value(job["config"], "serving") or {}
    kv = serving.get("kv_cache_dtype") or "auto"
    dtype = engine_dtype(serving.get("dtype") or "auto", model["dtype"], on_cuda=True)
    return footprint(architecture, dtype, None if kv == "auto" else kv, model.get("quantization"))


def kv_capacity_predicted_tokens(job: pd.Series) -> float:
    """hardware/fit.py's KV capacity for the job's vLLM engine: its configured gpu_memory_utilization of
    its budget (what vLLM requests), less the weights and the non-KV allowance."""
    fp, budget = job_footprint(job), column_value(job, "budget_gb")
    utilization = config_value(job["config"], "serving.gpu_memory_utilization")
    if fp is None or not present(budget) or utilization is None or job.get("engine") != "vllm":
        return math.nan
    return float(vllm_kv_capacity_tokens(fp, float(budget) * GB, float(utilization)))


def weights_predicted_gb(job: pd.Series) -> float:
    fp = job_footprint(job)
    return fp.weight_bytes / GB if fp is not None else math.nan


def kv_bytes_per_token_predicted(job: pd.Series) -> float:
    fp = job_footprint(job)
    return float(fp.kv_bytes_per_token) if fp is not None else math.nan


def error_pct(measured: Any, predicted: Any) -> float:
    """100 x (measured - predicted) / predicted; NaN where either is missing."""
    if not (present(measured) and present(predicted)) or not predicted:
        return math.nan
    return 100.0 * (float(measured) - float(predicted)) / float(predicted)


def outcome(job: pd.Series) -> str:
    """E7's verdict: `does not fit` (the job or a request failed), `preempts` (vLLM preempted a
    request: its KV cache held fewer than were running), else `fits`."""
    if not fits(job):
        return "does not fit"
    preemptions = column_value(job, "preemptions")
    return "preempts" if present(preemptions) and preemptions > 0 else "fits"


DERIVED: dict[str, Callable[[pd.Series], Any]] = {
    "fits": fits, "settings": settings, "precision": precision, "budget_gb": budget_gb,
    "kv_capacity_predicted_tokens": kv_capacity_predicted_tokens, "weights_predicted_gb": weights_predicted_gb,
    "kv_bytes_per_token_predicted": kv_bytes_per_token_predicted, "outcome": outcome,
    "kv_capacity_error_pct": lambda job: error_pct(column_value(job, "kv_capacity_tokens"),
                                                   column_value(job, "kv_capacity_predicted_tokens")),
    "weights_error_pct": lambda job: error_pct(column_value(job, "weights_gb"), column_value(job, "weights_predicted_gb")),
}


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


KV_CAPACITY_TOLERANCE_PCT = 5.0  # the acceptance: vLLM's KV capacity within 5% of the fit check's
WEIGHTS_TOLERANCE_PCT = 2.0  # and the fp8 weights within 2% of the predicted bytes


def first_value(rows: pd.DataFrame, column: str) -> Any:
    """The column's first non-missing value over rows (one engine's jobs share its figures)."""
    values = rows[column].dropna()
    return values.iloc[0] if len(values) else math.nan


def within(error: Any, tolerance_pct: float) -> Any:
    return abs(error) <= tolerance_pct if present(error) else math.nan


def longest_context(fits_table: pd.DataFrame) -> pd.DataFrame:
    """Per budget and precision (one engine each), from E7's fits.csv: the longest prompt that ran
    alone (the lowest concurrency) without a failure or a preemption, the longest tried, the engine's
    own context limit, and the acceptance's checks on the engine's KV capacity and weights."""
    rows = []
    for (budget, precision_name), engine in fits_table.groupby(["budget_gb", "precision"], sort=False, dropna=False):
        alone = engine[engine["concurrency"] == engine["concurrency"].min()]
        fitted = alone.loc[alone["outcome"] == "fits", "prompt_len"]
        kv_error, weights_error = first_value(engine, "kv_capacity_error_pct"), first_value(engine, "weights_error_pct")
        rows.append({
            "budget_gb": budget, "precision": precision_name,
            "longest_prompt_len": fitted.max() if len(fitted) else math.nan,
            "longest_tried": alone["prompt_len"].max(),
            **{column: first_value(engine, column) for column in (
                "engine_max_model_len", "kv_capacity_tokens", "kv_capacity_predicted_tokens", "kv_capacity_error_pct")},
            "kv_capacity_within_5pct": within(kv_error, KV_CAPACITY_TOLERANCE_PCT),
            **{column: first_value(engine, column) for column in (
                "weights_gb", "weights_predicted_gb", "weights_error_pct")},
            "weights_within_2pct": within(weights_error, WEIGHTS_TOLERANCE_PCT),
        })
    return pd.DataFrame(rows)
