"""Capability prompts are the token ids the HF engine would make of the same text: chat template with
thinking off where the tokenizer has one, the raw text with special tokens otherwise."""

from context_research.benchmarks.capability.prompting import PromptEncoder
from context_research.requests import GenerationRequest
from context_research.serving.backends.hf import HFBackend
from context_research.serving.model_source import load_tokenizer
from tests.benchmarks.capability.conftest import tiny_model

TEXT = "Question: which paragraph? Answer briefly."


def engine_ids(model, tokenizer) -> list[int]:
    backend = HFBackend(model)
    backend.tokenizer = tokenizer  # prompt_ids needs only the tokenizer
    return backend.prompt_ids(GenerationRequest(request_id="p", prompt=TEXT, max_new_tokens=1))


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
