"""The report's sections, one builder each: a builder reads the loaded jobs from the ReportContext,
writes its files (tables, plots) through it and returns its section, several, or None when it does
not apply to these runs. `SECTIONS` is the report, in order; a new view is a new builder in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from context_research.metrics import prefix_cache
from context_research.metrics.measurement_warnings import CV_LIMIT
from context_research.records.atomic import write_json_atomic
from context_research.report import plots
from context_research.report.compare import compare_folders, scheduler_deltas
from context_research.report.document import Image, Section, Table
from context_research.report.goodput import attainment_by_load, distserve_goodput
from context_research.report.http_cost import http_cost_table
from context_research.report.loader import csv_ready, load_requests
from context_research.report.repeats import repeat_variance
from context_research.report.roofline import roofline_table
from context_research.report.sweep_timing import sweep_timing
from context_research.report.tables import (E7_NAMES, KV_CAPACITY_TOLERANCE_PCT, TABLES, WEIGHTS_TOLERANCE_PCT,
                                            experiment_table, experiment_tables, longest_context)

JOB_COLUMNS = ("label", "job", "status", "prompt_len", "output_len", "concurrency", "seed", "n_ok", "n_errors",
               "ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "tpot_p95_ms", "itl_p95_ms", "e2e_p50_ms", "req_s",
               "out_tok_s", "passed")
ECDF_COLUMNS = ["phase", "ok", "ttft_ms", "tpot_ms"]
TIMELINE_COLUMNS = ["phase", "ok", "arrival_s", "dispatch_s", "first_token_s", "last_token_s"]
CACHE_COLUMNS = ["phase", "ok", "prompt_tokens", prefix_cache.CACHED_TOKENS, "session_id", "turn"]
DEFINITIONS = (
    "Per request, all times from one monotonic clock: arrival, dispatch (handed to the engine), first_token, "
    "last_token. TTFT = first_token - dispatch; queue_wait = dispatch - arrival (reported, not hidden). "
    "TPOT = (last_token - first_token) / (output_tokens - 1), request-weighted. ITL = each gap between "
    "consecutive streamed outputs, pooled over requests. E2E = last_token - dispatch. Throughput: requests/s, "
    "output tokens/s, total tokens/s over first dispatch -> last completion. Goodput (vLLM's): requests meeting "
    "every SLO per second; SLO attainment = their share. DistServe goodput: the highest load at which attainment "
    ">= 90%. Transfer stall ratio = sum(kv_wait_s) / sum(TTFT). Roofline: measured p50 / floor.")


@dataclass
class ReportContext:
    """What every builder reads (the jobs: `all_jobs` as loaded, a folder given twice loads twice for
    an A/B against itself; `jobs` each job directory once) and where it writes (`out`, `files`)."""

    all_jobs: pd.DataFrame
    jobs: pd.DataFrame
    out: Path
    table: str | None = None
    ab_statistic: str = "median"
    files: list[Path] = field(default_factory=list)

    def write_csv(self, frame: pd.DataFrame, name: str) -> None:
        path = self.out / name
        frame.to_csv(path, index=False)
        self.files.append(path)

    def write_json(self, payload, name: str) -> None:
        path = self.out / name
        write_json_atomic(path, payload)
        self.files.append(path)

    def save_plot(self, plot: plots.Plot) -> Image:
        self.files.extend(plot.save(self.out / "plots"))
        return Image(f"plots/{plot.stem}.svg", plot.caption)


SectionBuilder = Callable[[ReportContext], "Section | list[Section] | None"]


def present_columns(frame: pd.DataFrame, columns) -> list[str]:
    return [c for c in columns if c in frame]


def runs_section(report: ReportContext) -> Section:
    """What was loaded: jobs per folder and status, the models, engines, schedulers and GPUs."""
    jobs = report.all_jobs
    counts = jobs.groupby(["label", "folder"], sort=False)["status"].value_counts().unstack(fill_value=0)
    counts.insert(0, "jobs", counts.sum(axis=1))
    counts.columns.name = None
    section = Section("Runs", [Table(counts.reset_index())])
    for column in ("model", "engine", "scheduler", "gpu"):
        values = ", ".join(str(v) for v in dict.fromkeys(jobs[column].dropna()))
        section.blocks.append(f"{column}: {values or 'unknown'}")
    return section


def failures_section(report: ReportContext) -> Section | None:
    failed = report.jobs[report.jobs["status"] != "completed"]
    if failed.empty:
        return None
    return Section("Jobs not completed", [
        "Failed, interrupted, still-running and unrecorded jobs, with the error their manifest holds.",
        Table(failed[["label", "job", "status", "error", "overrides"]].reset_index(drop=True))])


def jobs_section(report: ReportContext) -> Section:
    """One row per job (all of it in jobs.csv) and the latency plots over the jobs."""
    jobs = report.jobs
    report.write_csv(csv_ready(jobs), "jobs.csv")
    several = jobs["label"].nunique() > 1
    section = Section("Jobs", ["One row per job (every column in jobs.csv); latency in ms, throughput per s.",
                               Table(jobs[present_columns(jobs, JOB_COLUMNS[0 if several else 1:])])])
    requests = load_requests(jobs, columns=ECDF_COLUMNS)
    for plot in (plots.latency_vs_prompt_len(jobs), plots.load_sweep(jobs), plots.latency_ecdf(requests, jobs)):
        if plot is not None:
            section.blocks.append(report.save_plot(plot))
    return section


def experiment_sections(report: ReportContext) -> list[Section]:
    """Each experiment's own table (report/tables.py), with E5's memory plot."""
    sections = []
    for filename, (name, frame) in experiment_tables(report.jobs, report.table).items():
        report.write_csv(frame, filename)
        section = Section(f"Experiment {name}: {filename}", [Table(frame)])
        if filename == "memory.csv":
            chosen = report.jobs if report.table else report.jobs[report.jobs["name"] == name]
            plot = plots.memory_decomposition(chosen)
            if plot is not None:
                section.blocks.append(report.save_plot(plot))
        sections.append(section)
    return sections


def fits_section(report: ReportContext) -> Section | None:
    """E7: what fits per memory budget, precision, prompt and concurrency (a heatmap of fits.csv), the
    longest native context per budget and precision, and the acceptance's checks on each engine."""
    if report.table is not None and report.table not in E7_NAMES:
        return None
    jobs = report.jobs if report.table is not None else report.jobs[report.jobs["name"].isin(E7_NAMES)]
    if jobs.empty:
        return None
    table = experiment_table(jobs, TABLES["e7"])
    longest = longest_context(table)
    report.write_csv(longest, "longest_context.csv")
    blocks: list = [
        "Each budget is emulated memory on one GPU (hardware/budget.py): latencies are that GPU's compute "
        f"(compute_hardware: {', '.join(map(str, dict.fromkeys(table['compute_hardware'].dropna()))) or 'unknown'}) "
        "under the budget's memory, not a smaller card's. fits.csv has one row per job; the verdict (`outcome`): "
        "does not fit (the engine or a request failed), preempts (vLLM preempted requests), fits."]
    plot = plots.fits_heatmap(table, jobs)
    if plot is not None:
        blocks.append(report.save_plot(plot))
    blocks += [acceptance_line(longest), Table(longest, "the longest prompt that ran alone, per budget and precision "
                                                        "(longest_context.csv), with each engine's checks")]
    return Section("What fits (E7)", blocks)


