"""The E8 preset: two jobs (the trace, then the sessions) over transformers serve by default, the file paths
under paths.data_dir/e8, and on the H200 vllm serve with prefix caching and per-request cached tokens."""

from __future__ import annotations

import pytest

from context_research.cli.make_workload_files import main as make_workload_files
from context_research.cli.sweep_callback import sweep_job_overrides
from context_research.config import ConfigError, validate
from context_research.serving.backends.managed import VLLMServerBackend
from tests.conftest import compose_config, typed, validate_on_this_host
from tests.workloads.test_generator import TINY_ARGS

H200 = ["serving=vllm_server", "model=qwen3_8b", "model.load_format=dummy"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("e8-data")
    assert make_workload_files(["--out", str(data / "e8"), *TINY_ARGS]) == 0
    return data


def test_one_command_is_the_trace_then_the_sessions() -> None:
    cfg = compose_config(["experiment=e8"], return_hydra_config=True)
    assert [label for label, _ in sweep_job_overrides(cfg)] == ["e8_workload=trace", "e8_workload=sessions"]


def test_each_part_reads_its_file_under_the_data_dir_with_the_built_tokenizer(data_dir) -> None:
    trace = validate(compose_config(["experiment=e8", f"paths.data_dir={data_dir}"]))
    assert trace["serving"].__class__.__name__ == "TransformersServerConfig" and trace["model"].tokenizer == "built"
    workload, arrival = trace["benchmark"].workload, trace["benchmark"].arrival
    assert (workload.source, workload.path, arrival.process) == ("mooncake", f"{data_dir}/e8/mooncake_trace.jsonl",
                                                                 "trace")
    sessions = validate(compose_config(["experiment=e8", "e8_workload=sessions", f"paths.data_dir={data_dir}",
                                        "concurrency=3"]))["benchmark"]
    assert (sessions.workload.source, sessions.workload.path) == ("sharegpt", f"{data_dir}/e8/sharegpt.json")
    assert (sessions.arrival.process, sessions.arrival.concurrency) == ("sessions", 3)
    assert sessions.workload.num_requests == 12  # four conversations per user at once
    assert (sessions.arrival.think_time.distribution, sessions.arrival.think_time.mean_s) == ("exponential", 1.0)


def test_files_not_generated_yet_are_one_line_naming_the_key(tmp_path) -> None:
    with pytest.raises(ConfigError) as error:
        validate(compose_config(["experiment=e8", f"paths.data_dir={tmp_path}"]))
    assert error.value.key == "benchmark.workload.path"
    assert "an existing local file (the mooncake data)" in str(error.value)


def test_on_vllm_serve_prefix_caching_is_on_and_each_usage_reports_the_cached_tokens(data_dir, tmp_path) -> None:
    for part in ("trace", "sessions"):  # valid but for vLLM where it is not installed
        validate_on_this_host(compose_config(["experiment=e8", f"e8_workload={part}", f"paths.data_dir={data_dir}",
                                              *H200]))
    chosen = ["experiment=e8", *H200]
    backend = VLLMServerBackend(typed(chosen, "serving"), typed(chosen, "model"), str(tmp_path))
    command, _ = backend.server_command(8000)
    flags = command[5:]
    assert "--enable-prefix-caching" in flags and "--enable-prompt-tokens-details" in flags
    assert flags[flags.index("--tokenizer") + 1].startswith(str(tmp_path / "tokenizers" / "qwen3_8b-"))
    assert flags[flags.index("--max-model-len") + 1] == "40960"  # 32K prompts of the trace and their outputs fit
