"""Seaborn figures chosen by what the runs contain; each carries its units and the model, engine
and GPU in its title and caption.

Every function returns a `Plot` (or None when the records hold nothing it could show). Figures
are plain `matplotlib.figure.Figure` objects (no pyplot state), so the CLI saves them and a
notebook displays them. Repeats (seeds) at one point are drawn as their mean with a ±1 SD band.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import Formatter

from context_research.report.alignment import is_repeat_key
from context_research.report.goodput import ATTAINMENT_TARGET, LOAD_KEYS
from context_research.report.pareto import pareto_efficient
from context_research.report.tables import column_value

STYLE = "whitegrid"
MEMORY_COMPONENTS = ("weights_gb", "kv_cache_gb", "activations_gb", "cuda_graph_gb", "torch_cache_gb",
                     "non_torch_gb")
BUDGET_AXES = ("token_budget", "budget", "prompt_len")
LOAD_AXES = {"concurrency": "concurrency (requests in flight)", "request_rate": "request rate (requests/s)"}
PAIR_LABEL_CHARS = 34  # A/B pair names wrap at this width
MAX_TIMELINE_REQUESTS = 200  # a timeline draws at most this many requests, evenly sampled by arrival
# a timeline's bars: (phase, from column, to column, colour)
TIMELINE_PHASES = (("queue", "arrival_s", "dispatch_s", "0.7"),
                   ("prefill", "dispatch_s", "first_token_s", "tab:orange"),
                   ("decode", "first_token_s", "last_token_s", "tab:blue"))


@dataclass
class Plot:
    stem: str  # file name without extension
    figure: Figure
    caption: str

    def save(self, folder: Path) -> list[Path]:
        """Writes `<stem>.png` and `<stem>.svg` into folder."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{self.stem}.{fmt}" for fmt in ("png", "svg")]
        for path in paths:
            self.figure.savefig(path, dpi=120, bbox_inches="tight")
        return paths


def setting(jobs: pd.DataFrame) -> str:
    """'model tiny_qwen3 · engine hf · GPU CPU' for the jobs a figure shows."""
    def values(column: str) -> str:
        found = [str(v) for v in dict.fromkeys(jobs[column]) if pd.notna(v)] if column in jobs else []
        return ", ".join(found) or "unknown"

    return f"model {values('model')} · engine {values('engine')} · GPU {values('gpu')}"


def series_names(jobs: pd.DataFrame, axis: str | None = None) -> pd.Series:
    """A name per job from what tells the plotted jobs apart (folder, overrides), axis and repeats excluded
    (on a load axis, every override that sets the load: `benchmark.arrival.rate` for `request_rate`)."""
    def on_axis(key: str) -> bool:
        return key == axis or (axis in LOAD_AXES and key.rsplit(".", 1)[-1] in LOAD_KEYS)

    keys = sorted({k for o in jobs["override_map"] for k in o
                   if not on_axis(k) and k != "experiment" and not is_repeat_key(k)})
    varying = [k for k in keys if len({o.get(k) for o in jobs["override_map"]}) > 1]
    several_folders = jobs["label"].nunique() > 1

    def name(job: pd.Series) -> str:
        parts = [job["label"]] if several_folders else []
        parts += [f"{k}={job['override_map'][k]}" for k in varying if k in job["override_map"]]
        return " · ".join(parts) or "all jobs"

    return jobs.apply(name, axis=1)


def new_figure(columns: int, width: float = 5.2, height: float = 3.8) -> tuple[Figure, list]:
    with sns.axes_style(STYLE):
        figure = Figure(figsize=(width * columns, height), layout="constrained")
        axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def sweep_axis(ax, values: pd.Series) -> None:
    """Ticks at the swept values; a log2 scale when they span a factor of 8 or more."""
    values = np.sort(pd.to_numeric(values, errors="coerce").dropna().unique())
    if len(values) and values.min() > 0 and values.max() / values.min() >= 8:
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
    if 0 < len(values) <= 12:
        ax.set_xticks(values, [f"{v:g}" for v in values])