def acceptance_line(longest: pd.DataFrame) -> str:
    """How many engines meet the acceptance: KV capacity within 5%, fp8 weights within 2%."""
    def count(rows: pd.DataFrame, check: str, error: str) -> str:
        known = rows[rows[check].notna()]
        worst = known[error].abs().max() if len(known) else float("nan")
        return f"{int(known[check].astype(bool).sum())} of {len(known)} (largest |error| {worst:.2f}%)"

    fp8_weights = longest[longest["precision"].astype(str).str.match(r"^fp8($| weights)")]
    return (f"vLLM's KV capacity within {KV_CAPACITY_TOLERANCE_PCT:g}% of the fit check's prediction: "
            f"{count(longest, 'kv_capacity_within_5pct', 'kv_capacity_error_pct')} engines; FP8 weights within "
            f"{WEIGHTS_TOLERANCE_PCT:g}% of the predicted bytes: "
            f"{count(fp8_weights, 'weights_within_2pct', 'weights_error_pct')} FP8-weight engines.")


def sweep_timing_section(report: ReportContext) -> Section:
    timing = sweep_timing(report.jobs)
    report.write_json(timing[0] if len(timing) == 1 else timing, "sweep.json")
    return Section("Sweep timing", [
        "Per multirun folder: engine start and measurement summed over the jobs' summaries, against the wall "
        "time from the first job's start to the last job's end (seconds).", Table(pd.DataFrame(timing))])


def repeats_section(report: ReportContext) -> Section | None:
    repeats = repeat_variance(report.jobs)
    if not len(repeats):
        return None
    report.write_csv(repeats, "repeats.csv")
    flagged = int(repeats["above_limit"].sum())
    return Section("Repeat variance", [
        f"Sweep points run more than once (differing only by seed or repeat): coefficient of variation of "
        f"TTFT and TPOT p50 across repeats; {flagged} of {len(repeats)} above {CV_LIMIT:.0%}.", Table(repeats)])


