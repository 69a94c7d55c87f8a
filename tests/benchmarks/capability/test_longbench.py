"""LongBench loading: official templates, middle truncation to the token budget, the chat template
where pred.py uses one, and seeded subsets from local JSONL through `datasets`."""

import json

import pytest

from context_research.benchmarks.capability.longbench import LongBenchTask, build_prompt
from context_research.benchmarks.capability.prompting import PromptEncoder
from tests.benchmarks.capability.conftest import tiny_model


@pytest.fixture(scope="module")
def model(tokenizer_dir):
    return tiny_model(tokenizer_dir)


def rows(data_dir, task):
    return [json.loads(line) for line in (data_dir / "longbench" / f"{task}.jsonl").read_text().splitlines()]


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
        task = LongBenchTask(model, str(data_dir / "longbench"), ["qasper", "lcc"], num_samples, seed,
                             cache_dir=str(tmp_path))
        return task.load().sample_ids()

    first = sample_ids(0)
    assert first == sample_ids(0)
    assert [len(ids) for ids in first.values()] == [3, 3] and list(first) == ["qasper", "lcc"]
    assert sample_ids(1) != first
    assert len(set(sample_ids(0, num_samples=10)["qasper"])) == 5  # capped at the file's 5 rows


def test_missing_task_file_is_reported(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="qasper.jsonl"):
        LongBenchTask(model, str(tmp_path), ["qasper"]).load()


def test_task_settings_are_the_official_files():
    from context_research.benchmarks.capability.longbench_spec import DATASET2MAXLEN, DATASET2PROMPT

    assert list(DATASET2PROMPT) == list(DATASET2MAXLEN) == [
        "narrativeqa", "qasper", "multifieldqa_en", "multifieldqa_zh", "hotpotqa", "2wikimqa", "musique", "dureader",
        "gov_report", "qmsum", "multi_news", "vcsum", "trec", "triviaqa", "samsum", "lsht", "passage_count",
        "passage_retrieval_en", "passage_retrieval_zh", "lcc", "repobench-p"]
    assert list(DATASET2MAXLEN.values()) == [128, 128, 64, 64, 32, 32, 32, 128, 512, 512, 512, 512, 64, 32, 128, 64,
                                             32, 32, 32, 64, 64]
    # main's narrativeqa template, typo included (the fix is an unmerged pull request)
    assert DATASET2PROMPT["narrativeqa"] == (
        "You are given a story, which can be either a novel or a movie script, and a question. Answer the question "
        "asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: "
        "{context}\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if "
        "possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:")
