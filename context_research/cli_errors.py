"""Turns bad input into one line per problem on stderr and exit code 2 (a failed job: exit 1)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from context_research.config.errors import ConfigError, InvalidSweep
from context_research.config.validation import one_line


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    try:
        yield
    except InvalidSweep as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        from context_research.app import JobFailed

        if isinstance(error, JobFailed):
            print(f"error: job failed: {error}", file=sys.stderr)
            sys.exit(1)
        raise
