"""On one GPU (H200): two vLLM engines on cuda:0 joined by NixlConnector hand two requests over, one
after another, and continue with the tokens the aggregated engine gives (greedy), each handoff
counted by NIXL's own statistics and the UCX transports it took read from UCX's log.

    PYTHONPATH=.:/tmp/site VLLM_USE_FLASHINFER_SAMPLER=0 python -m pytest -m gpu tests/serving/test_nixl_gpu.py -s -rA

The model is the tiny Qwen3 with seeded random weights written as a checkpoint (random, not vLLM's
dummy weights, whose near-uniform logits leave greedy decoding at the mercy of rounding). Each
handoff prints one `nixl_handoff {...}` JSON line (the evidence for results/h200/e3-nixl/).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from context_research.app import build, build_engines
from context_research.config import validate
from context_research.requests import GenerationRequest
from context_research.serving import engine_cache
from context_research.serving.model_source import materialize_model_dir
from context_research.workloads.synthetic import synthetic_prompts, token_id_range
from tests.conftest import compose_config, typed
from tests.serving.test_vllm_gpu import TINY_VLLM

pytestmark = pytest.mark.gpu

PROMPT_LENS = (300, 1000)
NEW_TOKENS = 16
MODEL = [*TINY_VLLM, "model.dtype=bfloat16"]  # Qwen3-8B's dtype, FlashAttention's on Hopper


def job(cache, checkpoint, *overrides: str) -> dict:
    """The typed groups of a job on the tiny checkpoint (eager engines, 0.3 of the GPU each)."""
    return validate(compose_config([*MODEL, f"model.path={checkpoint}", "model.load_format=auto",
                                    f"paths.cache_dir={cache}", *overrides]))


def serve(groups: dict, requests: list[GenerationRequest], observe=lambda scheduler: None):
    """Each request in turn through the job's scheduler (its engines started, or reused, by the cache),
    and what `observe` reads of the scheduler before it closes (closing drops its broker)."""
    scheduler = build(groups["scheduler"])
    engines, _ = build_engines(groups, scheduler)
    scheduler.bind(engines)
    try:
        return [scheduler.generate(request) for request in requests], observe(scheduler)
    finally:
        scheduler.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if importlib.util.find_spec("nixl") is None:
        pytest.skip("needs nixl (pip install nixl==1.3.1)")
    cache = tmp_path_factory.mktemp("cache")
    model = typed(MODEL, "model")
    checkpoint = materialize_model_dir(model, cache, seed=0)
    requests = [GenerationRequest(request_id=f"nixl-{n}", prompt_token_ids=ids, max_new_tokens=NEW_TOKENS,
                                  ignore_eos=True)
                for n, [ids] in ((n, synthetic_prompts(1, n, token_id_range(model.config_json), seed=0))
                                 for n in PROMPT_LENS)]
    try:
        disaggregated, (per_token, block_size) = serve(
            job(cache, checkpoint, "scheduler=disaggregated_nixl", "scheduler.shared_device_memory_utilization=0.3"),
            requests, lambda scheduler: (scheduler.broker.kv_bytes_per_token,
                                         scheduler.engines["decode"].describe()["block_size"]))
        aggregated, _ = serve(job(cache, checkpoint, "scheduler=aggregated"), requests)
    finally:
        engine_cache.release_all()
    for result in disaggregated:
        print("nixl_handoff", json.dumps({k: v for k, v in result.metadata.items() if k.startswith("kv_")},
                                         default=str), flush=True)
    return requests, disaggregated, aggregated, per_token, block_size


def test_tokens_after_the_handoff_equal_the_aggregated_engines(runs):
    requests, disaggregated, aggregated, _, _ = runs
    for request, handed, alone in zip(requests, disaggregated, aggregated):
        assert handed.error is None, handed.error
        assert len(handed.output_token_ids) == NEW_TOKENS
        assert handed.output_token_ids == alone.output_token_ids, request.request_id


def test_each_handoff_is_counted_by_nixls_statistics_on_one_gpu(runs):
    requests, disaggregated, _, per_token, block_size = runs
    for request, result in zip(requests, disaggregated):
        meta = result.metadata
        assert meta["kv_transfer_mode"] == "nixl_same_gpu" and meta["kv_connector"] == "NixlConnector"
        assert meta["kv_accounting"] == "connector_stats", meta  # one request at a time: each handoff alone
        prompt = len(request.prompt_token_ids)
        # NIXL reads whole blocks of the prompt
        assert prompt * per_token <= meta["kv_bytes"] < (prompt + block_size) * per_token
        assert meta["kv_transfer_s"] > 0 and meta["kv_descriptors"] > 0
        # what UCX says it used, or why it says nothing: recorded either way
        assert meta["kv_ucx_source"]
