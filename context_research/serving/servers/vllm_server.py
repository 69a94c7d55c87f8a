"""`vllm serve`'s command line, from the same engine arguments as the in-process engine.

`serving/backends/vllm.py:engine_arguments` turns the typed config into EngineArgs keywords; here
they become flags. vLLM 0.26 builds `vllm serve`'s parser from the EngineArgs dataclass, so every
keyword is a flag of the same name with dashes (`max_model_len` -> `--max-model-len`): a bool is
`--x` / `--no-x` (argparse's BooleanOptionalAction), a dict or a config class (hf_overrides,
compilation_config, kv_transfer_config) one JSON argument, a list several values. The model directory
is the positional argument. It runs as `python -m vllm.entrypoints.cli.main serve` with the harness's
own interpreter, so a vLLM importable only through PYTHONPATH (no `vllm` script on PATH) works too.
"""

from __future__ import annotations

import json
import sys
from typing import Any

VLLM_CLI = "vllm.entrypoints.cli.main"
# keywords of the in-process engine only: the worker extension the harness reads memory through
# (collective_rpc, not reachable over HTTP), and the stats switch (a server keeps its stats on: /metrics)
IN_PROCESS_ONLY = ("worker_extension_cls", "disable_log_stats")
# vLLM's /reset_prefix_cache (and its other development endpoints) exist only with this set
DEV_MODE = {"VLLM_SERVER_DEV_MODE": "1"}


def cli_flags(arguments: dict[str, Any]) -> list[str]:
    """EngineArgs keywords as `vllm serve` flags (None values are left to vLLM's defaults)."""
    flags: list[str] = []
    for key, value in arguments.items():
        if value is None:
            continue
        name = key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, dict):
            flags += [f"--{name}", json.dumps(value, sort_keys=True)]
        elif isinstance(value, (list, tuple)):
            flags += [f"--{name}", *map(str, value)]
        else:
            flags += [f"--{name}", str(value)]
    return flags


def serve_arguments(engine_args: dict[str, Any]) -> dict[str, Any]:
    """The engine arguments a server is given: the in-process ones less IN_PROCESS_ONLY."""
    return {key: value for key, value in engine_args.items() if key not in IN_PROCESS_ONLY}


def serve_command(engine_args: dict[str, Any], served_model_name: str, host: str, port: int,
                  extra: list[str] = ()) -> list[str]:
    """The full command line: `python -m vllm.entrypoints.cli.main serve MODEL_DIR --host ... FLAGS`."""
    arguments = serve_arguments(engine_args)
    model_dir = arguments.pop("model")
    return [sys.executable, "-m", VLLM_CLI, "serve", str(model_dir), "--host", host, "--port", str(port),
            "--served-model-name", served_model_name, *cli_flags(arguments), *extra]
