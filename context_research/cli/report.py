"""The report's command line:

    python -m context_research.report DIR [DIR ...] --out DIR [--label NAME=DIR ...] [--table NAME]
                                      [--ab-statistic median|mean]

Writes report.md, report.html, jobs.csv, the experiment's table (summary.csv / memory.csv),
sweep.json and the plots (PNG and SVG) for the run and multirun folders given. The first folder is
the A of every A/B comparison. `--label NAME=DIR` names a folder in the tables and plots (instead
of its base name, a time stamp for multiruns); a DIR not given before is added after the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

from context_research.report.compare import STATISTICS
from context_research.report.tables import TABLES


def folder_label(text: str) -> tuple[str, str]:
    """`NAME=DIR` as (name, dir)."""
    name, separator, folder = text.partition("=")
    if not separator or not name or not folder:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR, e.g. baseline=multirun/e1/2026-01-01_10-00-00")
    return name, folder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m context_research.report", description=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", metavar="DIR", help="run or multirun folders (the first is A)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the report is written")
    parser.add_argument("--label", action="append", type=folder_label, default=[], metavar="NAME=DIR",
                        help="name a folder NAME in the report (repeatable); DIR is added if not given before")
    parser.add_argument("--table", choices=sorted(TABLES), help="write this experiment's table whatever the "
                        "records' experiment name")
    parser.add_argument("--ab-statistic", choices=sorted(STATISTICS), default="median",
                        help="what the A/B compares per metric (default: median)")
    args = parser.parse_args(argv)
    given = {Path(folder).resolve() for folder in args.folders}
    args.folders += [folder for _, folder in args.label if Path(folder).resolve() not in given]
    if not args.folders:
        parser.error("no folder: give DIR or --label NAME=DIR")
    names = [name for name, _ in args.label]
    if len(set(names)) < len(names):
        parser.error(f"--label: a name given twice ({', '.join(sorted({n for n in names if names.count(n) > 1}))})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    matplotlib.use("Agg")  # files only: no display needed
    from context_research.report.build import build_report

    try:
        report = build_report(args.folders, args.out, table=args.table, ab_statistic=args.ab_statistic,
                              names={folder: name for name, folder in args.label})
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    statuses = report.jobs["status"].value_counts().to_dict()
    print(f"{len(report.jobs)} jobs ({', '.join(f'{n} {s}' for s, n in statuses.items())})")
    for path in report.files:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
