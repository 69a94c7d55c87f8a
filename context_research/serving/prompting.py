"""Turning a request into prompt token ids, the same way for every engine."""

from __future__ import annotations

from typing import Any

from context_research.requests import GenerationRequest


def encode_prompt(tokenizer: Any, request: GenerationRequest, chat_template_kwargs: dict[str, Any]) -> list[int]:
    """Token ids as given, or the text through the chat template (thinking off) where the
    tokenizer has one, else the raw text with the tokenizer's special tokens."""
    if request.prompt_token_ids is not None:
        return list(request.prompt_token_ids)
    if tokenizer is None:
        raise ValueError("a text prompt needs a tokenizer: set model.tokenizer or model.path")
    if getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template([{"role": "user", "content": request.prompt}], tokenize=True,
                                                add_generation_prompt=True, **dict(chat_template_kwargs))
        if isinstance(encoded, dict) or hasattr(encoded, "keys"):
            encoded = encoded["input_ids"]
        return list(encoded)
    return list(tokenizer(request.prompt, add_special_tokens=True)["input_ids"])