def legend_outside(axes: list) -> None:
    """One legend (the last panel's), right of the figure, so no curve hides under it."""
    for ax in axes[:-1]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), fontsize="small", frameon=False)


class PlainLogFormatter(Formatter):
    """Log-axis labels written plainly (1, 10, 100, 0.05: not 10^0), major ticks always; minor ticks
    (2, 3, ... x a power of ten) labelled where the axis spans too few decades for its major ticks
    to read it by: 2 and 5 below two decades, 2, 3 and 5 below one, every one below half of one."""

    def __init__(self, minor: bool = False) -> None:
        self.minor = minor

    def __call__(self, value: float, pos=None) -> str:
        if value <= 0:
            return ""
        if self.minor:
            low, high = sorted(self.axis.get_view_interval())
            decades = math.log10(high / low) if low > 0 else math.inf
            mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
            labelled = (range(1, 10) if decades < 0.5 else (2, 3, 5) if decades < 1 else (2, 5) if decades < 2
                        else ())
            if mantissa not in labelled:
                return ""
        return f"{value:g}"


def plain_log_scale(ax, axis: str = "x") -> None:
    """Log scale with plain labels, enough of them to read even a span of less than a decade."""
    ax.set(**{f"{axis}scale": "log"})
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(PlainLogFormatter())
    target.set_minor_formatter(PlainLogFormatter(minor=True))


def completed(jobs: pd.DataFrame, axis: str | None = None) -> pd.DataFrame:
    """The completed jobs (that have a value on `axis`, when given)."""
    done = jobs[jobs["status"] == "completed"]
    return done[done[axis].notna()] if axis is not None and axis in done else done


