"""The HF engine: explicit-KV-cache greedy decoding equals transformers' own generate, timestamps
are one monotonic timeline, and prefill + decode equals generate."""

from __future__ import annotations

import pytest
import torch

from context_research.requests import GenerationRequest
from tests.conftest import hf_engine


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    engine = hf_engine(tmp_path_factory.mktemp("cache"))
    engine.start()
    yield engine
    engine.stop()


def request(ids, new=12, **kw):
    return GenerationRequest(request_id="r", prompt_token_ids=ids, max_new_tokens=new,
                             ignore_eos=True, **kw)


def test_greedy_tokens_equal_transformers_generate(backend):
    ids = list(range(100, 140))
    ours = backend.generate(request(ids)).output_token_ids
    with torch.inference_mode():
        reference = backend.model.generate(torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12,
                                           do_sample=False)
    assert ours == reference[0, len(ids):].tolist()


def test_timeline_is_monotonic_and_consistent(backend):
    result = backend.generate(request(list(range(200, 264)), new=8))
    assert result.prompt_tokens == 64 and result.completion_tokens == 8
    times = result.token_times
    assert len(times) == 8 and times == sorted(times)
    assert result.dispatch_time < result.first_token_time == times[0] <= result.last_token_time == times[-1]
    assert result.ttft_ms > 0
    assert result.tpot_ms == pytest.approx((times[-1] - times[0]) * 1e3 / 7)


def test_prefill_then_decode_equals_generate(backend):
    ids = list(range(300, 332))
    whole = backend.generate(request(ids, new=6))
    first = backend.prefill(request(ids, new=6))
    assert first.completion_tokens == 1 and first.output_token_ids == whole.output_token_ids[:1]
    state = first.metadata["prefill_state"]
    continued = backend.decode_from(request(ids, new=6), state, first.first_token_time, first.dispatch_time)
    assert continued.output_token_ids == whole.output_token_ids


def test_sampling_is_seeded(backend):
    ids = list(range(50, 70))
    a = backend.generate(request(ids, temperature=1.0, top_p=0.9, seed=7)).output_token_ids
    b = backend.generate(request(ids, temperature=1.0, top_p=0.9, seed=7)).output_token_ids
    c = backend.generate(request(ids, temperature=1.0, top_p=0.9, seed=8)).output_token_ids
    assert a == b and a != c


def test_stops_at_eos_unless_told_to_ignore_it(backend):
    full = backend.generate(request([5, 6, 7], new=5)).output_token_ids
    backend.eos_ids = frozenset({full[1]})  # a model whose end-of-sequence token is its second greedy token
    try:
        stopped = backend.generate(GenerationRequest(request_id="e", prompt_token_ids=[5, 6, 7], max_new_tokens=5))
        ignored = backend.generate(request([5, 6, 7], new=5))
    finally:
        del backend.eos_ids  # back to the config's
    assert stopped.output_token_ids == full[:2] and ignored.output_token_ids == full
    assert backend.eos_ids == {backend.model_config.config_json["eos_token_id"]}


def test_the_cache_keyword_matches_the_installed_transformers(backend):
    import inspect

    assert backend._cache_keyword in inspect.signature(backend.model.forward).parameters
