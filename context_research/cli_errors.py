"""Turns bad input into one line per problem on stderr and exit code 2 (a failed job: exit 1;
an interrupted one: 128 + the signal number, as shells report it)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from context_research.config.errors import ConfigError
from context_research.config.validation import one_line

USER_ERROR = 2


def exit_with_errors(problems: list[str]) -> None:
    """Print one `error:` line per problem and exit 2 (SystemExit passes through Hydra)."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(USER_ERROR)


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    try:
        yield
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        exit_with_errors([one_line(error)])
    except KeyboardInterrupt as stop:  # SIGINT or SIGTERM: the job's record says interrupted
        from context_research.records.callback import report_stopped_sweep

        report_stopped_sweep()
        print(f"error: {stop or 'interrupted by SIGINT'}; stopped, the job in progress is recorded as interrupted",
              file=sys.stderr)
        sys.exit(getattr(stop, "exit_code", 130))
    except Exception as error:
        from context_research.app import JobFailed

        if isinstance(error, JobFailed):
            print(f"error: job failed: {error}", file=sys.stderr)
            sys.exit(1)
        raise
