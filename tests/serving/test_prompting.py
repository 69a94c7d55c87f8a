"""Prompts in the model's tokens: a text request is what a capability task builds from the same text
(chat template with thinking off where the tokenizer has one, the raw text with special tokens
otherwise); token-id requests go in as given."""

import pytest

from context_research.requests import GenerationRequest
from context_research.serving.model_source import load_tokenizer
from context_research.serving.prompting import PromptEncoder, request_ids
from tests.benchmarks.capability.conftest import tiny_model, tokenizer_dir  # noqa: F401, F811 (a fixture)

TEXT = "Question: which paragraph? Answer briefly."


def engine_ids(model, tokenizer) -> list[int]:
    """What every engine sends for a text request (ServingBackend.prompt_ids)."""
    return request_ids(tokenizer, GenerationRequest(request_id="p", prompt=TEXT, max_new_tokens=1),
                       model.chat_template_kwargs)


def test_token_id_prompts_go_in_as_given_and_text_needs_a_tokenizer():
    request = GenerationRequest(request_id="q", prompt_token_ids=[7, 8, 9], max_new_tokens=1)
    assert request_ids(None, request, {}) == [7, 8, 9]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        request_ids(None, GenerationRequest(request_id="t", prompt=TEXT, max_new_tokens=1), {})


def test_chat_prompts_match_the_engine(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    encoder = PromptEncoder(model)
    ids = encoder.encode(TEXT, chat=True)
    assert ids == engine_ids(model, load_tokenizer(model))
    assert encoder.tokenizer.decode(ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_raw_prompts_match_the_engine_without_a_chat_template(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    encoder = PromptEncoder(model)
    encoder.tokenizer.chat_template = None
    assert encoder.encode(TEXT, chat=True) == encoder.token_ids(TEXT) == engine_ids(model, encoder.tokenizer)


def test_answer_prefix_opens_the_reply(tokenizer_dir):
    encoder = PromptEncoder(tiny_model(tokenizer_dir))
    text = encoder.tokenizer.decode(encoder.encode(TEXT, chat=True, answer_prefix=" Answer:"))
    assert text.endswith("</think>\n\n Answer:")
    assert encoder.tokenizer.decode(encoder.encode(TEXT, chat=False, answer_prefix=" Answer:")) == TEXT + " Answer:"


def test_middle_truncation_keeps_the_ends(tokenizer_dir):
    encoder = PromptEncoder(tiny_model(tokenizer_dir))
    text = "START " + " ".join(f"w{i}" for i in range(400)) + " END"
    cut = encoder.middle_truncate(text, 40)
    assert cut.startswith("START w0") and cut.endswith("w399 END") and "w200" not in cut
    assert len(encoder.token_ids(cut)) <= 41
    assert encoder.middle_truncate("short", 40) == "short"
