"""The report's command line:

    python -m context_research.report DIR [DIR ...] --out DIR [--table NAME] [--ab-statistic median|mean]

Writes report.md, report.html, jobs.csv, the experiment's table (summary.csv / memory.csv),
sweep.json and the plots (PNG and SVG) for the run and multirun folders given. The first folder is
the A of every A/B comparison.
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

from context_research.report.compare import STATISTICS
from context_research.report.tables import TABLES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m context_research.report", description=__doc__.split("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", metavar="DIR", help="run or multirun folders (the first is A)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the report is written")
    parser.add_argument("--table", choices=sorted(TABLES), help="write this experiment's table whatever the "
                        "records' experiment name")
    parser.add_argument("--ab-statistic", choices=sorted(STATISTICS), default="median",
                        help="what the A/B compares per metric (default: median)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    matplotlib.use("Agg")  # files only: no display needed
    from context_research.report.build import build_report

    try:
        report = build_report(args.folders, args.out, table=args.table, ab_statistic=args.ab_statistic)
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
