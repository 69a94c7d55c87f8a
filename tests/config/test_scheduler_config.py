"""The disaggregated scheduler's config: composed with the engine it serves, bad values refused
with one line naming the key."""

from __future__ import annotations

import pytest

from context_research.config import ConfigError, validate
from tests.conftest import compose_config, typed, validate_on_this_host


def test_the_scheduler_knows_the_serving_engine():
    assert compose_config(["scheduler=disaggregated"]).scheduler.engine == "hf"
    overrides = ["scheduler=disaggregated", "serving=vllm", "model=qwen3_8b", "model.load_format=dummy"]
    validate_on_this_host(compose_config(overrides))
    scheduler = typed(overrides, "scheduler")
    assert scheduler.engine == "vllm" and scheduler.transfer == "auto" and scheduler.connector == "auto"
    assert scheduler.kv_connector == "ExampleConnector"  # vLLM's debug connector, unless the KV goes over NIXL


VLLM_NIXL = ["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", "scheduler=disaggregated",
             "scheduler.transfer=nixl"]


def test_transfer_nixl_chooses_nixls_connector_and_push_is_an_option():
    assert typed(VLLM_NIXL, "scheduler").kv_connector == "NixlConnector"
    assert typed([*VLLM_NIXL, "scheduler.connector=NixlPushConnector"], "scheduler").kv_connector == "NixlPushConnector"
    assert typed(["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", "scheduler=disaggregated_nixl"],
                 "scheduler").transfer == "nixl"


def test_transfer_nixl_without_nixl_installed_is_one_line_naming_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nixl" else real(name, *a))
    with pytest.raises(ConfigError) as error:
        validate(compose_config(VLLM_NIXL))
    message = str(error.value)
    assert message.startswith("scheduler.transfer='nixl': NIXL is not installed here")
    assert "pip install nixl==1.3.1" in message and "\n" not in message
    # the rule reads the scheduler alone: the same job over ExampleConnector passes it (and stops, if
    # at all, only at the vLLM-installed rule)
    validate_on_this_host(compose_config(VLLM_NIXL[:-1]))


@pytest.mark.parametrize("overrides,message", [
    (["scheduler.transfer=connector"],
     "scheduler.transfer='connector': allowed: auto, device_copy, process, simulated"),
    (["scheduler.transfer=device_copy", "scheduler.prefill_device=cuda:0", "scheduler.decode_device=cuda:0"],
     "scheduler.decode_device='cuda:0': a GPU other than prefill_device"),
    (["scheduler.transfer=process", "scheduler.decode_device=cuda:1"], "scheduler.decode_device='cuda:1': cpu or auto"),
    (["scheduler.prefill_device=gpu0"], "scheduler.prefill_device='gpu0': auto, cpu or cuda:N"),
    (["scheduler.link_bandwidth_gb_s=0"], "scheduler.link_bandwidth_gb_s=0.0: GB/s > 0"),
    (["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", "scheduler.transfer=process"],
     "scheduler.transfer='process': allowed: auto, connector, nixl, simulated"),
    (["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", "scheduler.transfer=nixl",
      "scheduler.connector=ExampleConnector"],
     "scheduler.connector='ExampleConnector': auto or one of NixlConnector, NixlPullConnector, NixlPushConnector"),
    (["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", "scheduler.connector=NixlConnector"],
     "scheduler.transfer='auto': nixl for connector=NixlConnector"),
    (["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", "scheduler.connector=LMCacheConnector"],
     "scheduler.connector='LMCacheConnector': allowed: auto, ExampleConnector, NixlConnector"),
    (["scheduler.transfer=nixl"], "scheduler.transfer='nixl': allowed: auto, device_copy, process, simulated"),
    (["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", "scheduler.decode_device=cpu"],
     "scheduler.decode_device='cpu': auto or cuda:N"),
])
def test_bad_values_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(["scheduler=disaggregated", *overrides]))
    assert message in str(error.value) and "\n" not in str(error.value)
