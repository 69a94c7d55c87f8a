"""The prefix-cache hits a server reports per request (vLLM's usage.prompt_tokens_details.cached_tokens with
--enable-prompt-tokens-details) become the request's num_cached_tokens, as in process; a usage without
them leaves the field out (vLLM omits it when nothing was cached: the hit rate counts that as 0)."""

from __future__ import annotations

import json

from context_research.requests import GenerationRequest
from context_research.serving.backends.openai import CompletionStream

REQUEST = GenerationRequest(request_id="r", prompt_token_ids=list(range(600)), max_new_tokens=2, ignore_eos=True)


def finished(usage: dict) -> dict:
    """The metadata of a two-token completion whose closing chunk carries `usage`."""
    stream = CompletionStream("completions")
    for index, text in enumerate(("a", "b")):
        stream.feed(b"data: " + json.dumps({"choices": [{"text": text, "token_ids": [7 + index]}]}).encode()
                    + b"\n\n", float(index))
    closing = {"choices": [{"text": "", "finish_reason": "length"}], "usage": usage}
    stream.feed(b"data: " + json.dumps(closing).encode() + b"\n\ndata: [DONE]\n\n", 2.0)
    result = stream.result(REQUEST, -1.0, REQUEST.prompt_token_ids, None, {})
    assert result.error is None and result.completion_tokens == 2
    return result.metadata


def test_cached_prompt_tokens_in_the_usage_are_the_requests_num_cached_tokens() -> None:
    usage = {"prompt_tokens": 600, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 512}}
    assert finished(usage)["num_cached_tokens"] == 512


def test_a_usage_without_details_says_nothing_about_the_cache() -> None:
    assert "num_cached_tokens" not in finished({"prompt_tokens": 600, "completion_tokens": 2})
    assert "num_cached_tokens" not in finished({"prompt_tokens": 600, "completion_tokens": 2,
                                                "prompt_tokens_details": None})
