"""Load run and multirun folders into pandas: one row per job, one row per request.

A job is any directory holding `manifest.json` (or Hydra's `.hydra/config.yaml` without a manifest:
a job that died before its record was opened; it shows as `unrecorded`). Failed and interrupted jobs
stay in the table with their status and error. Only JSON, YAML (safe loader) and Parquet are read:
nothing is unpickled and no `_target_` in a record is ever instantiated.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow.parquet as pq
import yaml
from omegaconf import OmegaConf

from context_research.config.resolvers import register_resolvers
from context_research.metrics.schema import Summary
from context_research.records.run_record import ATTEMPTS, MANIFEST, REQUESTS, SUMMARY
from context_research.report.alignment import parse_overrides
from context_research.report.roofline import without_foreign_floors

HYDRA_DIR = ".hydra"
UNRECORDED = "unrecorded"
# per-job objects kept in the frame for the analyses, left out of jobs.csv
OBJECT_COLUMNS = ("config", "override_map")
# identity columns taken from the summary, or from the resolved config when a job wrote no summary
IDENTITY = {"model": "model.name", "engine": "serving.engine", "scheduler": "scheduler.name",
            "benchmark": "benchmark.name"}


def find_job_dirs(folder: str | Path) -> list[Path]:
    """Every job directory under `folder` (the folder itself when it is one job)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"not a directory: {root}")
    found = {p.parent for p in root.rglob(MANIFEST) if HYDRA_DIR not in p.parts[len(root.parts):]}
    found |= {p.parent.parent for p in root.rglob(f"{HYDRA_DIR}/config.yaml")}
    found = {job for job in found if ATTEMPTS not in job.parts[len(root.parts):]}  # a rerun job's earlier attempts
    return sorted(found, key=natural_key)