def ab_sections(report: ReportContext) -> list[Section]:
    """Each later folder against the first: B - A per metric, with its bootstrap interval."""
    jobs, statistic = report.all_jobs, report.ab_statistic
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
                blocks.append(report.save_plot(plot))
        sections.append(Section(f"A/B: {label_b} vs {label_a}", blocks))
    if all_pairs:
        report.write_csv(pd.concat(all_pairs, ignore_index=True), "ab_pairs.csv")
    if all_differences:
        report.write_csv(pd.concat(all_differences, ignore_index=True), "ab.csv")
    return sections


def scheduler_section(report: ReportContext) -> Section | None:
    deltas = scheduler_deltas(report.jobs)
    if not len(deltas):
        return None
    report.write_csv(deltas, "scheduler_deltas.csv")
    section = Section("Aggregated vs disaggregated", [Table(deltas)])
    plot = plots.scheduler_delta_plot(deltas, report.jobs)
    if plot is not None:
        section.blocks.append(report.save_plot(plot))
    return section


def goodput_section(report: ReportContext) -> Section | None:
    goodput = distserve_goodput(report.jobs)
    if not len(goodput):
        return None
    report.write_csv(goodput, "goodput.csv")
    by_load = attainment_by_load(report.jobs)
    section = Section("DistServe goodput", [
        "The highest load of each rate or concurrency sweep at which SLO attainment >= 90% "
        "(mean over repeats), and the request rate measured there.", Table(goodput),
        Table(by_load, "SLO attainment per load")])
    plot = plots.goodput_attainment(by_load, goodput, report.jobs)
    if plot is not None:
        section.blocks.append(report.save_plot(plot))
    return section


def latency_throughput_section(report: ReportContext) -> Section | None:
    """The Pareto curve of latency against throughput across a load sweep's points."""
    plot = plots.latency_vs_throughput(report.jobs)
    if plot is None:
        return None
    return Section("Latency vs throughput", [
        "Each load sweep's points by output throughput and latency: the Pareto-efficient points (no other "
        "point of the sweep has more throughput and less latency) are the operating points worth choosing.",
        report.save_plot(plot)])


# what makes two jobs of a folder different workloads, each worth its own timeline (E8's trace and sessions)
WORKLOAD_COLUMNS = ("arrival_process", "workload_source")


def timeline_jobs(jobs: pd.DataFrame) -> list:
    """Per folder and workload (arrival process and data source), the index of the job a timeline
    shows: the completed one under the highest load (the most contention), else the first completed one."""
    done = jobs[(jobs["status"] == "completed") & jobs["has_requests"]]
    workload = [c for c in WORKLOAD_COLUMNS if c in done]
    chosen = []
    for _, group in done.groupby(["label", *workload], sort=False, dropna=False):
        axis = next((a for a in plots.LOAD_AXES if a in group and group[a].nunique() > 1), None)
        chosen.append(pd.to_numeric(group[axis], errors="coerce").idxmax() if axis else group.index[0])
    return sorted(chosen)


def timeline_section(report: ReportContext) -> Section | None:
    """Queue, prefill and decode of each request over time, for one job per folder."""
    blocks: list = []
    for index in timeline_jobs(report.jobs):
        requests = load_requests(report.jobs.loc[[index]], columns=TIMELINE_COLUMNS)
        plot = plots.request_timeline(requests, report.jobs.loc[index])
        if plot is not None:
            blocks.append(report.save_plot(plot))
    if not blocks:
        return None
    return Section("Request timeline", [
        "Per folder and workload (arrival process and data source), the job under the highest load (else its "
        "first job): where each measured request spent its time (plots.request_timeline draws any job).", *blocks])


