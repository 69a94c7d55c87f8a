"""Synthetic prompts: exact lengths, seeded, no shared prefixes across lengths, no special ids."""

from __future__ import annotations

from context_research.requests import GenerationRequest
from context_research.workloads.synthetic import synthetic_prompts, token_id_range, workload_hash


def test_exact_lengths_and_same_seed_same_ids():
    a = synthetic_prompts(3, 517, (10, 1000), seed=4)
    assert [len(p) for p in a] == [517, 517, 517]
    assert a == synthetic_prompts(3, 517, (10, 1000), seed=4)
    assert a != synthetic_prompts(3, 517, (10, 1000), seed=5)
    assert all(10 <= t < 1000 for p in a for t in p)
    assert len({tuple(p) for p in a}) == 3


def test_lengths_do_not_share_prefixes():
    short = synthetic_prompts(4, 64, (0, 50000), seed=0)
    long = synthetic_prompts(4, 128, (0, 50000), seed=0)
    assert not {tuple(p[:16]) for p in short} & {tuple(p[:16]) for p in long}


def test_token_range_skips_special_ids():
    qwen = {"vocab_size": 151936, "bos_token_id": 151643, "eos_token_id": 151645}
    assert token_id_range(qwen) == (0, 151643)
    llama = {"vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}
    assert token_id_range(llama) == (0, 128000)
    mistral = {"vocab_size": 32768, "bos_token_id": 1, "eos_token_id": 2}
    assert token_id_range(mistral) == (3, 32768)


def test_workload_hash_changes_with_any_prompt_or_budget():
    def requests(ids, budget=8):
        return [GenerationRequest(request_id="a", prompt_token_ids=ids, max_new_tokens=budget)]

    assert workload_hash(requests([1, 2])) == workload_hash(requests([1, 2]))
    assert workload_hash(requests([1, 2])) != workload_hash(requests([1, 3]))
    assert workload_hash(requests([1, 2])) != workload_hash(requests([1, 2], budget=9))
