"""`python -m context_research.calibrate [--device N] [--output FILE]`: see context_research/cli/calibrate.py."""

import sys

from context_research.cli.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
