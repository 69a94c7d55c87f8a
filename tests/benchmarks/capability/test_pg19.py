"""PG19 sliding-window perplexity on the tiny model, checked against transformers' own loss."""

import math

import pytest
import torch

from context_research.benchmarks.capability.pg19 import PG19Task, sliding_windows
from context_research.requests import GenerationRequest
from tests.conftest import outcome_figures, typed


@pytest.mark.parametrize("length, window, stride", [(10, 4, 2), (10, 4, 3), (9, 4, 1), (3, 8, 4), (100, 32, 31)])
def test_windows_score_every_token_after_the_first_once(length, window, stride):
    ids = list(range(length))
    scored = []
    for w in sliding_windows("b", ids, window, stride):
        assert len(w.token_ids) <= window and w.first_scored >= 1
        start = w.token_ids[0]
        scored.extend(start + i for i in range(w.first_scored, len(w.token_ids)))
    assert scored == list(range(1, length))


def test_windows_must_overlap():
    with pytest.raises(ValueError, match="stride 4"):
        sliding_windows("b", list(range(10)), 4, 4)


def test_prompt_logprobs_match_the_model_loss(scheduler):
    engine = scheduler.engines["aggregated"]
    ids = [int(i) for i in torch.randint(5, 4000, (150,), generator=torch.Generator().manual_seed(0))]
    result = scheduler.prompt_logprobs(GenerationRequest(request_id="lp", prompt_token_ids=ids, max_new_tokens=1))
    logprobs = result.metadata["prompt_logprobs"]
    assert len(logprobs) == len(ids) and logprobs[0] is None and result.completion_tokens == 1
    with torch.inference_mode():
        loss = engine.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert -sum(logprobs[1:]) / (len(ids) - 1) == pytest.approx(loss, rel=1e-5)


def test_pg19_perplexity_pools_windows_over_books(scheduler, tokenizer_dir, data_dir):
    chosen = [f"model.tokenizer={tokenizer_dir}", "benchmark=pg19", f"benchmark.data_dir={data_dir / 'pg19'}",
              "benchmark.context_len=128", "benchmark.stride=48", "benchmark.num_samples=2", "seed=0",
              "benchmark.max_doc_tokens=300"]
    task = PG19Task(typed(chosen, "benchmark"), typed(chosen, "model"))
    samples = task.load("test")
    assert len(samples.book_ids) == 2 and set(samples.book_ids) <= {"10001", "10002", "10003"}
    assert samples.book_ids == task.load("test").book_ids  # seeded subset
    observed = []
    outcome = outcome_figures(task.evaluate(scheduler, samples, lambda result, phase: observed.append(result)))
    assert len(observed) == len(samples.windows)
    assert {r.metadata["sample_id"] for r in observed} == set(samples.book_ids)
    nll = sum(r.metadata["nll"] for r in observed)
    tokens = sum(r.metadata["scored_tokens"] for r in observed)
    assert tokens == 2 * 299 == outcome["scored_tokens"]  # every token after each book's first, once
    assert outcome["task_scores"]["pg19"] == pytest.approx(math.exp(nll / tokens))
    assert outcome["sample_ids"] == {"pg19": samples.book_ids}
    assert set(outcome["book_perplexity"]) == set(samples.book_ids)
    assert all(outcome["checks"].values())
    # random weights over a 4096-token vocabulary: near-uniform, so perplexity is near the vocabulary size
    assert 1000 < outcome["score"] < 20000