def natural_key(path: Path) -> list:
    """Sort `10_x` after `9_x` (Hydra numbers its sweep subdirectories)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix())]


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def read_config(job_dir: Path) -> dict[str, Any]:
    """The job's composed config from `.hydra/config.yaml`, interpolations resolved where they can be."""
    path = job_dir / HYDRA_DIR / "config.yaml"
    if not path.is_file():
        return {}
    register_resolvers()  # the presets' ${cr.*} arithmetic, e.g. E3's num_prompts
    config = OmegaConf.create(yaml.safe_load(path.read_text()) or {})
    unresolved = OmegaConf.to_container(config, resolve=False)
    resolved: dict[str, Any] = {}
    for key, text in unresolved.items():  # key by key, so one unresolvable value keeps only itself as text
        try:
            value = config[key]
            resolved[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        except Exception:  # a resolver only Hydra's runtime knows (e.g. ${now:...}): keep the text
            resolved[key] = text
    return resolved


def read_choices(job_dir: Path) -> dict[str, str]:
    """Config-group choices (model=..., serving=...) from `.hydra/hydra.yaml`, Hydra's own groups left out."""
    path = job_dir / HYDRA_DIR / "hydra.yaml"
    if not path.is_file():
        return {}
    hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra", {})
    choices = hydra.get("runtime", {}).get("choices", {}) or {}
    return {group: value for group, value in choices.items() if not group.startswith("hydra")}


def config_value(config: dict[str, Any], dotted: str) -> Any:
    """`config['a']['b']` for `a.b`; None where the path does not exist."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def flatten(summary: dict[str, Any]) -> dict[str, Any]:
    """Nested summary entries (`checks: {...}`) become `checks.name` columns; None becomes NaN."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        elif isinstance(value, list):
            flat[key] = json.dumps(value)
        else:
            flat[key] = math.nan if value is None else value
    return flat


def gpu_name(manifest: dict[str, Any]) -> str:
    """The GPU the job ran on, or 'CPU' when its engines ran on the CPU or none was visible."""
    devices = [str(e.get("device", "")) for e in (manifest.get("engines") or {}).values()]
    if devices and all(d.startswith("cpu") for d in devices):
        return "CPU"
    gpu = manifest.get("gpu") or {}
    return gpu["gpus"][0]["name"] if gpu.get("available") and gpu.get("gpus") else "CPU"


def sweep_root(job_dir: Path) -> Path:
    """The multirun folder holding the job (the one with Hydra's multirun.yaml), else the job itself."""
    for parent in job_dir.parents:
        if (parent / "multirun.yaml").is_file():
            return parent
    return job_dir


def job_row(job_dir: Path, folder: Path, label: str) -> dict[str, Any]:
    manifest = read_json(job_dir / MANIFEST)
    summary = Summary.from_json(read_json(job_dir / SUMMARY) or {}).columns()  # any schema version
    config = read_config(job_dir)
    if manifest is None:
        overrides_path = job_dir / HYDRA_DIR / "overrides.yaml"
        overrides = (yaml.safe_load(overrides_path.read_text()) or []) if overrides_path.is_file() else []
        manifest = {"status": UNRECORDED, "error": f"no {MANIFEST}: the job stopped before its record was opened",
                    "overrides": overrides, "name": config.get("name")}
    row: dict[str, Any] = {
        "folder": str(folder), "label": label, "sweep": str(sweep_root(job_dir)),
        "job": job_dir.relative_to(folder).as_posix() if job_dir != folder else job_dir.name,
        "job_dir": str(job_dir), "status": manifest.get("status"), "error": manifest.get("error"),
        "run_id": manifest.get("run_id"), "name": summary.get("name", manifest.get("name")),
    }
    for column, path in IDENTITY.items():
        row[column] = summary.get(column, config_value(config, path))
    row["gpu"] = gpu_name(manifest)
    row["overrides"] = " ".join(manifest.get("overrides") or [])
    row.update({k: v for k, v in config.items() if k != "name" and not isinstance(v, (dict, list))})
    row.update({f"choice.{group}": value for group, value in read_choices(job_dir).items()})
    git = manifest.get("git") or {}
    row.update(started=manifest.get("started"), ended=manifest.get("ended"), config_hash=manifest.get("config_hash"),
               workload_hash=manifest.get("workload_hash"), engine_key=manifest.get("engine_key"),
               git_sha=git.get("sha"), git_dirty=git.get("dirty"), has_requests=(job_dir / REQUESTS).is_file())
    row.update({k: v for k, v in flatten(summary).items() if k not in row})
    row = without_foreign_floors(row)  # no GPU peaks for a CPU run
    row["config"] = config
    row["override_map"] = parse_overrides(manifest.get("overrides") or [])
    return row


def folder_labels(folders: list[Path], names: dict[Path, str] | None = None) -> list[str]:
    """Short names for the folders: the name given for a folder (`names`, by resolved path), else its
    base name (a multirun's time stamp), numbered where they repeat."""
    labels, seen = [], {}
    for folder in folders:
        name = (names or {}).get(folder) or folder.name or str(folder)
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def load_jobs(folders: Iterable[str | Path], names: dict[str | Path, str] | None = None) -> pd.DataFrame:
    """One row per job across `folders` (a folder may be a job, a multirun, or a tree of them),
    labelled by `names` (folder -> label) where given, else by the folder's base name.

    The same folder given twice (an A/B of a run against itself) loads twice, with two labels.
    """
    folders = [Path(f).resolve() for f in folders]
    names = {Path(folder).resolve(): name for folder, name in (names or {}).items()}
    rows = []
    for folder, label in zip(folders, folder_labels(folders, names)):
        rows.extend(job_row(job_dir, folder, label) for job_dir in find_job_dirs(folder))
    jobs = pd.DataFrame(rows)
    if jobs.empty:
        return jobs
    for column in ("started", "ended"):
        jobs[column] = pd.to_datetime(jobs[column], utc=True, format="ISO8601")
    return jobs


def load_requests(jobs: pd.DataFrame, phase: str | None = "measure", columns: list[str] | None = None) -> pd.DataFrame:
    """One row per request of the jobs that wrote requests.parquet, tagged with the job's label, job and run_id.

    `columns` picks the columns to read (those a file lacks are skipped); `phase="measure"` keeps the measured requests (warm-up excluded), None keeps all.
    """
    frames = []
    for _, job in jobs[jobs["has_requests"]].iterrows():
        path = Path(job["job_dir"]) / REQUESTS
        wanted = None if columns is None else [c for c in columns if c in pq.read_schema(path).names]
        requests = pd.read_parquet(path, columns=wanted)
        if phase is not None and "phase" in requests:
            requests = requests[requests["phase"] == phase]
        frames.append(requests.assign(label=job["label"], job=job["job"], run_id=job["run_id"],
                                      job_dir=job["job_dir"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def unique_jobs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Each job directory once (a folder given twice, for an A/B against itself, loads its jobs twice)."""
    return jobs.drop_duplicates("job_dir")


def csv_ready(jobs: pd.DataFrame) -> pd.DataFrame:
    """The jobs table as written to jobs.csv: the per-job objects left out."""
    return jobs.drop(columns=[c for c in OBJECT_COLUMNS if c in jobs])
