"""The vLLM side of disaggregation without a GPU: pool engine arguments (connector roles, devices,
whole-prompt prefill steps), kv_transfer_params in and out, ExampleConnector's storage naming and
byte count (real safetensors files in vLLM's layout), and the client's view of a handoff."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from context_research import devices
from context_research.app import with_overrides
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.vllm import engine_arguments, engine_environment, sampling_arguments
from context_research.serving.schedulers.disaggregated import DisaggregatedScheduler
from context_research.serving.schedulers.vllm_broker import (ExampleConnectorStorage, VLLMBroker, storage_dir,
                                                             stored_tokens)
from tests.conftest import hf_engine, typed

QWEN3_8B_KV_BYTES_PER_TOKEN = 147_456


VLLM = ["serving=vllm", "model=qwen3_8b", "model.load_format=dummy"]


def serving_of(scheduler: DisaggregatedScheduler, pool: str):
    """The serving config `app.build_engines` builds a pool's engine from."""
    return with_overrides(typed(VLLM, "serving"), scheduler.pools()[pool]), typed(VLLM, "model")


def vllm_scheduler(tmp_path, *overrides: str) -> DisaggregatedScheduler:
    chosen = [*VLLM, "scheduler=disaggregated", f"scheduler.kv_storage_dir={tmp_path}", *overrides]
    return DisaggregatedScheduler(typed(chosen, "scheduler"))


def two_gpu_scheduler(tmp_path) -> DisaggregatedScheduler:
    return vllm_scheduler(tmp_path, "scheduler.prefill_device=cuda:0", "scheduler.decode_device=cuda:1",
                          "scheduler.transfer=connector")


def test_pools_join_two_gpus_with_the_example_connector(tmp_path):
    scheduler = two_gpu_scheduler(tmp_path)
    prefill, model = serving_of(scheduler, "prefill")
    decode, _ = serving_of(scheduler, "decode")
    assert prefill.device == "cuda:0" and decode.device == "cuda:1"
    args = engine_arguments(prefill, model, "/m", None)
    assert args["kv_transfer_config"] == {"kv_connector": "ExampleConnector", "kv_role": "kv_producer",
                                          "kv_connector_extra_config": {"shared_storage_path": str(tmp_path)}}
    # the connector saves a request's KV in its first step: that step must hold the whole prompt
    assert args["enable_chunked_prefill"] is False and args["max_num_batched_tokens"] == model.max_model_len
    decode_args = engine_arguments(decode, model, "/m", None)
    assert decode_args["kv_transfer_config"]["kv_role"] == "kv_consumer"
    assert "enable_chunked_prefill" not in decode_args
    assert decode_args["gpu_memory_utilization"] == args["gpu_memory_utilization"] == 0.9


def test_one_gpu_shares_the_device_and_splits_its_memory(tmp_path):
    scheduler = vllm_scheduler(tmp_path, "scheduler.prefill_device=cuda:0", "scheduler.transfer=simulated",
                               "scheduler.shared_device_memory_utilization=0.4")
    prefill, _ = serving_of(scheduler, "prefill")
    decode, _ = serving_of(scheduler, "decode")
    assert prefill.device == decode.device == "cuda:0"
    assert prefill.gpu_memory_utilization == decode.gpu_memory_utilization == 0.4


def test_kv_transfer_params_ride_on_the_sampling_parameters():
    request = GenerationRequest(request_id="r", prompt_token_ids=[1, 2], max_new_tokens=4,
                                metadata={"kv_transfer_params": {"do_remote_prefill": True, "remote_block_ids": [3]}})
    assert sampling_arguments(request, False)["extra_args"] == {
        "kv_transfer_params": {"do_remote_prefill": True, "remote_block_ids": [3]}}
    assert "extra_args" not in sampling_arguments(GenerationRequest(request_id="s", prompt_token_ids=[1],
                                                                    max_new_tokens=1), False)


