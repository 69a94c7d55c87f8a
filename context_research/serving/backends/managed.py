"""Engines `vllm_server` and `transformers_server`: a server the harness starts, then talks to over HTTP.

`start` picks a free port (or `serving.port`), starts the server (serving/servers/process.py) with its
log in the folder of the job that starts it (`<job folder>/<engine>.log`; the later jobs of a sweep
that reuse the server record that path in their manifests' `engines`), waits until /health answers
200, then opens the HTTP client (backends/openai.py) on it. `stop` closes the client and stops the
server's whole process group. The engine cache keys engines by their config, so the jobs of a sweep
that share it share the server, and the sweep's end, a failed job or a stop signal stops it.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from context_research import devices
from context_research.serving.backends.openai import OpenAIBackend
from context_research.serving.servers.process import ManagedServer, free_port


def job_folder() -> Path | None:
    """The folder of the Hydra job running now, if any."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class ManagedServerBackend(OpenAIBackend):
    """An OpenAIBackend on a server it starts and stops. Subclasses give `server_command`."""

    server_program = ""  # what runs, as the manifest says it
    server_package = ""  # the package whose version the server runs

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        super().__init__(config, model, cache_dir)
        self.server: ManagedServer | None = None
        self.port: int | None = None

    def server_command(self, port: int) -> tuple[list[str], dict[str, str]]:
        """The server's command line and environment for `port`; sets `served_model`."""
        raise NotImplementedError

    def log_path(self) -> Path:
        folder = Path(self.config.log_dir) if self.config.log_dir else job_folder()
        return (folder or Path(self.cache_dir) / "servers") / f"{self.name}.log"

    def _url_host(self) -> str:
        host = self.config.host
        return f"[{host}]" if ":" in host else host

    def api_urls(self) -> list[str]:
        return [f"http://{self._url_host()}:{self.port}/v1"]

    def start(self) -> None:
        self.port = self.config.port or free_port(self.config.host)
        command, env = self.server_command(self.port)
        self.server = ManagedServer(f"serving={self.name} ({self.server_program})", command, self.log_path(),
                                    f"http://{self._url_host()}:{self.port}/health", env, self.config.stop_timeout_s)
        self.server.start(self.config.startup_timeout_s)
        super().start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.server is not None:
                self.server.stop()
                self.server = None

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        reported = next((entry.get("version") for entry in self.server_info if entry.get("version")), None)
        described.update(server=self.server_program, server_version=reported or package_version(self.server_package),
                         server_command=self.server.command if self.server else None,
                         server_log=str(self.server.log_path) if self.server else None,
                         server_pgid=self.server.pid if self.server else None,
                         server_startup_s=self.server.startup_s if self.server else None)
        return described


class VLLMServerBackend(ManagedServerBackend):
    """Engine `vllm_server` (config: VLLMServerConfig): `vllm serve` with the in-process engine's
    arguments (serving/backends/vllm.py:engine_arguments, as flags: serving/servers/vllm_server.py)."""

    server_program = "vllm serve"
    server_package = "vllm"

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        super().__init__(config, model, cache_dir)
        self.engine_args: dict[str, Any] = {}

    def server_command(self, port: int) -> tuple[list[str], dict[str, str]]:
        from context_research.serving.backends.vllm import engine_arguments
        from context_research.serving.model_source import materialize_config_dir, tokenizer_source
        from context_research.serving.servers.vllm_server import DEV_MODE, serve_arguments, serve_command

        model_dir = materialize_config_dir(self.model_config, self.cache_dir)
        tokenizer_dir = tokenizer_source(self.model_config, self.cache_dir)
        args = engine_arguments(self.config, self.model_config, str(model_dir),
                                str(tokenizer_dir) if tokenizer_dir else None)
        self.engine_args = serve_arguments(args)
        self.served_model = self.config.model or self.model_config.name
        env = {**os.environ, **DEV_MODE}
        if self.config.device is not None:  # the server sees that GPU alone (context_research.devices)
            env[devices.VARIABLE] = devices.entry_for(self.config.device)
        return serve_command(args, self.served_model, self.config.host, port, self.config.server_args), env

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "engine_args": {k: v for k, v in self.engine_args.items() if k != "model"}}


class TransformersServerBackend(ManagedServerBackend):
    """Engine `transformers_server` (config: TransformersServerConfig): `transformers serve` pinned to
    a local model directory (model.path, or the model materialised with seeded weights and the built
    tokenizer)."""

    server_program = "transformers serve"
    server_package = "transformers"

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        super().__init__(config, model, cache_dir)
        self.model_dir: Path | None = None
        self.device = self.dtype = None

    def client_tokenizer(self) -> Any:
        """The tokenizer of the directory the server loads (the same files)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)

    def server_command(self, port: int) -> tuple[list[str], dict[str, str]]:
        from context_research.serving.model_source import materialize_model_dir

        config = self.config
        self.model_dir = materialize_model_dir(self.model_config, self.cache_dir, config.seed)
        # the server's GPU, read through NVML: torch.cuda here would make a later vLLM engine's fork fail
        self.device = ("cuda" if devices.visible_gpu_count() else "cpu") if config.device == "auto" else config.device
        self.dtype = config.dtype if config.dtype != "auto" else (
            self.model_config.dtype if self.device.startswith("cuda") else "float32")  # serving=hf's rule
        self.served_model = str(self.model_dir)  # a pinned server answers to the name it was given only
        command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(self.model_dir),
                   "--host", config.host, "--port", str(port), "--device", self.device, "--dtype", self.dtype,
                   "--attn-implementation", config.attn_implementation, "--default-seed", str(config.seed),
                   *(["--continuous-batching"] if config.continuous_batching else []), *config.server_args]
        # nothing is downloaded; no update check against PyPI at start-up
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"}
        return command, env

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model_dir": str(self.model_dir), "device": self.device, "dtype": self.dtype,
                "attn_implementation": self.config.attn_implementation,
                "continuous_batching": self.config.continuous_batching}