def prefix_cache_section(report: ReportContext) -> Section | None:
    """Prefix-cache hit rates the engines reported: per job, and per turn and session of multi-turn runs."""
    jobs = report.jobs
    if "prefix_cache_hit_rate" not in jobs or jobs["prefix_cache_hit_rate"].isna().all():
        return None
    reported = jobs[jobs["prefix_cache_hit_rate"].notna()]
    table = reported[present_columns(reported, ("label", "job", "engine", "prefix_cache_hit_rate",
                                                "cached_prompt_tokens", "measured_prompt_tokens"))]
    report.write_csv(table, "prefix_cache.csv")
    section = Section("Prefix cache", [
        "Prompt tokens the engine served from its prefix cache over all prompt tokens of the measured requests "
        "(the engine's own num_cached_tokens per request).", Table(table.reset_index(drop=True))])
    requests = load_requests(reported, columns=CACHE_COLUMNS)
    if "turn" in requests and requests["turn"].notna().any():
        requests = requests[requests["ok"].astype(bool) & requests["turn"].notna()]
        by_turn = (requests.groupby(["label", "job", "turn"])[["prompt_tokens", prefix_cache.CACHED_TOKENS]]
                   .apply(prefix_cache.hit_rate).rename("hit_rate").reset_index())
        by_session = (requests.groupby(["label", "job", "session_id"])[["prompt_tokens", prefix_cache.CACHED_TOKENS]]
                      .apply(prefix_cache.hit_rate).groupby(["label", "job"])
                      .describe(percentiles=[0.5])[["count", "min", "50%", "max"]]
                      .rename(columns={"count": "sessions", "50%": "p50"}).reset_index())
        report.write_csv(by_turn, "prefix_cache_by_turn.csv")
        section.blocks += [Table(by_turn.pivot(index=["label", "job"], columns="turn", values="hit_rate")
                                 .rename(columns=lambda turn: f"turn {int(turn)}").reset_index(), "hit rate per turn"),
                           Table(by_session, "hit rate per session (over the sessions of each job)")]
        plot = plots.prefix_cache_by_turn(by_turn, report.jobs)
        if plot is not None:
            section.blocks.append(report.save_plot(plot))
    return section


def warnings_section(report: ReportContext) -> Section | None:
    """What makes figures less than they look: each job's recorded warnings and the repeats whose
    variation is above the plan's bar."""
    rows = []
    if "warnings" in report.jobs:
        for _, job in report.jobs.iterrows():
            for warning in job_warnings(job["warnings"]):
                rows.append({"label": job["label"], "jobs": job["job"], "warning": warning})
    repeats = repeat_variance(report.jobs)
    for _, point in (repeats[repeats["above_limit"]].iterrows() if len(repeats) else ()):
        cvs = ", ".join(f"{c[:-3]} {point[c]:.1%}" for c in point.index if c.endswith("_cv"))
        rows.append({"label": point["folders"], "jobs": point["point"],
                     "warning": f"CV across {point['n_repeats']} repeats above {CV_LIMIT:.0%}: {cvs}"})
    if not rows:
        return None
    # one row per warning and folder, naming the jobs it concerns (by their sweep number where they have one)
    table = (pd.DataFrame(rows).groupby(["label", "warning"], sort=False)["jobs"]
             .agg(lambda jobs: ", ".join(str(j).split("_")[0] for j in jobs) if len(jobs) > 1 else jobs.iloc[0])
             .reset_index()[["label", "jobs", "warning"]])
    return Section("Warnings", ["Percentiles from too few measured requests, and measurements less stable than "
                                f"the plan's bar (CV above {CV_LIMIT:.0%}).", Table(table)])


def job_warnings(value) -> list[str]:
    """A job's `warnings` column (the loader writes lists as JSON text) as a list."""
    if isinstance(value, str):
        return list(json.loads(value))
    return list(value) if isinstance(value, (list, tuple)) else []


def roofline_section(report: ReportContext) -> Section | None:
    roofline = roofline_table(report.jobs)
    if not len(roofline):
        return None
    return Section("Roofline", [
        "Measured p50 over the roofline floor the benchmark computed (ms), for the jobs whose hardware's peaks "
        "are known (a CPU run has no GPU floors).", Table(roofline)])


def http_cost_section(report: ReportContext) -> Section | None:
    """What the HTTP stack adds: TTFT and TPOT over HTTP minus in process, per prompt length."""
    http_cost = http_cost_table(report.jobs)
    if not len(http_cost):
        return None
    report.write_csv(http_cost, "http_cost.csv")
    return Section("HTTP stack cost", ["TTFT and TPOT p50 over HTTP minus in process, same model and lengths "
                                       "(report/http_cost.py).", Table(http_cost)])


def capability_section(report: ReportContext) -> Section | None:
    capability = plots.capability_vs_budget(report.jobs)
    return Section("Capability", [report.save_plot(capability)]) if capability is not None else None


def definitions_section(report: ReportContext) -> Section:
    return Section("Definitions", [DEFINITIONS])


SECTIONS: list[SectionBuilder] = [
    runs_section,
    failures_section,
    warnings_section,
    jobs_section,
    experiment_sections,
    fits_section,
    sweep_timing_section,
    repeats_section,
    ab_sections,
    scheduler_section,
    goodput_section,
    latency_throughput_section,
    timeline_section,
    prefix_cache_section,
    roofline_section,
    http_cost_section,
    capability_section,
    definitions_section,
]
