"""Config -> vLLM arguments, without vLLM installed; without vLLM a job stops with one line before
anything starts, and the engine itself never runs another engine in its place."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from context_research.requests import GenerationRequest
from context_research.serving.backends.vllm import VLLMBackend, engine_arguments, engine_split, sampling_arguments
from tests.conftest import HAS_VLLM, compose_config, typed

def vllm_configs(overrides):
    chosen = ["serving=vllm", "model=qwen3_8b", "model.load_format=dummy", *overrides]
    return typed(chosen, "serving"), typed(chosen, "model")


def test_engine_arguments_follow_the_config():
    serving, model = vllm_configs(["serving.gpu_memory_utilization=0.8", "serving.enforce_eager=true",
                            "serving.max_num_seqs=64", "serving.kv_cache_dtype=fp8", "seed=3",
                            "serving.enable_prefix_caching=false", "serving.max_num_batched_tokens=4096",
                            "serving.enable_chunked_prefill=true", "+serving.extra_engine_args.block_size=32"])
    args = engine_arguments(serving, model, "/models/qwen3", None)
    assert args == {
        "model": "/models/qwen3", "skip_tokenizer_init": True, "dtype": "bfloat16", "max_model_len": 40960,
        "gpu_memory_utilization": 0.8, "enforce_eager": True, "kv_cache_dtype": "fp8",
        "tensor_parallel_size": 1, "seed": 3, "load_format": "dummy", "disable_log_stats": False,
        "enable_chunked_prefill": True, "max_num_batched_tokens": 4096, "max_num_seqs": 64,
        "enable_prefix_caching": False, "block_size": 32,
        "worker_extension_cls": "context_research.serving.backends.vllm_memory.WorkerMemoryAccounting"}


def test_defaults_leave_vllm_its_own_choices_and_pass_overrides():
    serving, model = vllm_configs(["serving.max_model_len=8192", "serving.dtype=float16",
                            "+serving.hf_overrides.max_position_embeddings=131072"])
    args = engine_arguments(serving, model, "/m", "/tok")
    assert args["tokenizer"] == "/tok" and args["skip_tokenizer_init"] is False
    assert args["max_model_len"] == 8192 and args["dtype"] == "float16"
    assert args["hf_overrides"] == {"max_position_embeddings": 131072}
    for key in ("enable_chunked_prefill", "max_num_batched_tokens", "max_num_seqs", "enable_prefix_caching",
                "compilation_config"):
        assert key not in args


def test_cuda_graph_size_merges_into_the_compilation_config():
    serving, model = vllm_configs(["serving.max_cudagraph_capture_size=1024",
                            "+serving.extra_engine_args.compilation_config.mode=0"])
    args = engine_arguments(serving, model, "/m", None)
    assert args["compilation_config"] == {"mode": 0, "max_cudagraph_capture_size": 1024}


def test_e1_on_vllm_captures_the_1k_prefill_as_a_cuda_graph():
    # conf/experiment_serving/e1_vllm.yaml, chosen by the root defaults list for experiment=e1 serving=vllm
    assert compose_config(["experiment=e1", "serving=vllm"]).serving.max_cudagraph_capture_size == 1024
    assert compose_config(["serving=vllm"]).serving.max_cudagraph_capture_size is None
    assert "max_cudagraph_capture_size" not in compose_config(["experiment=e1"]).serving  # hf has no such key


def test_sampling_arguments():
    request = GenerationRequest(request_id="a", prompt_token_ids=[1, 2], max_new_tokens=9, seed=4,
                                ignore_eos=True)
    assert sampling_arguments(request, detokenize=False) == {
        "max_tokens": 9, "temperature": 0.0, "top_p": 1.0, "seed": 4, "ignore_eos": True, "detokenize": False}


def test_engine_split_uses_the_engine_timestamps():
    # vLLM's RequestStateStats: engine-core monotonic timestamps and the frontend's first_token_latency
    stats = SimpleNamespace(queued_ts=10.000, scheduled_ts=10.002, first_token_ts=10.032, last_token_ts=10.700,
                            first_token_latency=0.0345)
    split = engine_split(stats, ttft_ms=35.0)
    assert split["engine_queue_ms"] == pytest.approx(2.0)
    assert split["prefill_ms"] == pytest.approx(30.0)
    assert split["decode_ms"] == pytest.approx(668.0)
    assert split["engine_ttft_ms"] == pytest.approx(32.0)
    assert split["frontend_ttft_ms"] == pytest.approx(34.5)
    assert split["engine_ipc_ms"] == pytest.approx(2.5)
    assert split["harness_overhead_ms"] == pytest.approx(0.5)
    assert engine_split(None, 1.0) == {}


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_without_vllm_a_job_stops_before_anything_starts(run_launch):
    process, root = run_launch("serving=vllm", "model.load_format=dummy", timeout=120)
    assert process.returncode == 2
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: serving='vllm': vLLM is not installed here; on a GPU host: pip install -e '.[vllm]'"]
    assert not list(root.glob("**/manifest.json"))  # nothing was recorded, nothing started


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_the_engine_never_runs_another_engine_in_its_place(tmp_path):
    serving, model = vllm_configs([])
    with pytest.raises(RuntimeError, match="vLLM cannot be imported.*pip install -e '.\\[vllm\\]'"):
        VLLMBackend(serving, model, str(tmp_path)).start()
