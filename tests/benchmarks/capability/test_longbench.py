"""LongBench loading: official templates, middle truncation to the token budget, the chat template
where pred.py uses one, and seeded subsets from local JSONL through `datasets`."""

import json

import pytest

from context_research.benchmarks.capability.longbench import LongBenchTask, build_prompt
from context_research.serving.prompting import PromptEncoder
from tests.benchmarks.capability.conftest import tiny_model
from tests.conftest import typed


@pytest.fixture(scope="module")
def model(tokenizer_dir):
    return tiny_model(tokenizer_dir)


def rows(data_dir, task):
    return [json.loads(line) for line in (data_dir / "longbench" / f"{task}.jsonl").read_text().splitlines()]



def longbench_task(model, *overrides: str) -> LongBenchTask:
    """A LongBench task from the typed config the overrides compose, for `model`."""
    return LongBenchTask(typed(["benchmark=longbench", *overrides], "benchmark"), model)

def test_middle_truncation_keeps_both_ends_within_budget(model, data_dir):
    encoder = PromptEncoder(model)
    row = rows(data_dir, "hotpotqa")[0]
    prompt = build_prompt(encoder, "hotpotqa", row, context_len=300)
    text = encoder.tokenizer.decode(prompt.prompt_token_ids)
    assert prompt.metadata["truncated"] and prompt.metadata["chat_template"]
    assert text.startswith("<|im_start|>user\nAnswer the question based on the given passages.")
    assert text.endswith(f"Question: {row['input']}\nAnswer:<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    template_tokens = len(encoder.encode("", chat=True))
    assert len(prompt.prompt_token_ids) <= 300 + template_tokens + 1  # +1: re-tokenising the joined halves
    assert prompt.max_new_tokens == 32 and prompt.sample_id == row["_id"]


def test_untruncated_prompt_is_the_official_template(model, data_dir):
    encoder = PromptEncoder(model)
    row = rows(data_dir, "trec")[0]
    prompt = build_prompt(encoder, "trec", row, context_len=None)  # the model's budget: 4096 - 64
    expected = ("Please determine the type of the question below. Here are some examples of questions.\n\n"
                f"{row['context']}\n{row['input']}")
    assert not prompt.metadata["truncated"] and not prompt.metadata["chat_template"]  # few-shot: sent raw
    assert prompt.prompt_token_ids == encoder.token_ids(expected)
    assert prompt.references == {"answers": row["answers"], "all_classes": row["all_classes"]}


def test_the_model_budget_leaves_room_for_the_chat_template_and_the_answer(tokenizer_dir, data_dir):
    model = tiny_model(tokenizer_dir, "model.max_model_len=700")
    prompt = build_prompt(PromptEncoder(model), "gov_report", rows(data_dir, "gov_report")[1], context_len=None)
    assert prompt.metadata["truncated"]
    assert 680 <= len(prompt.prompt_token_ids) + prompt.max_new_tokens <= 700  # 512 to generate, the rest prompt


def test_subsets_are_fixed_by_seed(model, data_dir, tmp_path):
    def sample_ids(seed, num_samples=3):
        task = longbench_task(model, f"benchmark.data_dir={data_dir / 'longbench'}", "benchmark.tasks=[qasper,lcc]",
                              f"benchmark.num_samples={num_samples}", f"seed={seed}",
                              f"benchmark.cache_dir={tmp_path}")
        return task.load().sample_ids()

    first = sample_ids(0)
    assert first == sample_ids(0)
    assert [len(ids) for ids in first.values()] == [3, 3] and list(first) == ["qasper", "lcc"]
    assert sample_ids(1) != first
    assert len(set(sample_ids(0, num_samples=10)["qasper"])) == 5  # capped at the file's 5 rows


def test_missing_task_file_is_reported(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="qasper.jsonl"):
        longbench_task(model, f"benchmark.data_dir={tmp_path}", "benchmark.tasks=[qasper]").load()
