"""vLLM for real on a GPU (run on the device machine: python -m pytest -m gpu tests)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import manifests, read_summary

pytestmark = pytest.mark.gpu

# tiny_qwen3 with 64-wide heads (the attention kernels bundled for Hopper want head_dim >= 64)
TINY_VLLM = ["serving=vllm", "model.load_format=dummy", "model.architecture.head_dim=64",
             "model.architecture.num_attention_heads=2", "model.architecture.num_key_value_heads=1",
             "serving.enforce_eager=true", "serving.gpu_memory_utilization=0.3"]


def test_a_sweep_streams_through_one_engine_with_the_engine_split(run_launch):
    process, root = run_launch("-m", "experiment=e1", "prompt_len=256,1024", "repeats=3", "output_len=16",
                               *TINY_VLLM, timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed", "completed"]
    assert records[0]["engines"]["aggregated"]["engine"] == "vllm"
    assert records[0]["engines"]["aggregated"]["kv_capacity_tokens"] > 0
    summaries = [read_summary(Path(m["_dir"])) for m in records]
    assert summaries[0]["engine_start_s"] > 0 and summaries[1]["engine_start_s"] == 0
    for record, summary in zip(records, summaries):
        requests = pd.read_parquet(Path(record["_dir"]) / "requests.parquet")
        measured = requests[requests["phase"] == "measure"]
        assert (measured["completion_tokens"] == 16).all()
        assert (measured["num_cached_tokens"] == 0).all()  # distinct prompts, prefix cache reset per job
        for column in ("engine_queue_ms", "prefill_ms", "decode_ms", "engine_ttft_ms", "frontend_ttft_ms",
                       "engine_ipc_ms", "harness_overhead_ms"):
            assert measured[column].notna().all(), column
        assert (measured["ttft_ms"] >= measured["frontend_ttft_ms"]).all()
        assert summary["harness_overhead_p50_ms"] < 5.0
        assert summary["checks"]["reproducible"] is True


def test_stopping_an_engine_frees_its_gpu_memory(tmp_path):
    import pynvml

    from context_research import devices
    from context_research.serving import engine_cache
    from context_research.serving.backends.vllm import VLLMBackend
    from tests.conftest import typed

    pynvml.nvmlInit()  # the engine's GPU: the first visible one, by its NVML index (not NVML's GPU 0)
    handle = pynvml.nvmlDeviceGetHandleByIndex(devices.visible_nvml_indices(devices.host_gpus())[0])
    before = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    chosen = [*TINY_VLLM, "serving.interface=offline"]
    serving, model = typed(chosen, "serving"), typed(chosen, "model")
    engines, _ = engine_cache.acquire({"x": lambda: VLLMBackend(serving, model, str(tmp_path))})
    during = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    assert engines["x"].describe()["interface"] == "offline"
    engine_cache.release_all()
    after = pynvml.nvmlDeviceGetMemoryInfo(handle).used
    assert during - before > 10e9  # 30% of an H200
    assert after - before < 1e9
