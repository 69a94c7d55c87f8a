"""Synthetic prompts: seeded token ids of an exact length, so a prompt of 4096 tokens is 4096
tokens for every engine (no tokenizer round trip). Same seed, same ids."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np

from context_research.requests import GenerationRequest
from context_research.workloads.lengths import sample_lengths

SPECIAL_ID_FLOOR = 1000  # ids at or above this that a config names are specials at the top of the vocab


def token_id_range(architecture: dict[str, Any]) -> tuple[int, int]:
    """[low, high) of ordinary token ids: below the special ids a config names near the top of the
    vocabulary, above the small special ids (bos/eos/pad) some tokenizers put at the bottom."""
    specials = []
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = architecture.get(key)
        specials.extend(value if isinstance(value, list) else [value] if value is not None else [])
    high = min([int(architecture["vocab_size"])] + [s for s in specials if s >= SPECIAL_ID_FLOOR])
    low = max([0] + [s + 1 for s in specials if s < SPECIAL_ID_FLOOR])
    return low, high


def synthetic_prompts(count: int, prompt_len: int, id_range: tuple[int, int], seed: int) -> list[list[int]]:
    """`count` distinct prompts of exactly `prompt_len` token ids drawn uniformly from `id_range`.

    The stream is seeded by (seed, prompt_len): prompts of different lengths share no prefix, so
    a sweep over lengths never hits the engine's prefix cache with an earlier job's prompt.
    """
    rng = np.random.default_rng([seed, prompt_len])
    ids = rng.integers(id_range[0], id_range[1], size=(count, prompt_len), dtype=np.int64)
    return ids.tolist()


def synthetic_requests(workload: Any, id_range: tuple[int, int], prefix: str = "q") -> list[GenerationRequest]:
    """`workload.num_requests` requests with seeded prompt and output lengths (`workload.prompt_len`,
    `workload.output_len`: length distributions) and seeded token ids. The first
    `workload.shared_prefix_len` ids are the same in every prompt; the rest are drawn per prompt,
    so no two prompts share more. Outputs run to their full length (`ignore_eos`). Seeded by
    (seed, prompt length), like `synthetic_prompts`: jobs at other lengths share no prefix."""
    rng = np.random.default_rng([workload.seed, workload.prompt_len.mean])
    count = workload.num_requests
    shared = rng.integers(id_range[0], id_range[1], size=workload.shared_prefix_len, dtype=np.int64).tolist()
    prompt_lens = sample_lengths(workload.prompt_len, count, rng)
    output_lens = sample_lengths(workload.output_len, count, rng)
    requests = []
    for index, (prompt_len, output_len) in enumerate(zip(prompt_lens, output_lens)):
        own = rng.integers(id_range[0], id_range[1], size=int(prompt_len) - len(shared), dtype=np.int64)
        requests.append(GenerationRequest(
            request_id=f"{prefix}{index}", prompt_token_ids=shared + own.tolist(), max_new_tokens=int(output_len),
            seed=workload.seed, ignore_eos=True))
    return requests


def workload_hash(requests: Iterable[GenerationRequest]) -> str:
    """sha256 over every request's prompt (ids or text) and output budget, in order."""
    digest = hashlib.sha256()
    for request in requests:
        prompt = request.prompt_token_ids if request.prompt_token_ids is not None else request.prompt
        digest.update(repr((request.request_id, prompt, request.max_new_tokens)).encode())
    return digest.hexdigest()