def test_an_engine_sees_only_its_gpu_and_its_variables_while_it_starts(monkeypatch):
    monkeypatch.setattr(devices, "host_gpus", lambda: [f"GPU-{i}" for i in range(8)])  # an 8-GPU host's NVML
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("UCX_TLS", "all")
    with engine_environment("cuda:1", {"UCX_TLS": "cuda_ipc,tcp", "VLLM_NIXL_SIDE_CHANNEL_PORT": "5601"}):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1" and os.environ["UCX_TLS"] == "cuda_ipc,tcp"
        assert os.environ["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5601"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and "VLLM_NIXL_SIDE_CHANNEL_PORT" not in os.environ
    assert os.environ["UCX_TLS"] == "all"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    with engine_environment("cuda:1"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,6"
    with pytest.raises(ValueError, match="sees 2 GPU"):
        with engine_environment("cuda:2"):
            pass


def write_connector_folder(storage: ExampleConnectorStorage, prompt: list[int], layers: int, heads: int,
                           head_dim: int) -> None:
    """What vLLM's ExampleConnector writes in a prefill step: per layer, the stored tokens' KV as
    (tokens, kv_heads, 2 x head_dim) in bf16 (the packed K|V layout of vLLM 0.26's attention backends)."""
    folder = storage.folder(prompt)
    folder.mkdir(parents=True)
    tokens = stored_tokens(len(prompt), storage.block_size)
    for layer in range(layers):
        kv = torch.zeros(tokens, heads, 2 * head_dim, dtype=torch.bfloat16)
        save_file({"kv_cache": kv}, str(folder / f"model.layers.{layer}.self_attn.attn.safetensors"))


def test_connector_storage_names_folders_like_vllm_and_counts_the_stored_bytes(tmp_path):
    storage = ExampleConnectorStorage(tmp_path, block_size=16)
    prompt = list(range(1000, 1000 + 1030))
    # ExampleConnector: align_to_block_size(n) = (n - 1) // block_size * block_size
    assert stored_tokens(1030, 16) == 1024 and stored_tokens(1025, 16) == 1024 and stored_tokens(1024, 16) == 1008
    expected = hashlib.md5(np.asarray(prompt[:1024], dtype=np.int64).tobytes(), usedforsecurity=False).hexdigest()
    assert storage.folder(prompt).name == expected
    # the decode engine loads align(len(its prompt)) tokens: with the same prompt that is what was
    # stored; prompt + first token would look under another folder at block-aligned lengths
    assert stored_tokens(1024 + 1, 16) == 1024 != stored_tokens(1024, 16)
    write_connector_folder(storage, prompt, layers=36, heads=8, head_dim=128)  # Qwen3-8B's KV shape
    kv_bytes, layers, tokens = storage.stored(storage.find(prompt))
    assert (layers, tokens) == (36, 1024) and kv_bytes == 1024 * QWEN3_8B_KV_BYTES_PER_TOKEN
    assert storage.find(list(range(5, 900))) is None
    storage.clear()
    assert not any(tmp_path.iterdir())


def test_connector_storage_prefers_dev_shm_only_with_room(tmp_path):
    assert storage_dir(str(tmp_path / "mine"), "unused", 0) == (tmp_path / "mine").resolve()
    assert storage_dir("auto", str(tmp_path / "disk"), min_free_gb=1e9) == (tmp_path / "disk").resolve()


def result(request_id, tokens, times, dispatch, **metadata) -> GenerationResult:
    return GenerationResult(request_id=request_id, text="", prompt_tokens=0, completion_tokens=len(tokens),
                            output_token_ids=tokens, dispatch_time=dispatch, first_token_time=times[0],
                            last_token_time=times[-1], token_times=times, metadata=metadata)


def test_the_client_sees_the_prefill_token_first_and_the_decode_engine_after(tmp_path):
    storage = ExampleConnectorStorage(tmp_path, block_size=16)
    prompt = list(range(2000, 2000 + 100))
    write_connector_folder(storage, prompt, layers=36, heads=8, head_dim=128)
    prefill_engine = hf_engine(tmp_path, ["model=qwen3_8b"])  # unstarted: the broker needs its tokenizer (none)
    broker = VLLMBroker(prefill_engine, None, label=lambda r: r, on_decode=lambda rid: None,
                        kv_bytes_per_token=QWEN3_8B_KV_BYTES_PER_TOKEN, connector="ExampleConnector",
                        transfer_mode="connector", storage=storage)
    request = GenerationRequest(request_id="r", prompt_token_ids=prompt, max_new_tokens=4)
    first = result("r-prefill", [11], [10.5], 10.0, engine_queue_ms=1.0, prefill_ms=400.0, decode_ms=0.0,
                   finish_reason="length", kv_transfer_params=None)
    # the decode engine samples the first token again (same prompt); the client keeps the prefill's
    rest = result("r-decode", [11, 12, 13, 14], [10.8, 10.81, 10.82, 10.83], 10.5, engine_queue_ms=2.0,
                  prefill_ms=150.0, decode_ms=20.0, num_cached_tokens=96, finish_reason="length")
    merged = broker._merge(request, prompt, first, rest)
    assert merged.output_token_ids == [11, 12, 13, 14] and merged.token_times == [10.5, 10.81, 10.82, 10.83]
    # a first streamed output holding two tokens keeps its arrival: it carried a new token too
    coalesced = result("r-decode", [11, 12, 13], [10.8, 10.82], 10.5, finish_reason="length")
    assert broker._merge(request, prompt, first, coalesced).token_times == [10.5, 10.8, 10.82]
    assert merged.ttft_ms == pytest.approx(500.0) and merged.prompt_tokens == 100
    assert merged.metadata["prefill_ms"] == 400.0 and merged.metadata["decode_first_step_ms"] == 150.0
    figures = broker._accounting("r", prompt, first, rest)
    assert figures["kv_bytes"] == 96 * QWEN3_8B_KV_BYTES_PER_TOKEN and figures["kv_tokens"] == 96
    assert figures["kv_transfer_s"] == pytest.approx(0.3) and figures["kv_wait_s"] == pytest.approx(0.15)
    assert figures["kv_simulated"] is False and figures["kv_accounting"] == "connector_files"
    # vLLM's debug connector, labelled as such on every request it handed over
    assert figures["kv_connector"] == "ExampleConnector" and figures["kv_connector_debug"] is True
    assert figures["kv_transfer_mode"] == "connector"
    broker._discard(prompt)
    assert storage.find(prompt) is None
