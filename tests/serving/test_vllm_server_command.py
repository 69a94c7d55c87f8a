"""serving=vllm_server: `vllm serve`'s command line from the in-process engine's arguments (one schema),
and E1/E2 composing and validating unchanged with it (no vLLM needed)."""

from __future__ import annotations

import json
import sys

import pytest

from context_research.config import ConfigError, validate
from context_research.serving.backends.managed import VLLMServerBackend
from context_research.serving.backends.vllm import engine_arguments
from context_research.serving.servers.vllm_server import DEV_MODE, cli_flags, serve_command
from tests.conftest import compose_config, typed, validate_on_this_host

WEIGHTLESS = ["model=qwen3_8b", "model.load_format=dummy"]


def configs(serving: str, overrides: list[str]):
    chosen = [f"serving={serving}", *WEIGHTLESS, *overrides]
    return typed(chosen, "serving"), typed(chosen, "model")


def test_flags_are_the_engine_arguments_in_vllms_argparse_spelling():
    assert cli_flags({"max_model_len": 8192, "enforce_eager": False, "enable_prefix_caching": True,
                      "hf_overrides": {"rope_theta": 1e6}, "cudagraph_capture_sizes": [1, 2], "tokenizer": None}) == [
        "--max-model-len", "8192", "--no-enforce-eager", "--enable-prefix-caching",
        "--hf-overrides", '{"rope_theta": 1000000.0}', "--cudagraph-capture-sizes", "1", "2"]


def test_the_server_gets_the_same_engine_arguments_as_the_in_process_engine():
    shared = ["serving.gpu_memory_utilization=0.8", "serving.max_num_seqs=64", "serving.enable_prefix_caching=false",
              "serving.max_cudagraph_capture_size=1024", "serving.kv_cache_dtype=fp8", "seed=3"]
    in_process, model = configs("vllm", shared)
    served, _ = configs("vllm_server", shared)
    expected = engine_arguments(in_process, model, "/models/q", "/tok")
    assert engine_arguments(served, model, "/models/q", "/tok") == expected
    command = serve_command(expected, "qwen3_8b", "127.0.0.1", 8123, ["--disable-uvicorn-access-log"])
    assert command[:5] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", "/models/q"]
    flags = command[5:]
    assert flags[:6] == ["--host", "127.0.0.1", "--port", "8123", "--served-model-name", "qwen3_8b"]
    pairs = dict(zip(flags, flags[1:]))  # each flag and the argument after it
    assert pairs["--gpu-memory-utilization"] == "0.8" and pairs["--max-num-seqs"] == "64"
    assert pairs["--kv-cache-dtype"] == "fp8" and pairs["--seed"] == "3" and pairs["--load-format"] == "dummy"
    assert pairs["--tokenizer"] == "/tok" and pairs["--max-model-len"] == "40960"
    assert json.loads(pairs["--compilation-config"]) == {"max_cudagraph_capture_size": 1024}
    assert "--no-enable-prefix-caching" in flags and "--no-skip-tokenizer-init" in flags
    assert flags[-1] == "--disable-uvicorn-access-log"
    # in-process only: the memory worker extension (collective_rpc) and the stats switch
    assert "--worker-extension-cls" not in flags and not any("disable-log-stats" in flag for flag in flags)


def test_the_server_is_started_in_dev_mode_with_the_built_tokenizer(tmp_path):
    serving, model = configs("vllm_server", ["model.tokenizer=built"])
    backend = VLLMServerBackend(serving, model, str(tmp_path))
    command, env = backend.server_command(8000)
    assert env["VLLM_SERVER_DEV_MODE"] == DEV_MODE["VLLM_SERVER_DEV_MODE"]
    assert backend.served_model == "qwen3_8b" and command[4].startswith(str(tmp_path / "models" / "qwen3_8b-"))
    tokenizer = command[command.index("--tokenizer") + 1]
    assert tokenizer.startswith(str(tmp_path / "tokenizers"))  # model.tokenizer=built: the project's tokenizer
    assert "worker_extension_cls" not in backend.engine_args


def test_e1_and_e2_compose_and_validate_with_vllm_server():
    for experiment in ("e1", "e2"):
        cfg = compose_config([f"experiment={experiment}", "serving=vllm_server", *WEIGHTLESS, "hardware=h200"])
        assert cfg.serving.engine == "vllm_server" and cfg.name == experiment
        validate_on_this_host(cfg)  # where vLLM is missing, only the vLLM-installed rule may refuse it
    # the same E1 specialisation as in process: the HTTP cost compares the same engine arguments
    assert compose_config(["experiment=e1", "serving=vllm_server"]).serving.max_cudagraph_capture_size == 1024
    e2 = compose_config(["experiment=e2", "serving=vllm_server", "concurrency=64"], return_hydra_config=True)
    assert e2.benchmark.arrival.process == "closed" and e2.benchmark.arrival.concurrency == 64
    assert e2.hydra.sweeper.params == {"prompt_len": "1024,8192", "concurrency": "1,2,4,8,16,32,64,128,256"}


def test_a_vllm_server_without_weights_is_refused_before_anything_starts():
    with pytest.raises(ConfigError) as refused:
        validate(compose_config(["serving=vllm_server", "model=qwen3_8b", "hardware=h200"]))
    assert refused.value.key == "model.load_format"
