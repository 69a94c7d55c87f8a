"""Build the report for a set of run folders: every table, statistic and figure, written to one folder.

    out/report.md  out/report.html  out/jobs.csv  out/plots/*.png|svg
    out/summary.csv | memory.csv     the experiment's table (tables.TABLES)
    out/sweep.json                   where the multirun's wall time went (an object; a list of them when the
                                     folders hold several multiruns)
    out/repeats.csv  out/ab.csv  out/ab_pairs.csv  out/scheduler_deltas.csv  out/goodput.csv  (when they apply)

The first folder is the A of every A/B; each later folder running the same experiment is a B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from context_research.records.atomic import write_json_atomic
from context_research.report import plots
from context_research.report.compare import compare_folders, scheduler_deltas
from context_research.report.document import Image, Section, Table, to_html, to_markdown
from context_research.report.goodput import attainment_by_load, distserve_goodput
from context_research.report.http_cost import http_cost_table
from context_research.report.loader import csv_ready, load_jobs, load_requests, unique_jobs
from context_research.report.repeats import CV_LIMIT, repeat_variance
from context_research.report.roofline import roofline_table
from context_research.report.sweep_timing import sweep_timing
from context_research.report.tables import experiment_tables

JOB_COLUMNS = ("label", "job", "status", "prompt_len", "output_len", "concurrency", "seed", "n_ok", "n_errors",
               "ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "tpot_p95_ms", "itl_p95_ms", "e2e_p50_ms", "req_s",
               "out_tok_s", "passed")
ECDF_COLUMNS = ["phase", "ok", "ttft_ms", "tpot_ms"]
DEFINITIONS = (
    "Per request, all times from one monotonic clock: arrival, dispatch (handed to the engine), first_token, "
    "last_token. TTFT = first_token - dispatch; queue_wait = dispatch - arrival (reported, not hidden). "
    "TPOT = (last_token - first_token) / (output_tokens - 1), request-weighted. ITL = each gap between "
    "consecutive streamed outputs, pooled over requests. E2E = last_token - dispatch. Throughput: requests/s, "
    "output tokens/s, total tokens/s over first dispatch -> last completion. Goodput (vLLM's): requests meeting "
    "every SLO per second; SLO attainment = their share. DistServe goodput: the highest load at which attainment "
    ">= 90%. Transfer stall ratio = sum(kv_wait_s) / sum(TTFT). Roofline: measured p50 / floor.")


@dataclass
class Report:
    jobs: pd.DataFrame
    sections: list[Section] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def present_columns(frame: pd.DataFrame, columns) -> list[str]:
    return [c for c in columns if c in frame]


def runs_section(jobs: pd.DataFrame) -> Section:
    counts = jobs.groupby(["label", "folder"], sort=False)["status"].value_counts().unstack(fill_value=0)
    counts.insert(0, "jobs", counts.sum(axis=1))
    counts.columns.name = None
    section = Section("Runs", [Table(counts.reset_index())])
    for column in ("model", "engine", "scheduler", "gpu"):
        values = ", ".join(str(v) for v in dict.fromkeys(jobs[column].dropna()))
        section.blocks.append(f"{column}: {values or 'unknown'}")
    return section


def failures_section(jobs: pd.DataFrame) -> Section | None:
    failed = jobs[jobs["status"] != "completed"]
    if failed.empty:
        return None
    return Section("Jobs not completed", [
        "Failed, interrupted, still-running and unrecorded jobs, with the error their manifest holds.",
        Table(failed[["label", "job", "status", "error", "overrides"]].reset_index(drop=True))])


def ab_sections(jobs: pd.DataFrame, out: Path, report: Report, statistic: str) -> list[Section]:
    labels = list(dict.fromkeys(jobs["label"]))
    sections, all_pairs, all_differences = [], [], []
    for label_b in labels[1:]:
        label_a = labels[0]
        names_a = set(jobs.loc[jobs["label"] == label_a, "name"])
        if not names_a & set(jobs.loc[jobs["label"] == label_b, "name"]):
            sections.append(Section(f"A/B: {label_b} vs {label_a}",
                                    [f"Not compared: {label_b} runs another experiment than {label_a}."]))
            continue
        pairs, differences = compare_folders(jobs, label_a, label_b, statistic)
        all_pairs.append(pairs)
        if len(differences):
            all_differences.append(differences.assign(a=label_a, b=label_b))
        treatment = pairs["treatment"].iloc[0] if len(pairs) else ""
        blocks: list = [
            f"A = {label_a}, B = {label_b}. Jobs aligned by their override keys"
            + (f"; the treatment (keys whose values differ, matched by rank): {treatment}." if treatment
               else "; the two folders ran the same sweep points.")
            + f" Per metric: difference of the {statistic} (B - A) over measured requests, 95% bootstrap (BCa) "
              "confidence interval; significant when it excludes zero.",
            Table(pairs[["pair", "a_job", "b_job", "matched"]], "aligned jobs")]
        if len(differences):
            significant = differences.groupby("metric")["significant"].agg(["sum", "size"])
            blocks.append("Significant: " + "; ".join(f"{m} in {int(r['sum'])}/{int(r['size'])} pairs"
                                                      for m, r in significant.iterrows()))
            blocks.append(Table(differences.drop(columns=["a_job"]), "differences (ms)"))
            plot = plots.ab_differences(differences, jobs, label_a, label_b)
            if plot is not None:
                blocks.append(save_plot(plot, out, report))
        sections.append(Section(f"A/B: {label_b} vs {label_a}", blocks))
    if all_pairs:
        write_csv(pd.concat(all_pairs, ignore_index=True), out / "ab_pairs.csv", report)
    if all_differences:
        write_csv(pd.concat(all_differences, ignore_index=True), out / "ab.csv", report)
    return sections


def save_plot(plot: plots.Plot, out: Path, report: Report) -> Image:
    report.files.extend(plot.save(out / "plots"))
    return Image(f"plots/{plot.stem}.svg", plot.caption)


def write_csv(frame: pd.DataFrame, path: Path, report: Report) -> None:
    frame.to_csv(path, index=False)
    report.files.append(path)


def build_report(folders: list[str | Path], out: str | Path, table: str | None = None,
                 ab_statistic: str = "median") -> Report:
    """Loads the folders and writes every output into `out`; returns the jobs and the written files.

    `table` forces one experiment's table; `ab_statistic` (median or mean) is what the A/B compares.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = load_jobs(folders)
    if jobs.empty:
        raise FileNotFoundError(f"no job directories (manifest.json or .hydra/config.yaml) under: "
                                f"{', '.join(map(str, folders))}")
    report = Report(jobs)
    sections = [runs_section(jobs)]
    jobs = unique_jobs(jobs)  # every per-job table and figure counts a job directory once
    write_csv(csv_ready(jobs), out / "jobs.csv", report)
    several = jobs["label"].nunique() > 1
    failures = failures_section(jobs)
    if failures:
        sections.append(failures)

    job_table = jobs[present_columns(jobs, JOB_COLUMNS[0 if several else 1:])]
    jobs_section = Section("Jobs", ["One row per job (every column in jobs.csv); latency in ms, throughput per s.",
                                    Table(job_table)])
    requests = load_requests(jobs, columns=ECDF_COLUMNS)
    for plot in (plots.latency_vs_prompt_len(jobs), plots.load_sweep(jobs), plots.latency_ecdf(requests, jobs)):
        if plot is not None:
            jobs_section.blocks.append(save_plot(plot, out, report))
    sections.append(jobs_section)

    for filename, (name, frame) in experiment_tables(jobs, table).items():
        write_csv(frame, out / filename, report)
        section = Section(f"Experiment {name}: {filename}", [Table(frame)])
        if filename == "memory.csv":
            plot = plots.memory_decomposition(jobs[jobs["name"] == name] if table is None else jobs)
            if plot is not None:
                section.blocks.append(save_plot(plot, out, report))
        sections.append(section)

    timing = sweep_timing(jobs)
    write_json_atomic(out / "sweep.json", timing[0] if len(timing) == 1 else timing)
    report.files.append(out / "sweep.json")
    sections.append(Section("Sweep timing", [
        "Per multirun folder: engine start and measurement summed over the jobs' summaries, against the wall "
        "time from the first job's start to the last job's end (seconds).", Table(pd.DataFrame(timing))]))

    repeats = repeat_variance(jobs)
    if len(repeats):
        write_csv(repeats, out / "repeats.csv", report)
        flagged = int(repeats["above_limit"].sum())
        sections.append(Section("Repeat variance", [
            f"Sweep points run more than once (differing only by seed or repeat): coefficient of variation of "
            f"TTFT and TPOT p50 across repeats; {flagged} of {len(repeats)} above {CV_LIMIT:.0%}.", Table(repeats)]))

    sections.extend(ab_sections(report.jobs, out, report, ab_statistic))

    deltas = scheduler_deltas(jobs)
    if len(deltas):
        write_csv(deltas, out / "scheduler_deltas.csv", report)
        section = Section("Aggregated vs disaggregated", [Table(deltas)])
        plot = plots.scheduler_delta_plot(deltas, jobs)
        if plot is not None:
            section.blocks.append(save_plot(plot, out, report))
        sections.append(section)

    goodput = distserve_goodput(jobs)
    if len(goodput):
        write_csv(goodput, out / "goodput.csv", report)
        sections.append(Section("DistServe goodput", [
            "The highest load of each rate or concurrency sweep at which SLO attainment >= 90% "
            "(mean over repeats), and the request rate measured there.", Table(goodput),
            Table(attainment_by_load(jobs), "SLO attainment per load")]))

    roofline = roofline_table(jobs)
    if len(roofline):
        sections.append(Section("Roofline", ["Measured p50 over the roofline floor the benchmark computed (ms).",
                                             Table(roofline)]))

    http_cost = http_cost_table(jobs)
    if len(http_cost):
        write_csv(http_cost, out / "http_cost.csv", report)
        sections.append(Section("HTTP stack cost", ["TTFT and TPOT p50 over HTTP minus in process, same model and "
                                                    "lengths (report/http_cost.py).", Table(http_cost)]))

    capability = plots.capability_vs_budget(jobs)
    if capability is not None:
        sections.append(Section("Capability", [save_plot(capability, out, report)]))

    sections.append(Section("Definitions", [DEFINITIONS]))
    title = "Run report: " + ", ".join(dict.fromkeys(report.jobs["label"]))
    for path, text in ((out / "report.md", to_markdown(title, sections)), (out / "report.html", to_html(title, sections))):
        path.write_text(text)
        report.files.append(path)
    report.sections = sections
    return report
