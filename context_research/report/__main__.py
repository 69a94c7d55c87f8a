"""`python -m context_research.report DIR [DIR ...] --out DIR`: see context_research/cli/report.py."""

import sys

from context_research.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
