"""Task text -> the prompt token ids an engine receives, measured with the model's own tokenizer.

Capability tasks send token ids, not text, so every engine sees the same prompt and its length is
known before it is sent: the chat template (with the model's `chat_template_kwargs`, which turn
Qwen3's thinking off) where the tokenizer has one and the task wants it, the raw text otherwise,
exactly as `HFBackend.prompt_ids` encodes a text prompt.
"""

from __future__ import annotations

from typing import Any

from context_research.serving.model_source import load_tokenizer


class PromptEncoder:
    """`max_model_len`: the context limit prompts must fit (the engine's, where it sets one)."""

    def __init__(self, model: Any, max_model_len: int | None = None) -> None:
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
        if chat and self.has_chat_template:
            rendered = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
                **self.chat_template_kwargs)
            return list(self.tokenizer(rendered + answer_prefix, add_special_tokens=False)["input_ids"])
        return self.token_ids(text + answer_prefix)

    def middle_truncate(self, text: str, budget: int) -> str:
        """LongBench's truncation: over `budget` tokens, keep the first and last budget/2 tokens
        (instructions sit at both ends), decoded back to text without special tokens."""
        ids = self.token_ids(text)
        if len(ids) <= budget:
            return text
        half = int(budget / 2)
        return (self.tokenizer.decode(ids[:half], skip_special_tokens=True)
                + self.tokenizer.decode(ids[-half:], skip_special_tokens=True))
