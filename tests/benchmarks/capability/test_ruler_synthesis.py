"""RULER synthesis: deterministic per seed, every prompt holds its needles and answers, and every
sample fills its target length to within 2% without passing it (measured with the model's tokenizer)."""

import pytest

from capability_fixtures import data_dir, tiny_model, tokenizer_dir  # noqa: F401  (fixtures)
from context_research.benchmarks.capability.prompting import PromptEncoder
from context_research.benchmarks.capability.ruler import synthesize
from context_research.benchmarks.capability.ruler_spec import TASKS
from context_research.benchmarks.capability.ruler_synthesis import (TaskSynthesizer, TooShort, largest_fitting,
                                                                    render_niah)

TARGET = 4096


@pytest.fixture
def encoder(tokenizer_dir):
    return PromptEncoder(tiny_model(tokenizer_dir))


@pytest.fixture
def essay(data_dir):
    return str(data_dir / "ruler" / "PaulGrahamEssays.json")


def test_every_task_fills_its_length_and_holds_its_needles(encoder, essay):
    prompts = synthesize(encoder, list(TASKS), TARGET, 2, 7, essay)
    assert [p.task for p in prompts] == [t for t in TASKS for _ in range(2)]
    for prompt in prompts:
        length = len(prompt.prompt_token_ids) + prompt.max_new_tokens
        assert 0.98 * TARGET <= length <= TARGET, (prompt.task, length)
        text = encoder.tokenizer.decode(prompt.prompt_token_ids)
        assert prompt.references and all(answer in text for answer in prompt.references), prompt.task
        assert prompt.metadata["needles"] >= len(prompt.references) or prompt.task == "vt"


def test_needle_sentences_are_in_the_prompt(encoder, essay):
    synthesizer = TaskSynthesizer("niah_multikey_1", 2048, 3, lambda r: len(encoder.encode(r.text, True, r.answer_prefix)),
                                  lambda t: len(encoder.token_ids(t)),
                                  essay_words=open(essay).read().split())
    rendered = synthesizer.sample(0)
    assert len(rendered.needles) == 4 and all(n in rendered.text for n in rendered.needles)
    assert rendered.text.count("One of the special magic numbers for") == 4


def test_generation_is_deterministic_per_seed(encoder, essay):
    tasks = ["niah_single_2", "niah_multikey_3", "vt", "cwe", "fwe"]
    first = synthesize(encoder, tasks, 2048, 2, 11, essay)
    again = synthesize(encoder, tasks, 2048, 2, 11, essay)
    other = synthesize(encoder, tasks, 2048, 2, 12, essay)
    assert [p.prompt_token_ids for p in first] == [p.prompt_token_ids for p in again]
    assert [p.references for p in first] == [p.references for p in again]
    assert all(a.prompt_token_ids != b.prompt_token_ids for a, b in zip(first, other))
    assert first[0].prompt_token_ids != first[1].prompt_token_ids  # samples of one seed differ


def test_singular_wording_for_one_needle():
    import random

    rendered = render_niah(random.Random(0), 5, TASKS["niah_single_1"], None)
    assert rendered.text.startswith("A special magic number is hidden")
    assert rendered.answer_prefix.endswith("mentioned in the provided text is")
    assert len(rendered.outputs) == 1 and rendered.outputs[0].isdigit() and len(rendered.outputs[0]) == 7


def test_largest_fitting_searches_from_any_guess():
    fits = lambda n: 3 * n <= 100  # noqa: E731
    assert {largest_fitting(fits, 1, guess) for guess in (1, 5, 33, 34, 200)} == {33}
    with pytest.raises(TooShort):
        largest_fitting(fits, 40, 50)


def test_too_short_a_target_is_an_error(encoder):
    with pytest.raises(TooShort, match="context_len=150"):
        synthesize(encoder, ["niah_single_1"], 150, 1, 0, None)


def test_essay_tasks_need_the_essay_file(encoder, tmp_path):
    with pytest.raises(FileNotFoundError, match="PaulGrahamEssays"):
        synthesize(encoder, ["niah_single_2"], 1024, 1, 0, str(tmp_path / "PaulGrahamEssays.json"))
