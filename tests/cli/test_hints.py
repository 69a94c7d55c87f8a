"""Configuration errors name the closest keys or options ("did you mean"), and a launcher or
sweeper that comes from an uninstalled Hydra plugin says how to install it."""

import importlib.util

import pytest

from context_research.cli.errors import one_line
from tests.conftest import compose_config, launch


def error_line(overrides: list[str]) -> str:
    with pytest.raises(Exception) as error:
        compose_config(overrides, return_hydra_config=True)
    return one_line(error.value)


@pytest.mark.parametrize("override, suggestion", [
    ("promt_len=5", "did you mean prompt_len?"),
    ("servng=hf", "did you mean serving?"),
    ("serving.devce=cpu", "did you mean serving.device?"),
    ("benchmark.workload.promt_len=3", "did you mean benchmark.workload.prompt_len?"),
    ("serving=vlm", "did you mean serving=vllm?"),
    ("model=qwen3_8", "did you mean model=qwen3_8b?"),
])
def test_a_misspelt_key_or_option_gets_the_closest_ones(override, suggestion):
    assert error_line([override]).endswith(f"; {suggestion}")


def test_a_nested_misspelling_is_corrected_where_it_is():
    line = error_line(["benchmark=throughput", "benchmark.arival.rate=3"])
    assert line.endswith("did you mean benchmark.arrival.rate?")


def test_no_suggestion_for_a_bad_value_or_a_name_nothing_resembles():
    assert "did you mean" not in error_line(["prompt_len=abc"])  # the key exists: its value is wrong
    assert "did you mean" not in error_line(["zzzzzz=1"])


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None,
                    reason="the Ray launcher plugin is installed here")
def test_a_launcher_plugin_that_is_not_installed_says_how_to_install_it():
    assert error_line(["hydra/launcher=ray"]).endswith(
        "hydra/launcher=ray comes from a Hydra plugin that is not installed: pip install -e '.[ray]' "
        "(hydra-ray-launcher; the README says why in an environment of its own)")
    # the project's preset over it needs the same plugin
    assert "Could not load 'hydra/launcher/ray'; hydra/launcher=ray comes from a Hydra plugin" in error_line(
        ["hydra/launcher=ray_gpu"])
    assert error_line(["hydra/sweeper=optuna"]).endswith("pip install hydra-optuna-sweeper")


def test_launch_prints_the_suggestion_on_one_line():
    process = launch(["promt_len=5"], timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1] == (
        "error: Could not override 'promt_len': Key 'promt_len' not in 'JobConfig'; did you mean prompt_len?")
    assert "Traceback" not in process.stderr
