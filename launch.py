"""Entry point: `python launch.py [-m] [key=value ...]`.

Thin by design: Hydra composes the config from conf/, `context_research.app.run_job` does the
work. Composing (`--cfg job`, `--help`) imports neither torch nor vLLM. Bad input is reported as
one line per problem (`error: key=value: what is allowed`, with a "did you mean" where a key or
option is misspelt) with exit code 2, as is a job directory that another live run owns. SIGINT and
SIGTERM record the job in progress as interrupted and stop the sweep (exit code 130 or 143); a
record that cannot be written stops it with exit code 1. `--dry-run` lists what would run
(cli/dry_run.py).
"""

import os

import hydra
from omegaconf import DictConfig

import context_research.config  # noqa: F401 (registers the schemas in Hydra's ConfigStore)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from context_research.app import run_job

    run_job(cfg)


if __name__ == "__main__":
    import sys

    from context_research.cli.dry_run import take_flags

    sys.argv[1:] = take_flags(sys.argv[1:])  # --dry-run, and --cfg in a multirun (cli/dry_run.py)
    # let errors reach the handler below instead of Hydra's multi-line report
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    from context_research.cli.errors import exit_on_user_error
    from context_research.cli.interruption import stop_signals_raise
    from context_research.cli.sweep_callback import report_stopped_sweep

    # SIGTERM stops as cleanly as Ctrl-C; a stopped sweep prints its jobs before exiting
    with exit_on_user_error(on_stop=report_stopped_sweep), stop_signals_raise():
        main()
