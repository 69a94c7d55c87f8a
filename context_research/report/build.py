"""Build the report for a set of run folders: every table, statistic and figure, written to one folder.

    out/report.md  out/report.html  out/jobs.csv  out/plots/*.png|svg
    out/summary.csv | memory.csv     the experiment's table (tables.TABLES)
    out/sweep.json                   where the multirun's wall time went (an object; a list of them when the
                                     folders hold several multiruns)
    out/repeats.csv  out/ab.csv  out/ab_pairs.csv  out/scheduler_deltas.csv  out/goodput.csv
    out/prefix_cache.csv  out/prefix_cache_by_turn.csv                           (when they apply)

The first folder is the A of every A/B; each later folder running the same experiment is a B. The
sections are report/sections.py's builders, in the order of its `SECTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from context_research.report.document import Section, to_html, to_markdown
from context_research.report.loader import load_jobs, unique_jobs
from context_research.report.sections import SECTIONS, ReportContext


@dataclass
class Report:
    jobs: pd.DataFrame
    sections: list[Section] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def build_report(folders: list[str | Path], out: str | Path, table: str | None = None,
                 ab_statistic: str = "median", names: dict[str | Path, str] | None = None) -> Report:
    """Loads the folders and writes every output into `out`; returns the jobs and the written files.

    `table` forces one experiment's table; `ab_statistic` (median or mean) is what the A/B compares;
    `names` labels folders (folder -> name) instead of their base names.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = load_jobs(folders, names)
    if jobs.empty:
        raise FileNotFoundError(f"no job directories (manifest.json or .hydra/config.yaml) under: "
                                f"{', '.join(map(str, folders))}")
    context = ReportContext(all_jobs=jobs, jobs=unique_jobs(jobs), out=out, table=table, ab_statistic=ab_statistic)
    sections: list[Section] = []
    for builder in SECTIONS:
        built = builder(context)
        sections.extend(built if isinstance(built, list) else [built] if built is not None else [])
    title = "Run report: " + ", ".join(dict.fromkeys(jobs["label"]))
    for path, text in ((out / "report.md", to_markdown(title, sections)), (out / "report.html", to_html(title, sections))):
        path.write_text(text)
        context.files.append(path)
    return Report(jobs, sections, context.files)
