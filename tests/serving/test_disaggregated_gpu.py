"""On two GPUs (2 x H200): a 32K-token Qwen3-8B prompt handed from a prefill engine on cuda:0 to a
decode engine on cuda:1 moves 32768 x 147,456 = 4,831,838,208 bytes at >= 300 GB/s (NVLink), and
the decode engine continues with the aggregated engine's greedy tokens.

    NCCL_NVLS_ENABLE=0 python -m pytest -m gpu tests/serving/test_disaggregated_gpu.py -s

Each handoff prints one `kv_handoff {...}` JSON line (the evidence for results/h200x2/e3/).
"""

from __future__ import annotations

import json

import pytest

from context_research import devices
from context_research.requests import GenerationRequest
from context_research.serving.schedulers.disaggregated import DisaggregatedScheduler
from context_research.workloads.synthetic import synthetic_prompts, token_id_range
from tests.conftest import hf_engine, typed

pytestmark = pytest.mark.gpu

PROMPT_LEN = 32768
KV_BYTES = 32768 * 147_456
MIN_RATE_GB_S = 300.0


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    if devices.visible_gpu_count() < 2:  # NVML: torch.cuda would make later vLLM forks fail
        pytest.skip("needs two GPUs")
    model = typed(["model=qwen3_8b"], "model")
    cache = tmp_path_factory.mktemp("cache")
    pair = {pool: hf_engine(cache, ["model=qwen3_8b", f"serving.device={device}", "serving.dtype=bfloat16"])
            for pool, device in (("prefill", "cuda:0"), ("decode", "cuda:1"))}
    for engine in pair.values():
        engine.start()
    yield model, pair
    for engine in pair.values():
        engine.stop()


@pytest.fixture(scope="module")
def handoffs(engines):
    """The same 32K request through the disaggregated scheduler twice (the first also enables peer
    access and fills the decode GPU's allocator), and once aggregated on cuda:0."""
    model, pair = engines
    scheduler = DisaggregatedScheduler(typed(["scheduler=disaggregated", "scheduler.prefill_device=cuda:0",
                                              "scheduler.decode_device=cuda:1", "scheduler.transfer=device_copy"],
                                             "scheduler"))
    scheduler.bind(pair)
    [ids] = synthetic_prompts(1, PROMPT_LEN, token_id_range(model.config_json), seed=0)
    request = GenerationRequest(request_id="handoff-32k", prompt_token_ids=ids, max_new_tokens=8,
                                ignore_eos=True)
    try:
        results = [scheduler.generate(request) for _ in range(2)]
    finally:
        scheduler.close()
    for attempt, result in enumerate(results):
        figures = {k: v for k, v in result.metadata.items() if k.startswith("kv_")}
        print("kv_handoff", json.dumps({"attempt": attempt, "prompt_tokens": result.prompt_tokens,
                                        "ttft_ms": result.ttft_ms, "tpot_ms": result.tpot_ms, **figures}))
    return results, pair["prefill"].generate(request)


def test_a_32k_handoff_moves_every_byte_over_nvlink_at_300_gb_s(handoffs):
    results, _ = handoffs
    for result in results:
        assert result.metadata["kv_bytes"] == KV_BYTES == 4_831_838_208
        assert result.metadata["kv_source"] == "cuda:0" and result.metadata["kv_destination"] == "cuda:1"
    steady = results[-1].metadata
    assert steady["kv_bytes"] / steady["kv_transfer_s"] / 1e9 >= MIN_RATE_GB_S, steady


def test_greedy_tokens_after_the_handoff_equal_the_aggregated_ones(handoffs):
    results, aggregated = handoffs
    assert [r.output_token_ids for r in results] == [aggregated.output_token_ids] * 2
