"""The HF engine: explicit-KV-cache greedy decoding equals transformers' own generate, timestamps
are one monotonic timeline, and prefill + decode equals generate."""

from __future__ import annotations

import pytest
import torch

from context_research.requests import GenerationRequest
from context_research.serving.backends.hf import HFBackend
from tests.conftest import compose_config

from omegaconf import OmegaConf


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    model = OmegaConf.to_object(compose_config().model)
    engine = HFBackend(model=model, cache_dir=str(tmp_path_factory.mktemp("cache")), device="cpu", seed=0)
    engine.start()
    yield engine
    engine.stop()


def request(ids, new=12, **kw):
    return GenerationRequest(request_id="r", prompt_token_ids=ids, max_new_tokens=new,
                             metadata={"ignore_eos": True}, **kw)


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
    eos = backend.model_config.config_json["eos_token_id"]
    backend._eos_ids = set(range(backend.model_config.config_json["vocab_size"]))  # every token ends
    try:
        stopped = backend.generate(GenerationRequest(request_id="e", prompt_token_ids=[5, 6, 7], max_new_tokens=5))
        ignored = backend.generate(request([5, 6, 7], new=5))
    finally:
        backend._eos_ids = {eos}
    assert stopped.completion_tokens == 1 and ignored.completion_tokens == 5


def test_the_cache_keyword_matches_the_installed_transformers(backend):
    import inspect

    assert backend._cache_keyword in inspect.signature(backend.model.forward).parameters
