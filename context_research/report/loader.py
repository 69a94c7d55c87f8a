"""Load run and multirun folders into pandas: one row per job, one row per request.

A job is any directory holding `manifest.json` (or Hydra's `.hydra/config.yaml` without a manifest:
a job that died before its record was opened; it shows as `unrecorded`). Failed and interrupted jobs
stay in the table with their status and error; a job whose files cannot be read or disagree (a
truncated manifest, a completed one without its summary, ...) is a row with status `unreadable` and
the reason. Requests are read for completed jobs only.

A job folder is data from elsewhere, so nothing in it is evaluated: only JSON, YAML (safe loader) and
Parquet are read, nothing is unpickled, no `_target_` is instantiated, and no interpolation is
resolved but the project's own. A record holds its config as resolved when it ran (manifest
`config`); for records written before that, `.hydra/config.yaml` is read with `${cr.*}` and plain
`${key}` references resolved and every other interpolation (`${oc.env:...}`, `${now:...}`) kept as
its text.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow.parquet as pq
import yaml
from omegaconf import OmegaConf, grammar_parser
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser

from context_research.config.resolvers import RESOLVERS, register_resolvers
from context_research.metrics.schema import LoadSection, Summary
from context_research.records.run_record import (ATTEMPTS, MANIFEST, REQUESTS, DamagedRecord, completed_record_problem,
                                                 read_manifest, read_summary)
from context_research.report.alignment import parse_overrides
from context_research.report.roofline import without_foreign_floors

HYDRA_DIR = ".hydra"
UNRECORDED = "unrecorded"
UNREADABLE = "unreadable"
# per-job objects kept in the frame for the analyses, left out of jobs.csv
OBJECT_COLUMNS = ("config", "override_map")
# identity columns taken from the summary, or from the resolved config when a job wrote no summary
IDENTITY = {"model": "model.name", "engine": "serving.engine", "scheduler": "scheduler.name",
            "benchmark": "benchmark.name"}
# top-level sweep axes whose value is what the job's load section recorded as applied, when it has one:
# a trace replay applies no `concurrency`, a data set's prompts no `prompt_len` (null there: the
# config's value is a default the run never used)
APPLIED_LOAD_AXES = ("concurrency", "request_rate", "burstiness", "prompt_len", "output_len", "shared_prefix_len")


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


def read_config(job_dir: Path, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The job's config: the resolved one its manifest holds, else `.hydra/config.yaml` with only
    the project's own interpolations resolved (see the module doc)."""
    if manifest is not None and isinstance(manifest.get("config"), dict):
        return manifest["config"]
    path = job_dir / HYDRA_DIR / "config.yaml"
    if not path.is_file():
        return {}
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a mapping")
    return resolve_project_interpolations(config)


def uses_only_project_resolvers(text: str) -> bool:
    """Whether every resolver `text` calls is one of the project's (`${cr.mul:...}`; plain `${key}`
    references call none). Text OmegaConf cannot parse counts as calling others."""
    try:
        tree = grammar_parser.parse(text)
    except Exception:  # noqa: BLE001 - a grammar error: never evaluated
        return False
    nodes = [tree]
    while nodes:
        node = nodes.pop()
        if isinstance(node, OmegaConfGrammarParser.InterpolationResolverContext):
            if node.resolverName().getText() not in RESOLVERS:
                return False
        children = (node.getChild(i) for i in range(node.getChildCount()))
        nodes.extend(child for child in children if hasattr(child, "getChildCount"))  # leaves are tokens
    return True


