"""Every option of every config group composes, validates and instantiates; composing imports
neither torch nor vLLM."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from context_research.app import build
from tests.conftest import CONF, REPO, compose_config, typed, validate_on_this_host

GROUPS = ["model", "serving", "scheduler", "benchmark", "collectors", "hardware", "paths"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def overrides_for(group: str, option: str) -> list[str]:
    """Each option with what it needs to be valid (vLLM runs weightless unless a path is given)."""
    extra = {("serving", "vllm"): ["model.load_format=dummy"], ("serving", "vllm_server"): ["model.load_format=dummy"],
             # capability benchmarks need a tokenizer directory (validation checks only that it exists)
             **{("benchmark", task): [f"model.tokenizer={CONF}"] for task in ("longbench", "ruler", "pg19")},
             # the 8B models are checked against the GPU they are sized for: on a CPU host the fit
             # check refuses them in float32, as it should (tests/hardware/test_fit.py)
             **{("model", name): ["hardware=h200"] for name in options("model") if name != "tiny_qwen3"},
             # NIXL joins vLLM engines
             ("scheduler", "disaggregated_nixl"): ["serving=vllm", "model=qwen3_8b", "model.load_format=dummy",
                                                   "hardware=h200"]}
    return [f"{group}={option}", *extra.get((group, option), [])]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    overrides = overrides_for(group, option)
    validate_on_this_host(compose_config(overrides))
    assert typed(overrides, group) is not None
    if group == "model":
        assert typed(overrides, "model").name == option


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = compose_config([f"experiment={experiment}"], return_hydra_config=True)
    assert cfg.name == experiment


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """paths.data_dir for the presets that read files there: E8's, generated at CI sizes."""
    from context_research.cli.make_workload_files import main as make_workload_files
    from tests.workloads.test_generator import TINY_ARGS

    data = tmp_path_factory.mktemp("data")
    assert make_workload_files(["--out", str(data / "e8"), *TINY_ARGS]) == 0
    return data


@pytest.mark.parametrize("specialisation", options("experiment_serving"))
def test_every_experiment_serving_specialisation_composes_and_validates(specialisation, data_dir):
    # conf/experiment_serving/<experiment>_<serving>.yaml: chosen by the root defaults list for that pair
    experiment, serving = specialisation.split("_", 1)
    cfg = compose_config([f"experiment={experiment}", *overrides_for("serving", serving), f"paths.data_dir={data_dir}"])
    validate_on_this_host(cfg)
    specialised = OmegaConf.load(CONF / "experiment_serving" / f"{specialisation}.yaml")
    assert {key: cfg.serving[key] for key in specialised} == dict(specialised)


@pytest.mark.parametrize("serving", options("serving"))
def test_every_target_is_built_from_its_typed_config_without_starting_an_engine(serving, tmp_path):
    overrides = overrides_for("serving", serving)
    model = typed(overrides, "model")
    backend = build(typed(overrides, "serving"), model=model, cache_dir=str(tmp_path))
    assert backend.model_config.name == model.name and backend.name == serving
    scheduler = build(typed(overrides, "scheduler"))
    assert scheduler.name == "aggregated" and scheduler.pools() == {"aggregated": {}}
    benchmark = build(typed(overrides, "benchmark"), model=model)
    assert benchmark.name == "latency" and benchmark.load("test").measured
    for config in typed(overrides, "collectors").values():
        collector = build(config)
        collector.start()
        collector.stop()
        assert collector.snapshot()


def test_collectors_are_an_open_group_of_one_file_each():
    assert set(typed([], "collectors")) == {"latency", "gpu", "memory", "kv_transfer", "server", "client"}
    assert set(typed(["collectors=[latency,memory]"], "collectors")) == {"latency", "memory"}


def test_sweep_keys_are_interpolated_into_the_groups():
    cfg = compose_config(["prompt_len=333", "output_len=7", "num_prompts=2", "repeats=3", "seed=9"])
    assert cfg.benchmark.workload.prompt_len == 333
    assert cfg.benchmark.workload.output_len == 7
    assert cfg.benchmark.workload.num_prompts == 2
    assert cfg.benchmark.repeats == 3
    assert cfg.serving.seed == 9 and cfg.benchmark.workload.seed == 9


def test_model_configs_carry_the_real_architecture():
    arch = OmegaConf.to_container(compose_config(["model=qwen3_8b"]).model.architecture)
    assert (arch["num_hidden_layers"], arch["hidden_size"], arch["num_attention_heads"],
            arch["num_key_value_heads"], arch["head_dim"], arch["intermediate_size"],
            arch["vocab_size"], arch["rope_theta"], arch["max_position_embeddings"],
            arch["tie_word_embeddings"]) == (36, 4096, 32, 8, 128, 12288, 151936, 1000000, 40960, False)


def test_printing_the_config_imports_neither_torch_nor_vllm():
    process = subprocess.run([sys.executable, "-X", "importtime", "launch.py", "--cfg", "job"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "prompt_len: 64" in process.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in process.stderr.splitlines() if "|" in line}
    assert "hydra" in imported
    assert "torch" not in imported and "vllm" not in imported and "transformers" not in imported
