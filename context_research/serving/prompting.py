"""Text -> the prompt token ids an engine receives, the same way for every engine and task.

A request's prompt goes in as token ids when it has them; text goes through the model's chat
template (with the model's `chat_template_kwargs`, which turn Qwen3's thinking off) where the
tokenizer has one, else through the tokenizer with its usual special tokens. Capability tasks use
`PromptEncoder` to build and measure their prompts in the model's tokens before sending them, so
every engine sees the same prompt and its length is known beforehand.
"""

from __future__ import annotations

from typing import Any

from context_research.requests import GenerationRequest


def text_ids(tokenizer: Any, text: str, chat_template_kwargs: dict[str, Any], chat: bool = True,
             answer_prefix: str = "") -> list[int]:
    """Prompt ids for `text` as the user turn (chat template where the tokenizer has one and `chat`),
    `answer_prefix` opening the model's reply; else the text with the tokenizer's special tokens."""
    if chat and getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True, **dict(chat_template_kwargs))
        return list(tokenizer(rendered + answer_prefix, add_special_tokens=False)["input_ids"])
    return list(tokenizer(text + answer_prefix, add_special_tokens=True)["input_ids"])


def request_ids(tokenizer: Any, request: GenerationRequest, chat_template_kwargs: dict[str, Any]) -> list[int]:
    """A request's prompt ids: as given, or its text encoded by `text_ids`."""
    if request.prompt_token_ids is not None:
        return list(request.prompt_token_ids)
    if tokenizer is None:
        raise ValueError("a text prompt needs a tokenizer: set model.tokenizer or model.path")
    return text_ids(tokenizer, request.prompt, chat_template_kwargs)


class PromptEncoder:
    """A model's tokenizer for building prompts. `max_model_len`: the context limit prompts must fit
    (the engine's, where it sets one)."""

    def __init__(self, model: Any, max_model_len: int | None = None) -> None:
        from context_research.serving.model_source import load_tokenizer

        tokenizer = load_tokenizer(model)
        if tokenizer is None:
            raise ValueError(f"model {model.name}: capability tasks need its tokenizer; set model.tokenizer "
                             "or model.path to a local directory")
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(model.chat_template_kwargs)
        self.max_model_len = int(max_model_len or model.max_model_len)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def token_ids(self, text: str) -> list[int]:
        """The text alone, with the tokenizer's usual special tokens."""
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def encode(self, text: str, chat: bool = True, answer_prefix: str = "") -> list[int]:
        """Prompt ids for `text` as the user turn; `answer_prefix` opens the model's reply."""
        return text_ids(self.tokenizer, text, self.chat_template_kwargs, chat, answer_prefix)

    def middle_truncate(self, text: str, budget: int) -> str:
        """LongBench's truncation: over `budget` tokens, keep the first and last budget/2 tokens
        (instructions sit at both ends), decoded back to text without special tokens."""
        ids = self.token_ids(text)
        if len(ids) <= budget:
            return text
        half = int(budget / 2)
        return (self.tokenizer.decode(ids[:half], skip_special_tokens=True)
                + self.tokenizer.decode(ids[-half:], skip_special_tokens=True))