def natural_order(values) -> list:
    """`concurrency=4` before `concurrency=16`."""
    return sorted(dict.fromkeys(values), key=lambda v: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", v)])


def latency_vs_prompt_len(jobs: pd.DataFrame) -> Plot | None:
    """TTFT and TPOT, p50 and p95 (ms), against prompt length (tokens)."""
    done = completed(jobs, "prompt_len")
    if "prompt_len" not in done or done["prompt_len"].nunique() < 2:
        return None
    done = done.assign(series=series_names(done, "prompt_len"))
    long = done.melt(id_vars=["prompt_len", "series"],
                     value_vars=[c for c in ("ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "tpot_p95_ms") if c in done],
                     var_name="column", value_name="ms")
    long["metric"] = long["column"].str.split("_").str[0].str.upper()
    long["percentile"] = long["column"].str.split("_").str[1]
    figure, axes = new_figure(2)
    for ax, metric in zip(axes, ("TTFT", "TPOT")):
        data = long[long["metric"] == metric]
        sns.lineplot(data=data, x="prompt_len", y="ms", hue="series" if done["series"].nunique() > 1 else None,
                     style="percentile", markers=True, errorbar="sd", ax=ax)
        sweep_axis(ax, data["prompt_len"])
        ax.set(xlabel="prompt length (tokens)", ylabel=f"{metric} (ms)", title=f"{metric} p50 / p95")
    legend_outside(axes)
    context = setting(done)
    figure.suptitle(f"TTFT and TPOT vs prompt length — {context}")
    return Plot("latency_vs_prompt_len", figure,
                f"TTFT and TPOT (ms; p50 solid, p95 dashed) against prompt length (tokens); {context}. "
                "Repeats at one length: mean with ±1 SD band.")


def load_sweep(jobs: pd.DataFrame) -> Plot | None:
    """Throughput (tokens/s), p95 latencies (ms) and goodput (requests/s) against the offered load:
    concurrency (closed loop) or request rate (open loop), whichever the jobs sweep."""
    axis = next((a for a in LOAD_AXES if a in jobs and completed(jobs, a)[a].nunique() > 1), None)
    if axis is None:
        return None
    done = completed(jobs, axis)
    done = done.assign(series=series_names(done, axis))
    axis_label = LOAD_AXES[axis]
    hue = "series" if done["series"].nunique() > 1 else None  # drawn as line style in every panel
    panels = [("out_tok_s", "output throughput (tokens/s)"), ("total_tok_s", "total throughput (tokens/s)")]
    goodput = "goodput_req_s" if "goodput_req_s" in done and done["goodput_req_s"].notna().any() else "req_s"
    panels.append((goodput, "goodput (requests/s)" if goodput == "goodput_req_s" else "requests/s"))
    figure, axes = new_figure(4, width=4.4)
    for ax, (column, label) in zip(axes, panels):
        if column in done:
            sns.lineplot(data=done, x=axis, y=column, style=hue, color="0.25", marker="o", errorbar="sd",
                         ax=ax)
        ax.set(xlabel=axis_label, ylabel=label, title=label)
        sweep_axis(ax, done[axis])
    latency = done.melt(id_vars=[axis, "series"],
                        value_vars=[c for c in ("ttft_p95_ms", "tpot_p95_ms", "itl_p95_ms") if c in done],
                        var_name="metric", value_name="ms")
    latency["metric"] = latency["metric"].str.replace("_p95_ms", "").str.upper()
    sns.lineplot(data=latency, x=axis, y="ms", hue="metric", style=hue, marker="o", errorbar="sd",
                 ax=axes[3])
    axes[3].set(xlabel=axis_label, ylabel="p95 latency (ms)", title="p95 latency (ms)")
    plain_log_scale(axes[3], "y")
    sweep_axis(axes[3], done[axis])
    legend_outside(axes)
    context = setting(done)
    figure.suptitle(f"Throughput, goodput and p95 latency vs {axis.replace('_', ' ')} — {context}")
    return Plot(f"load_vs_{axis}", figure,
                f"Throughput (tokens/s), {'goodput' if goodput == 'goodput_req_s' else 'request rate'} (requests/s) "
                f"and p95 TTFT/TPOT/ITL (ms, log scale) against {axis_label}; {context}.")


def scheduler_delta_plot(deltas: pd.DataFrame, jobs: pd.DataFrame) -> Plot | None:
    """Disaggregated vs aggregated, % change per metric and sweep point."""
    if deltas.empty:
        return None
    figure, axes = new_figure(1, width=max(6.0, 1.2 * deltas["point"].nunique() + 4))
    sns.barplot(data=deltas, x="point", y="delta_pct", hue="metric", errorbar="sd", ax=axes[0],
                order=natural_order(deltas["point"]))
    legend_outside(axes)
    axes[0].axhline(0, color="black", linewidth=0.8)
    axes[0].set_yscale("symlog", linthresh=10)  # changes of a few % and of many-fold on one axis
    axes[0].set(xlabel="sweep point", ylabel="disaggregated vs aggregated (%, symlog)")
    axes[0].tick_params(axis="x", labelrotation=20)
    context = setting(completed(jobs))
    figure.suptitle(f"Disaggregated vs aggregated — {context}")
    return Plot("scheduler_deltas", figure,
                f"Relative change (%) of latency (ms), throughput (tokens/s) and goodput (requests/s) from the "
                f"aggregated to the disaggregated scheduler at matched sweep points; {context}.")


def capability_vs_budget(jobs: pd.DataFrame) -> Plot | None:
    """Capability score(s) against the token budget (prompt tokens)."""
    done = completed(jobs)
    scores = [c for c in done.columns if (c == "score" or c.endswith("_score") or c.startswith(("score.", "scores.")))
              and pd.to_numeric(done[c], errors="coerce").notna().any()]
    axis = next((a for a in BUDGET_AXES if a in done and done[a].nunique() > 1), None)
    if not scores or axis is None:
        return None
    long = done.melt(id_vars=[axis], value_vars=scores, var_name="score", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    figure, axes = new_figure(1, width=6.5)
    sns.lineplot(data=long, x=axis, y="value", hue="score", marker="o", errorbar="sd", ax=axes[0])
    sweep_axis(axes[0], long[axis])
    axes[0].set(xlabel=f"{axis.replace('_', ' ')} (tokens)", ylabel="score (task metric, 0-1 or %)")
    context = setting(done)
    figure.suptitle(f"Capability vs token budget — {context}")
    return Plot("capability_vs_budget", figure,
                f"Task scores (each in its official metric's unit) against {axis.replace('_', ' ')} (tokens); {context}.")


def memory_decomposition(jobs: pd.DataFrame) -> Plot | None:
    """Stacked GPU memory components (GB) per job, NVML's used memory as a marker."""
    done = completed(jobs)
    names = series_names(done).to_numpy() if len(done) else []
    parts = pd.DataFrame({c: [column_value(job, c) for _, job in done.iterrows()]
                          for c in (*MEMORY_COMPONENTS, "nvml_used_gb")}, index=names).apply(pd.to_numeric,
                                                                                            errors="coerce")
    parts = parts[parts[list(MEMORY_COMPONENTS)].notna().any(axis=1)]
    nvml = parts.pop("nvml_used_gb")
    parts = parts.loc[:, parts.notna().any()]
    if parts.empty:
        return None
    figure, axes = new_figure(1, width=max(6.0, 0.8 * len(parts) + 3))
    parts.fillna(0.0).plot.bar(stacked=True, ax=axes[0], color=sns.color_palette("deep", len(parts.columns)),
                               width=0.75)
    if nvml.notna().any():
        axes[0].scatter(np.arange(len(nvml)), nvml, color="black", marker="_", s=400, label="NVML used", zorder=3)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small", frameon=False)
    axes[0].set(xlabel="job", ylabel="GPU memory (GB)")
    axes[0].tick_params(axis="x", labelrotation=30)
    context = setting(done)
    figure.suptitle(f"Memory decomposition — {context}")
    return Plot("memory_decomposition", figure,
                f"GPU memory per job (GB, 1e9 bytes): {', '.join(c[:-3] for c in parts.columns)} stacked; "
                f"black bar: NVML used memory at peak; {context}.")


def latency_ecdf(requests: pd.DataFrame, jobs: pd.DataFrame) -> Plot | None:
    """Distribution (ECDF) of per-request TTFT and TPOT (ms) per job series."""
    if requests.empty or "ttft_ms" not in requests:
        return None
    done = completed(jobs)
    names = dict(zip(zip(done["label"], done["job"]), series_names(done)))
    data = requests[requests["ok"].astype(bool)]
    data = data.assign(series=[names.get(key) for key in zip(data["label"], data["job"])]).dropna(subset=["series"])
    figure, axes = new_figure(2)
    hue = "series" if data["series"].nunique() > 1 else None
    for ax, metric in zip(axes, ("ttft_ms", "tpot_ms")):
        sns.ecdfplot(data=data, x=metric, hue=hue, ax=ax)
        ax.set(xlabel=f"{metric[:-3].upper()} (ms)", ylabel="share of requests")
        plain_log_scale(ax)
    legend_outside(axes)
    context = setting(done)
    figure.suptitle(f"Per-request TTFT and TPOT — {context}")
    return Plot("latency_ecdf", figure,
                f"Empirical CDF of per-request TTFT and TPOT (ms, log scale), measured requests pooled over "
                f"repeats; {context}.")


def ab_differences(differences: pd.DataFrame, jobs: pd.DataFrame, label_a: str, label_b: str) -> Plot | None:
    """B - A difference (ms) of the compared statistic with its 95% bootstrap interval, per metric and pair."""
    if differences.empty:
        return None
    data = differences[differences["metric"].isin(["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"])].reset_index(drop=True)
    metrics = list(dict.fromkeys(data["metric"]))
    pairs = [textwrap.fill(pair, PAIR_LABEL_CHARS) for pair in dict.fromkeys(data["pair"])]
    lines = sum(pair.count("\n") + 1 for pair in pairs)
    figure, axes = new_figure(len(metrics), width=3.6, height=0.3 * lines + 0.25 * len(pairs) + 2.2)
    for ax, metric in zip(axes, metrics):
        rows = data[data["metric"] == metric].reset_index(drop=True)
        for significant, color in ((False, "tab:gray"), (True, "tab:red")):
            chosen = rows[rows["significant"] == significant]
            ax.errorbar(chosen["diff"], chosen.index, fmt="o", color=color, capsize=3,
                        xerr=[chosen["diff"] - chosen["ci_low"], chosen["ci_high"] - chosen["diff"]])
        ax.axvline(0, color="black", linewidth=0.8)
        # the pair names once, left of the first panel; the folder names in the title, not on every axis
        ax.set_yticks(rows.index, [textwrap.fill(p, PAIR_LABEL_CHARS) for p in rows["pair"]] if ax is axes[0]
                      else [""] * len(rows), fontsize="small")
        ax.set(xlabel="B − A (ms)", title=metric[:-3].upper())
        ax.tick_params(axis="x", labelrotation=30)
    context = setting(jobs[jobs["label"].isin([label_a, label_b])])
    figure.suptitle(textwrap.fill(f"A/B: B = {label_b}, A = {label_a} — {context}", 40 * len(metrics)))
    return Plot(f"ab_{label_a}_vs_{label_b}".replace("/", "_").replace("#", "_"), figure,
                f"Difference in {data['statistic'].iloc[0]} latency (ms) of {label_b} minus {label_a} per aligned "
                f"job pair, with the 95% "
                f"bootstrap confidence interval over requests; red: the interval excludes zero; {context}.")


PRECISION_ORDER = ("bf16", "fp8_kv", "fp8")  # conf/precision/, least to most compressed
OUTCOMES = ("does not fit", "preempts", "fits")  # report/tables.py `outcome`, worst first
OUTCOME_COLORS = ("#d9534f", "#f0ad4e", "#5cb85c")


def thousands(tokens: float) -> str:
    """8192 -> '8K'."""
    return f"{tokens / 1024:g}K" if tokens >= 1024 and tokens % 1024 == 0 else f"{tokens:g}"


def outcome_label(row: pd.Series) -> str:
    """A cell's text: TTFT p50 (s) where it fits, the preemptions where it preempts, a dash where it does not fit."""
    if row["outcome"] == "fits":
        return f"{row['ttft_p50_ms'] / 1e3:.2g}s" if pd.notna(row["ttft_p50_ms"]) else "ok"
    if row["outcome"] == "preempts":
        return f"{row['preemptions']:g}p"
    return "–"


def fits_heatmap(fits_table: pd.DataFrame, jobs: pd.DataFrame) -> Plot | None:
    """E7 (fits.csv): does not fit / preempts / fits per precision (rows) and prompt x concurrency
    (columns), one panel per memory budget."""
    table = fits_table.dropna(subset=["budget_gb", "prompt_len", "concurrency"])
    if table.empty:
        return None
    table = table.assign(code=table["outcome"].map(OUTCOMES.index), label=table.apply(outcome_label, axis=1),
                         point=[f"{thousands(p)}×{c:g}" for p, c in zip(table["prompt_len"], table["concurrency"])])
    points = list(dict.fromkeys(table.sort_values(["prompt_len", "concurrency"])["point"]))
    found = set(table["precision"])
    precisions = [p for p in PRECISION_ORDER if p in found] + sorted(found - set(PRECISION_ORDER))
    budgets = sorted(table["budget_gb"].unique())
    figure, axes = new_figure(len(budgets), width=max(4.0, 0.55 * len(points) + 1.5), height=0.5 * len(precisions) + 2)
    colors = ListedColormap(OUTCOME_COLORS)
    for ax, budget in zip(axes, budgets):
        rows = table[table["budget_gb"] == budget]
        codes = rows.pivot_table(index="precision", columns="point", values="code", aggfunc="min")
        labels = rows.pivot_table(index="precision", columns="point", values="label", aggfunc="first")
        codes, labels = (frame.reindex(index=precisions, columns=points) for frame in (codes, labels))
        sns.heatmap(codes, cmap=colors, vmin=-0.5, vmax=len(OUTCOMES) - 0.5, annot=labels.fillna(""), fmt="",
                    mask=codes.isna(), linewidths=0.5, linecolor="white", cbar=ax is axes[-1], ax=ax,
                    annot_kws={"fontsize": "small"})
        ax.grid(False)
        ax.set(title=f"{budget:g} GB", xlabel="prompt (tokens) × concurrency", ylabel="precision" if ax is axes[0] else "")
        ax.tick_params(axis="x", labelrotation=60)
        ax.tick_params(axis="y", labelrotation=0)
    colorbar = axes[-1].collections[0].colorbar
    colorbar.set_ticks(range(len(OUTCOMES)), labels=list(OUTCOMES))
    context = setting(completed(jobs)) if len(completed(jobs)) else setting(jobs)
    hardware = ", ".join(str(v) for v in dict.fromkeys(fits_table["compute_hardware"].dropna())) or "unknown"
    figure.suptitle(f"What fits: memory budget × precision × prompt × concurrency — {context}")
    return Plot("fits_heatmap", figure,
                f"Per memory budget (GB, 1e9 bytes; panels), precision (rows) and prompt length × requests in flight "
                f"(columns): fits (green: TTFT p50 in s), preempts (orange: vLLM's preemptions over the job) or does "
                f"not fit (red: the engine or a request failed); blank: not run. Each budget is emulated memory on "
                f"{hardware}: the latencies are that GPU's compute under that memory, not a smaller card's; {context}.")


def load_axis_label(load_key: str) -> str:
    """The axis label of an override key that sets the offered load."""
    return LOAD_AXES["concurrency" if load_key.rsplit(".", 1)[-1] == "concurrency" else "request_rate"]


def distinct_parts(points: list[str]) -> list[str]:
    """Each `k=v k=v` string with the items every string shares left out (what tells them apart)."""
    items = [point.split() for point in points]
    shared = set.intersection(*map(set, items)) if items else set()
    return [" ".join(i for i in point if i not in shared) for point in items]


def goodput_attainment(by_load: pd.DataFrame, goodput: pd.DataFrame, jobs: pd.DataFrame) -> Plot | None:
    """SLO attainment against the offered load per sweep, the 90% target and each sweep's DistServe
    goodput marked (report/goodput.py computes both)."""
    data = by_load.dropna(subset=["slo_attainment", "load_value"]) if len(by_load) else by_load
    if data.empty:
        return None
    several_folders = data["label"].nunique() > 1
    data = data.assign(series=[" · ".join(filter(None, (label if several_folders else "", rest))) or "all jobs"
                               for label, rest in zip(data["label"], distinct_parts(list(data["sweep_point"])))])
    keys = list(dict.fromkeys(data["load_key"]))
    figure, axes = new_figure(len(keys), width=6.0)
    palette = dict(zip(dict.fromkeys(data["series"]), sns.color_palette("deep", data["series"].nunique())))
    for ax, key in zip(axes, keys):
        for (label, point, series), sweep in data[data["load_key"] == key].groupby(
                ["label", "sweep_point", "series"], sort=False):
            sweep = sweep.sort_values("load_value")
            ax.plot(sweep["load_value"], sweep["slo_attainment"], marker="o", color=palette[series], label=series)
            best = goodput[(goodput["label"] == label) & (goodput["sweep_point"] == point)
                           & (goodput["load_key"] == key)]["distserve_goodput"] if len(goodput) else pd.Series()
            if len(best) and not pd.isna(best.iloc[0]):
                at = sweep.loc[sweep["load_value"] == best.iloc[0], "slo_attainment"].iloc[0]
                ax.scatter([best.iloc[0]], [at], marker="*", s=260, color=palette[series], edgecolor="black",
                           zorder=3)
                ax.annotate(f"goodput {best.iloc[0]:g}", (best.iloc[0], at), textcoords="offset points",
                            xytext=(6, -14), fontsize="small")
        ax.axhline(ATTAINMENT_TARGET, color="black", linestyle="--", linewidth=0.9,
                   label=f"{ATTAINMENT_TARGET:.0%} target")
        ax.set(xlabel=load_axis_label(key), ylabel="SLO attainment (share of measured requests)",
               ylim=(-0.03, 1.05), title=f"SLO attainment vs {key}")
        ax.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
        sweep_axis(ax, data.loc[data["load_key"] == key, "load_value"])
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small", frameon=False)
    context = setting(completed(jobs))
    figure.suptitle(f"SLO attainment and DistServe goodput — {context}")
    return Plot("goodput_attainment", figure,
                f"SLO attainment (share of measured requests meeting every SLO, mean over repeats) against the "
                f"offered load per sweep; dashed: the {ATTAINMENT_TARGET:.0%} target; star: the DistServe goodput, "
                f"the highest load whose attainment reaches it; {context}.")


def latency_vs_throughput(jobs: pd.DataFrame) -> Plot | None:
    """TTFT and TPOT (p50, p99) against output throughput across a load sweep's points, per series
    (folder, engine, other swept keys), the Pareto-efficient points joined."""
    axis = next((a for a in LOAD_AXES if a in jobs and completed(jobs, a)[a].nunique() > 1), None)
    if axis is None or "out_tok_s" not in jobs:
        return None
    done = completed(jobs, axis)
    done = done.assign(series=series_names(done, axis))
    tail = "p99" if "ttft_p99_ms" in done and done["ttft_p99_ms"].notna().any() else "p95"
    panels = [c for c in ("ttft_p50_ms", f"ttft_{tail}_ms", "tpot_p50_ms", f"tpot_{tail}_ms")
              if c in done and done[c].notna().any()]
    if not panels:
        return None
    points = done.groupby(["series", axis], as_index=False, sort=False)[["out_tok_s", *panels]].mean()
    palette = dict(zip(dict.fromkeys(points["series"]), sns.color_palette("deep", points["series"].nunique())))
    figure, axes = new_figure(len(panels), width=4.4)
    for ax, column in zip(axes, panels):
        for series, sweep in points.groupby("series", sort=False):
            sweep = sweep.dropna(subset=["out_tok_s", column]).sort_values("out_tok_s")
            efficient = pareto_efficient(sweep["out_tok_s"], sweep[column])
            ax.scatter(sweep["out_tok_s"], sweep[column], color=palette[series], facecolors="none", s=36)
            ax.plot(sweep["out_tok_s"][efficient], sweep[column][efficient], marker="o", color=palette[series],
                    label=series)
            for x, y, load in zip(sweep["out_tok_s"], sweep[column], sweep[axis]):
                ax.annotate(f"{load:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small",
                            color=palette[series])
        metric, percentile = column.split("_")[:2]
        ax.set(xlabel="output throughput (tokens/s)", ylabel=f"{metric.upper()} {percentile} (ms)",
               title=f"{metric.upper()} {percentile}")
        values = pd.to_numeric(points[column], errors="coerce").dropna()
        if len(values) and values.min() > 0 and values.max() / values.min() >= 10:
            plain_log_scale(ax, "y")
    if points["series"].nunique() > 1:
        axes[-1].legend(fontsize="small")
        legend_outside(axes)
    context = setting(done)
    axis_name = LOAD_AXES[axis].split(" (")[0]
    figure.suptitle(f"Latency vs throughput across {axis_name} — {context}")
    return Plot("latency_vs_throughput", figure,
                f"TTFT and TPOT (ms, p50 and {tail}) against output throughput (tokens/s), one point per {axis_name} "
                f"(the number beside it; repeats averaged); filled and joined: the Pareto-efficient points (no "
                f"other point has more throughput and less latency), hollow: dominated ones; {context}.")


def timeline_sample(requests: pd.DataFrame, limit: int = MAX_TIMELINE_REQUESTS) -> tuple[pd.DataFrame, str]:
    """The requests a timeline draws, by arrival (`limit` of them evenly spaced in arrival order, the
    first included, when there are more), and what the caption says about them."""
    ordered = requests.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    if len(ordered) <= limit:
        return ordered, f"all {len(ordered)} measured requests"
    # the i-th drawn is the floor(i x n / limit)-th: distinct, every k-th exactly when n = k x limit
    picked = np.arange(limit) * len(ordered) // limit
    sample = ordered.iloc[picked].reset_index(drop=True)
    return sample, (f"a sample of {len(sample)} of the {len(ordered)} measured requests, evenly spaced in arrival "
                    f"order")


def request_timeline(requests: pd.DataFrame, job: pd.Series, limit: int = MAX_TIMELINE_REQUESTS) -> Plot | None:
    """One job's requests over time: queue (arrival -> dispatch), prefill (dispatch -> first token)
    and decode (first -> last token) bars, one row per request in arrival order (requests.parquet)."""
    needed = {start for _, start, _, _ in TIMELINE_PHASES} | {end for _, _, end, _ in TIMELINE_PHASES}
    if requests.empty or not needed <= set(requests.columns):
        return None
    shown, sampled = timeline_sample(requests, limit)
    figure, axes = new_figure(1, width=9.0, height=min(10.0, 2.2 + 0.035 * len(shown)))
    ax = axes[0]
    rows = np.arange(len(shown))
    for phase, start, end, color in TIMELINE_PHASES:
        width = (shown[end] - shown[start]).clip(lower=0)
        ax.barh(rows, width, left=shown[start], height=0.8, color=color, label=phase, linewidth=0)
    failed = ~shown["ok"].astype(bool) if "ok" in shown else pd.Series(False, index=shown.index)
    if failed.any():
        ax.scatter(shown.loc[failed, "dispatch_s"], rows[failed.to_numpy()], marker="x", color="tab:red",
                   label="failed", zorder=3)
    ax.invert_yaxis()
    ax.set(xlabel="time since the job's measurement began (s)", ylabel="request (in arrival order)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    context = setting(job.to_frame().T)
    figure.suptitle(textwrap.fill(f"Request timeline: {job['label']}, job {job['job']} — {context}", 110),
                    fontsize="medium")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"timeline_{job['label']}_{str(job['job']).split('_')[0]}")
    return Plot(stem, figure,
                f"Per-request timeline of job {job['job']} ({job['label']}): queue (arrival to dispatch), prefill "
                f"(dispatch to first token) and decode (first to last token) over time (s), one row per request; "
                f"{sampled}; {context}.")


def prefix_cache_by_turn(by_turn: pd.DataFrame, jobs: pd.DataFrame) -> Plot | None:
    """Prefix-cache hit rate (share of prompt tokens served from the cache) per turn of multi-turn sessions."""
    if by_turn.empty or by_turn["turn"].nunique() < 2:
        return None
    done = completed(jobs)
    names = dict(zip(zip(done["label"], done["job"]), series_names(done)))
    data = by_turn.assign(series=[names.get(key, f"{key[0]}/{key[1]}") for key in zip(by_turn["label"],
                                                                                      by_turn["job"])])
    figure, axes = new_figure(1, width=6.5)
    sns.lineplot(data=data, x="turn", y="hit_rate", hue="series" if data["series"].nunique() > 1 else None,
                 marker="o", errorbar=None, ax=axes[0])
    axes[0].set(xlabel="turn of the session", ylabel="prefix-cache hit rate (share of prompt tokens)",
                ylim=(-0.03, 1.03))
    axes[0].yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axes[0].set_xticks(sorted(data["turn"].unique()))
    legend_outside(axes)
    context = setting(done)
    figure.suptitle(f"Prefix-cache hit rate per turn — {context}")
    return Plot("prefix_cache_by_turn", figure,
                f"Prompt tokens the engine served from its prefix cache over all prompt tokens (its own "
                f"num_cached_tokens), per turn of the multi-turn sessions, measured requests; {context}.")
