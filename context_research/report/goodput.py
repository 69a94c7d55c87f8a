"""DistServe goodput: from a rate or concurrency sweep, the highest load at which SLO attainment
is at least 90%.

A job's attainment is its summary's `slo_attainment` (vLLM's definition: the share of measured
requests meeting every SLO). Where the summary lacks it and the job's config sets SLOs
(`benchmark.slo.ttft_ms / tpot_ms / e2e_ms`), it is computed from requests.parquet by the same rule
(metrics/load.py `slo_attainment`). Repeats (seed, repeat) at one load are averaged.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from context_research.config.benchmark import SLOConfig
from context_research.metrics.load import slo_attainment
from context_research.records.run_record import REQUESTS
from context_research.report.alignment import is_repeat_key, sortable
from context_research.report.loader import config_value

ATTAINMENT_TARGET = 0.9
# override keys that set the offered load, by their last dotted part
LOAD_KEYS = ("request_rate", "rate", "qps", "concurrency")
SLO_METRICS = ("ttft_ms", "tpot_ms", "e2e_ms")


def load_key(overrides: dict[str, str]) -> str | None:
    return next((k for k in overrides if k.rsplit(".", 1)[-1] in LOAD_KEYS), None)


def attainment_from_requests(job: pd.Series) -> float:
    """Share of measured requests meeting every SLO set in the job's config (NaN when none is set)."""
    slo = config_value(job["config"], "benchmark.slo") or {}
    if all(slo.get(metric) is None for metric in SLO_METRICS) or not job["has_requests"]:
        return math.nan
    limits = SLOConfig(**{k: v for k, v in slo.items() if k in SLOConfig.__dataclass_fields__})
    return slo_attainment(pd.read_parquet(Path(job["job_dir"]) / REQUESTS), limits)


def job_attainment(job: pd.Series) -> float:
    recorded = job.get("slo_attainment", math.nan)
    return float(recorded) if not pd.isna(recorded) else attainment_from_requests(job)


def attainment_by_load(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per sweep (folder, experiment, other overrides) and load: the mean SLO attainment over repeats."""
    rows = []
    for _, job in jobs[jobs["status"] == "completed"].iterrows():
        key = load_key(job["override_map"])
        if key is None:
            continue
        rest = " ".join(f"{k}={v}" for k, v in sorted(job["override_map"].items())
                        if k != key and not is_repeat_key(k))
        rows.append({"label": job["label"], "name": job["name"], "sweep_point": rest, "load_key": key,
                     "load": job["override_map"][key], "slo_attainment": job_attainment(job),
                     "req_s": job.get("req_s", math.nan)})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    frame = frame.groupby(["label", "name", "sweep_point", "load_key", "load"], as_index=False, sort=False).agg(
        slo_attainment=("slo_attainment", "mean"), req_s=("req_s", "mean"), n_jobs=("slo_attainment", "size"))
    frame["load_value"] = pd.to_numeric(frame["load"], errors="coerce")
    return frame.sort_values(["label", "sweep_point", "load_value"]).reset_index(drop=True)


def distserve_goodput(jobs: pd.DataFrame, target: float = ATTAINMENT_TARGET) -> pd.DataFrame:
    """Per sweep: the highest load whose attainment >= target (NaN when no load meets it)."""
    by_load = attainment_by_load(jobs)
    if by_load.empty or by_load["slo_attainment"].isna().all():
        return pd.DataFrame()
    rows = []
    for (label, name, point, key), sweep in by_load.groupby(["label", "name", "sweep_point", "load_key"], sort=False):
        meeting = sweep[sweep["slo_attainment"] >= target]
        best = meeting.loc[max(meeting.index, key=lambda i: sortable(meeting.at[i, "load"]))] if len(meeting) else None
        rows.append({"label": label, "name": name, "sweep_point": point, "load_key": key,
                     "loads": " ".join(sweep["load"]), "target": target,
                     "distserve_goodput": float(best["load"]) if best is not None else math.nan,
                     "req_s_at_goodput": float(best["req_s"]) if best is not None else math.nan})
    return pd.DataFrame(rows)
