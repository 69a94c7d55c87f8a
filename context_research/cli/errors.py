"""Bad input as one line per problem on stderr and exit code 2; a failed single run exits 1; an
interrupted one 128 + the signal number, as shells report it. A launch that must not go on (its job
directory belongs to a live run: 2; its record cannot be written: 1) ends with one line too."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from context_research.cli.hints import with_hint
from context_research.config.errors import ConfigError

USER_ERROR = 2
FAILED = 1


class JobFailed(RuntimeError):
    """A single run failed; its record says why (raised only outside sweeps)."""


class LaunchAborted(BaseException):
    """The launch stops here, sweep and all, with one line and `exit_code`. A BaseException because
    Hydra records any Exception of a sweep's job as that job's failure and goes on with the next."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message, exit_code)  # both in args, so it pickles back from a joblib worker
        self.message, self.exit_code = message, exit_code

    def __str__(self) -> str:
        return self.message


def os_failure(error: OSError) -> str:
    """An OS error as the path and the reason (`/runs/x/manifest.json: No space left on device`)."""
    return f"{error.filename}: {error.strerror}" if error.filename else str(error)


@with_hint  # did you mean ...?, how to install a missing launcher plugin
def one_line(error: BaseException) -> str:
    """A configuration or composition error as one line: the key or override and what is allowed."""
    if isinstance(error, ConfigError):
        return str(error)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return f"{group}={option}: no such option; allowed: {', '.join(error.options)}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    head = lines[0] if lines else type(error).__name__
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):  # Hydra: "Error merging override k=v", OmegaConf: why
        detail = str(cause).splitlines()[0].strip()
        return f"{head.removeprefix('Error merging override ').rstrip('.')}: {detail}"
    return head


def exit_with_errors(problems: list[str]) -> None:
    """Print one `error:` line per problem and exit 2 (SystemExit passes through Hydra)."""
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(USER_ERROR)


@contextmanager
def exit_on_user_error(on_stop: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Turn bad input, a failed single run and a stop signal into their exit codes; `on_stop` runs
    first when a stop signal ended the process (the sweep callback prints the sweep's jobs)."""
    try:
        yield
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        exit_with_errors([one_line(error)])
    except KeyboardInterrupt as stop:  # SIGINT or SIGTERM: the job's record says interrupted
        on_stop()
        print(f"error: {stop or 'interrupted by SIGINT'}; stopped, the job in progress is recorded as interrupted",
              file=sys.stderr)
        sys.exit(getattr(stop, "exit_code", 130))
    except JobFailed as error:
        print(f"error: job failed: {error}", file=sys.stderr)
        sys.exit(FAILED)
    except LaunchAborted as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
