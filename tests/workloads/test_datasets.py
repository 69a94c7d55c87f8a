"""Text data sets as workloads: ShareGPT JSON and plain JSONL, read through `datasets`, tokenised
with the model's tokenizer, filtered as vLLM's ShareGPT sampler does, seeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.benchmarks.capability.conftest import tiny_model
from tests.workloads.conftest import workload_config, write_jsonl

from context_research.serving.prompting import PromptEncoder
from context_research.workloads.datasets import jsonl_requests, sharegpt_requests

QUESTION = "Why does the red fox jump over the lazy dog near the river?"
ANSWER = "Because the quick brown fox likes the river bank, and then it rested in the sun."


def turn(role: str, text: str) -> dict:
    return {"from": role, "value": text}


def sharegpt_file(path: Path) -> Path:
    """Conversations of every kind the sampler meets, in ShareGPT's JSON layout."""
    conversations = [
        {"id": "ok_0", "conversations": [turn("human", QUESTION), turn("gpt", ANSWER), turn("human", "And then?")]},
        {"id": "gpt_only_1", "conversations": [turn("gpt", ANSWER)]},  # no human turn: skipped
        {"id": "short_prompt_2", "conversations": [turn("human", "Hi"), turn("gpt", ANSWER)]},  # < 4 tokens
        {"id": "short_reply_3", "conversations": [turn("human", QUESTION), turn("gpt", "Ok")]},  # < 4 tokens
        {"id": "long_4", "conversations": [turn("human", " ".join([QUESTION] * 40)), turn("gpt", ANSWER)]},
        {"id": "late_human_5", "conversations": [turn("gpt", "Hello, how can I help?"), turn("human", ANSWER),
                                                 turn("gpt", QUESTION)]},
    ]
    path.write_text(json.dumps(conversations), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def encoder(tokenizer_dir) -> PromptEncoder:
    return PromptEncoder(tiny_model(tokenizer_dir))


def test_sharegpt_first_human_turn_is_the_prompt_and_the_reply_sets_the_output(tmp_path, encoder) -> None:
    path = sharegpt_file(tmp_path / "sharegpt.json")
    workload = workload_config("sharegpt", path, "num_prompts=10")
    loaded = sharegpt_requests(workload, encoder, max_model_len=300, cache_dir=tmp_path / "cache")
    by_record = {r.metadata["labels"]["source_record"]: r for r in loaded.requests}
    assert sorted(by_record) == [1, 6]  # gpt-only, short prompt, short reply and too long are skipped
    assert loaded.skipped == 4
    first = by_record[1]
    assert first.prompt_token_ids == encoder.encode(QUESTION)  # through the chat template
    assert encoder.tokenizer.decode(first.prompt_token_ids).startswith("<|im_start|>user\n" + QUESTION)
    assert first.max_new_tokens == len(encoder.tokenizer(ANSWER, add_special_tokens=False)["input_ids"])
    assert first.ignore_eos and first.prompt is None
    # a conversation opened by the model: its first human turn, with the gpt turn after it
    assert by_record[6].prompt_token_ids == encoder.encode(ANSWER)
    assert [r.request_id for r in loaded.requests] == ["q0", "q1"]
    assert list((tmp_path / "cache").iterdir())  # datasets built its table there


def test_sharegpt_is_shuffled_by_the_seed_and_cut_at_num_requests(tmp_path, encoder) -> None:
    conversations = [{"id": f"c{i}", "conversations": [turn("human", f"{QUESTION} Number {i}?"), turn("gpt", ANSWER)]}
                     for i in range(12)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(conversations), encoding="utf-8")

    def order(seed: int) -> list[int]:
        workload = workload_config("sharegpt", path, "num_prompts=5", f"seed={seed}")
        return [r.metadata["labels"]["source_record"] for r in sharegpt_requests(workload, encoder, 4096).requests]

    assert len(order(0)) == 5 and order(0) == order(0)
    assert order(0) != order(1)
    assert len(set(order(0))) == 5


def test_fixed_output_len_replaces_the_reply_length_and_its_minimum(tmp_path, encoder) -> None:
    path = sharegpt_file(tmp_path / "sharegpt.json")
    workload = workload_config("sharegpt", path, "num_prompts=10", "benchmark.workload.fixed_output_len=7")
    loaded = sharegpt_requests(workload, encoder, max_model_len=300)
    assert sorted(r.metadata["labels"]["source_record"] for r in loaded.requests) == [1, 4, 6]  # short reply kept
    assert {r.max_new_tokens for r in loaded.requests} == {7}


def test_jsonl_prompts_with_and_without_their_output_len(tmp_path, encoder) -> None:
    path = write_jsonl(tmp_path / "prompts.jsonl", [
        {"prompt": QUESTION, "output_len": 9},
        {"prompt": ANSWER, "output_len": 3, "note": "extra fields are ignored"},
        {"prompt": " ".join([ANSWER] * 60), "output_len": 5},  # over max_model_len: skipped
    ])
    loaded = jsonl_requests(workload_config("jsonl", path, "num_prompts=10"), encoder, max_model_len=400)
    by_record = {r.metadata["labels"]["source_record"]: r for r in loaded.requests}
    assert sorted(by_record) == [1, 2] and loaded.skipped == 1
    assert by_record[1].prompt_token_ids == encoder.encode(QUESTION) and by_record[1].max_new_tokens == 9
    assert by_record[2].max_new_tokens == 3
    fixed = jsonl_requests(workload_config("jsonl", path, "benchmark.workload.fixed_output_len=2"), encoder, 400)
    assert {r.max_new_tokens for r in fixed.requests} == {2}


def test_jsonl_prompts_without_the_chat_template_are_the_text_as_a_server_tokenises_it(tmp_path, encoder) -> None:
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": QUESTION, "output_len": 4}])
    raw = jsonl_requests(workload_config("jsonl", path, "benchmark.workload.chat_template=false"), encoder, 400)
    templated = jsonl_requests(workload_config("jsonl", path), encoder, 400)
    assert raw.requests[0].prompt_token_ids == encoder.token_ids(QUESTION)  # as /v1/completions tokenises text
    assert templated.requests[0].prompt_token_ids == encoder.encode(QUESTION) != raw.requests[0].prompt_token_ids


def test_only_jsonl_prompts_go_without_the_chat_template(tmp_path) -> None:
    from context_research.config.errors import ConfigError

    path = sharegpt_file(tmp_path / "sg.json")
    with pytest.raises(ConfigError, match="chat_template"):
        workload_config("sharegpt", path, "benchmark.workload.chat_template=false")
