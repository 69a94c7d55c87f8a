"""Disaggregated HF serving on CPU: the KV really moves (to a decode worker process over gloo, or
by tensor copies in process), greedy tokens after the handoff equal the aggregated ones, bytes are
counted exactly, and the route and KV figures land on every result."""

from __future__ import annotations

import asyncio

import pytest

from context_research.profiling.roofline import footprint
from context_research.requests import GenerationRequest
from context_research.serving import event_loop
from context_research.serving.schedulers.decode_process import ProcessDecodeEngine
from context_research.serving.schedulers.disaggregated import DisaggregatedScheduler
from tests.conftest import hf_engine, typed


@pytest.fixture(scope="module")
def model():
    return typed([], "model")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def prefill_engine(model, cache_dir):
    engine = hf_engine(cache_dir)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def process_scheduler(model, cache_dir, prefill_engine):
    """Prefill here, decode in a worker process with its own model (same config and seed)."""
    decode = ProcessDecodeEngine(typed(["serving.device=cpu"], "serving"), model, cache_dir)
    decode.start()
    scheduler = disaggregated("scheduler.transfer=process", "scheduler.prefill_device=cpu",
                              "scheduler.decode_device=cpu")
    scheduler.bind({"prefill": prefill_engine, "decode": decode})
    yield scheduler
    scheduler.close()
    decode.stop()


def requests(count: int, prompt_len: int, new: int = 10) -> list[GenerationRequest]:
    return [GenerationRequest(request_id=f"q{i}", prompt_token_ids=[(37 * i + 11 * j) % 8000 + 3 for j in range(prompt_len)],
                              max_new_tokens=new, ignore_eos=True) for i in range(count)]


def kv_bytes(model, prompt_len: int) -> int:
    return footprint(model.config_json, "float32").kv_bytes_per_token * prompt_len


def test_two_process_handoff_gives_the_aggregated_tokens_and_exact_bytes(process_scheduler, prefill_engine, model):
    for request in requests(2, 48):
        disaggregated = process_scheduler.generate(request)
        aggregated = prefill_engine.generate(request)
        assert disaggregated.output_token_ids == aggregated.output_token_ids
        meta = disaggregated.metadata
        # 4 layers x (keys + values) x 2 kv heads x 32 dims x 4 bytes x 48 tokens
        assert meta["kv_bytes"] == kv_bytes(model, 48) == 4 * 2 * 2 * 32 * 4 * 48
        assert meta["kv_transfer_mode"] == "process" and meta["kv_simulated"] is False
        route = process_scheduler.route_table().set_index("request_id").loc[request.request_id]
        assert route["route"] == "prefill->decode" and route["decode_device"] == "cpu"
        assert 0 < meta["kv_transfer_s"] and 0 <= meta["kv_wait_s"] <= meta["kv_transfer_s"]
        assert meta["kv_bandwidth_gb_s"] == pytest.approx(meta["kv_bytes"] / meta["kv_transfer_s"] / 1e9)
        # one timeline across both processes: first token (prefill) before the decoded ones
        times = disaggregated.token_times
        assert disaggregated.dispatch_time < disaggregated.first_token_time == times[0]
        assert times == sorted(times) and len(times) == 10


def test_many_in_flight_keep_their_own_tokens(process_scheduler, prefill_engine):
    batch = requests(3, 40, new=6)
    results = process_scheduler.generate_batch(batch)
    assert [r.request_id for r in results] == ["q0", "q1", "q2"]
    assert [r.output_token_ids for r in results] == [prefill_engine.generate(r).output_token_ids for r in batch]

    async def streamed():
        return await asyncio.gather(*(process_scheduler.generate_async(r) for r in batch))

    assert [r.output_token_ids for r in event_loop.run(streamed())] == [r.output_token_ids for r in results]


def test_route_log_records_both_pools_per_request(process_scheduler):
    process_scheduler.generate(GenerationRequest(request_id="routed", prompt_token_ids=[5] * 20, max_new_tokens=3,
                                                 ignore_eos=True))
    entries = [e for e in process_scheduler.route_log() if e["request_id"] == "routed"]
    assert [(e["phase"], e["pool"], e["device"]) for e in entries] == [("prefill", "prefill", "cpu"),
                                                                        ("decode", "decode", "cpu")]
    route = process_scheduler.route_table().set_index("request_id").loc["routed"]  # the record's columns
    assert (route["route"], route["prefill_pool"], route["decode_pool"]) == ("prefill->decode", "prefill", "decode")


def test_a_single_token_request_never_leaves_the_prefill_pool(process_scheduler):
    result = process_scheduler.generate(GenerationRequest(request_id="one", prompt_token_ids=[9] * 12,
                                                          max_new_tokens=1, ignore_eos=True))
    route = process_scheduler.route_table().set_index("request_id").loc["one"]
    assert result.completion_tokens == 1 and route["route"] == "prefill" and route["decode_pool"] == "prefill"
    assert "kv_bytes" not in result.metadata


@pytest.fixture(scope="module")
def local_decode_engine(prefill_engine):
    """On one CPU the decode pool may be the same engine: the KV is still copied (or held back)."""
    return prefill_engine


def disaggregated(*overrides: str) -> DisaggregatedScheduler:
    return DisaggregatedScheduler(typed(["scheduler=disaggregated", *overrides], "scheduler"))


def local_scheduler(prefill_engine, decode_engine, transfer: str, bandwidth: float = 400.0):
    scheduler = disaggregated(f"scheduler.transfer={transfer}", "scheduler.prefill_device=cpu",
                              "scheduler.decode_device=cpu", f"scheduler.link_bandwidth_gb_s={bandwidth}")
    scheduler.bind({"prefill": prefill_engine, "decode": decode_engine})
    return scheduler


def test_in_process_copy_moves_every_tensor_to_the_decode_engine(prefill_engine, local_decode_engine, model):
    scheduler = local_scheduler(prefill_engine, local_decode_engine, "device_copy")
    try:
        [request] = requests(1, 64)
        result = scheduler.generate(request)
    finally:
        scheduler.close()
    assert result.output_token_ids == prefill_engine.generate(request).output_token_ids
    assert result.metadata["kv_bytes"] == kv_bytes(model, 64)
    assert result.metadata["kv_transfer_mode"] == "device_copy" and result.metadata["kv_simulated"] is False


def test_simulated_link_holds_the_kv_back_and_the_idle_decode_pool_waits_for_it(prefill_engine, local_decode_engine,
                                                                              model):
    bytes_ = kv_bytes(model, 64)
    bandwidth = bytes_ / 0.25 / 1e9  # a link that takes 250 ms for this prompt
    scheduler = local_scheduler(prefill_engine, local_decode_engine, "simulated", bandwidth)
    try:
        [request] = requests(1, 64)
        result = scheduler.generate(request)
    finally:
        scheduler.close()
    meta = result.metadata
    assert meta["kv_simulated"] is True and meta["kv_transfer_mode"] == "simulated"
    assert meta["kv_bytes"] == bytes_ and meta["kv_transfer_s"] >= 0.25
    # the decode worker was idle: it held the request for the whole transfer
    assert meta["kv_wait_s"] == pytest.approx(meta["kv_transfer_s"], abs=0.05)
    # the held-back KV delays the second token, not the first
    assert result.token_times[1] - result.token_times[0] >= 0.25
    assert result.output_token_ids == prefill_engine.generate(request).output_token_ids