def resolve_project_interpolations(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with `${cr.*}` and plain `${key}` interpolations resolved, top-level key by key (a
    value that cannot be resolved keeps its text), and every string that calls any other resolver
    kept as its text, including where another value refers to it."""
    register_resolvers()  # the presets' ${cr.*} arithmetic, e.g. E3's num_prompts
    texts: dict[str, str] = {}  # marker -> the text it stands for while OmegaConf resolves the rest
    tag = secrets.token_hex(8)

    def shield(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shield(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shield(v) for v in value]
        if isinstance(value, str) and "${" in value and not uses_only_project_resolvers(value):
            marker = f"@{tag}-{len(texts)}@"
            texts[marker] = value
            return marker
        return value

    def unshield(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unshield(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unshield(v) for v in value]
        if isinstance(value, str) and tag in value:
            for marker, text in texts.items():
                value = value.replace(marker, text)
        return value

    shielded = OmegaConf.create(shield(config))
    resolved: dict[str, Any] = {}
    for key, text in config.items():  # key by key, so one unresolvable value keeps only itself as text
        try:
            value = shielded[key]
            resolved[key] = unshield(OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value)
                                     else value)
        except Exception:  # noqa: BLE001 - e.g. a reference to a key that is not there: keep the text
            resolved[key] = text
    return resolved


def read_choices(job_dir: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Config-group choices (model=..., serving=...) from the manifest, else (older records) from
    `.hydra/hydra.yaml`; Hydra's own groups left out."""
    choices = manifest.get("choices")
    path = job_dir / HYDRA_DIR / "hydra.yaml"
    if not isinstance(choices, dict) and path.is_file():
        hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra", {})
        choices = hydra.get("runtime", {}).get("choices", {})
    return {group: value for group, value in (choices or {}).items() if not group.startswith("hydra")}


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
    """The job's row; a job whose files cannot be read is a row with status `unreadable` and why."""
    try:
        return recorded_job_row(job_dir, folder, label)
    except Exception as error:  # noqa: BLE001 - a folder from elsewhere may hold anything
        reason = str(error) if isinstance(error, DamagedRecord) else f"{type(error).__name__}: {error}"
        return unreadable_row(job_dir, folder, label, reason)


def job_identity(job_dir: Path, folder: Path, label: str) -> dict[str, Any]:
    """The columns every row has, from where the job is."""
    return {"folder": str(folder), "label": label, "sweep": str(sweep_root(job_dir)),
            "job": job_dir.relative_to(folder).as_posix() if job_dir != folder else job_dir.name,
            "job_dir": str(job_dir)}


def unreadable_row(job_dir: Path, folder: Path, label: str, reason: str) -> dict[str, Any]:
    return {**job_identity(job_dir, folder, label), "status": UNREADABLE, "error": reason, "run_id": None,
            "name": None, **dict.fromkeys(IDENTITY), "gpu": None, "overrides": "", "started": None, "ended": None,
            "has_requests": False, "config": {}, "override_map": {}}


def recorded_job_row(job_dir: Path, folder: Path, label: str) -> dict[str, Any]:
    manifest = read_manifest(job_dir)
    if manifest is not None and manifest["status"] == "completed":
        problem = completed_record_problem(job_dir)
        if problem:
            return unreadable_row(job_dir, folder, label, problem)
    recorded = read_summary(job_dir) or Summary.from_json({})
    summary = recorded.columns()  # any schema version
    config = read_config(job_dir, manifest)
    if manifest is None:
        overrides_path = job_dir / HYDRA_DIR / "overrides.yaml"
        overrides = (yaml.safe_load(overrides_path.read_text()) or []) if overrides_path.is_file() else []
        manifest = {"status": UNRECORDED, "error": f"no {MANIFEST}: the job stopped before its record was opened",
                    "overrides": overrides, "name": config.get("name")}
    row: dict[str, Any] = {
        **job_identity(job_dir, folder, label), "status": manifest.get("status"), "error": manifest.get("error"),
        "run_id": manifest.get("run_id"), "name": summary.get("name", manifest.get("name")),
    }
    for column, path in IDENTITY.items():
        row[column] = summary.get(column, config_value(config, path))
    row["gpu"] = gpu_name(manifest)
    row["overrides"] = " ".join(manifest.get("overrides") or [])
    row.update({k: v for k, v in config.items() if k != "name" and not isinstance(v, (dict, list))})
    row.update(applied_load(recorded, row))
    row.update({f"choice.{group}": value for group, value in read_choices(job_dir, manifest).items()})
    git = manifest.get("git") or {}
    row.update(started=manifest.get("started"), ended=manifest.get("ended"), config_hash=manifest.get("config_hash"),
               workload_hash=manifest.get("workload_hash"), engine_key=manifest.get("engine_key"),
               git_sha=git.get("sha"), git_dirty=git.get("dirty"),
               has_requests=manifest.get("status") == "completed" and (job_dir / REQUESTS).is_file())
    row.update({k: v for k, v in flatten(summary).items() if k not in row})
    row = without_foreign_floors(row)  # no GPU peaks for a CPU run
    row["config"] = config
    row["override_map"] = parse_overrides(manifest.get("overrides") or [])
    return row


def applied_load(summary: Summary, row: dict[str, Any]) -> dict[str, Any]:
    """The load axes the summary's load section recorded (NaN where it applied none), for those of
    `row`'s top-level config axes it records; nothing for a summary without one, or written before
    the schema (whose flat keys do not say what was applied)."""
    load = summary.get(LoadSection)
    if load is None or summary.schema_version is None:
        return {}
    values = {axis: getattr(load, axis) for axis in APPLIED_LOAD_AXES if axis in row}
    return {axis: math.nan if value is None else value for axis, value in values.items()}


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
    """One row per request of the completed jobs (their requests.parquet), tagged with the job's label, job and run_id.

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
