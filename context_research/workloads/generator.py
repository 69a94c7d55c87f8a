"""Workload files in their published formats, generated from a seed, for runs that must not download
data (E8): a ShareGPT JSON of multi-turn conversations and a Mooncake trace JSONL with realistic reuse.

ShareGPT (`sharegpt_records`): a JSON list of {"id", "conversations": [{"from": "human" | "gpt",
"value"}]}, each conversation `min_turns`..`max_turns` exchanges (a human turn, then a gpt turn) of
pseudo-English: sentences of words drawn from the noun, adjective and verb lists that ship with the
`wonderwords` package (the corpus the project-built tokenizer is trained on: `model.tokenizer=built`
encodes this text in about 1.8 tokens per word) mixed with common function words. Message lengths in words are
lognormal around `user_words` and `reply_words` (ShareGPT's lengths are heavy-tailed too).

Mooncake (`mooncake_records`): {"timestamp": ms from the trace's start, "input_length", "output_length",
"hash_ids": one id per 512-token block of the prompt}, in time order. Requests come from multi-turn
sessions, as in Mooncake's conversation trace: sessions start as a Poisson process (about `rate`
requests/s over all sessions), each with a geometric number of turns (mean `mean_turns`) a uniform gap
of 0.5-1.5 x `turn_gap_s` apart. Turn 1's prompt is one of `system_prompts` shared system prompts (whole
blocks, chosen with Zipf-like popularity: the first is the most common) followed by the user's first
message; turn k+1's prompt is turn k's prompt, its reply, then the new message. Its hash_ids are turn k's
full blocks followed by fresh ids, so equal ids mean equal content, as in the published traces: the
system prompts' blocks are shared across sessions, each session's earlier turns across its turns. A
session ends before a turn whose prompt would exceed `max_input_tokens`. New-message and output lengths
are lognormal around `user_tokens` and `output_tokens`.

`prefix_reuse` is the share of the trace's prompt tokens whose blocks an earlier request already sent,
as a leading run of blocks: the hit rate an unbounded prefix cache would reach on the trace.

Same seed and shape, same files (for a given `wonderwords` version: its word lists are the vocabulary).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from context_research.workloads.traces import MOONCAKE_BLOCK_TOKENS

FUNCTION_WORDS = ("the", "a", "of", "and", "to", "in", "with", "for", "on", "that", "is", "was", "it", "as", "by",
                  "from", "this", "at", "or", "not")
FUNCTION_SHARE = 0.4  # of the words of a sentence
SENTENCE_WORDS = (5, 14)  # a sentence's words, uniform in this range
LENGTH_SIGMA = 0.6  # lognormal sigma of message lengths (words, tokens)
USER_TOKENS_SIGMA = 1.0  # new user content in the trace: heavier-tailed (pasted documents)
LONGEST = 6  # a drawn length is at most this many times its median
SHAREGPT_FILE = "sharegpt.json"
MOONCAKE_FILE = "mooncake_trace.jsonl"


@dataclass
class ConversationShape:
    """The ShareGPT file: `conversations` of `min_turns`..`max_turns` exchanges (uniform), message
    lengths around `user_words` and `reply_words` (medians, in words)."""

    conversations: int = 256
    min_turns: int = 2
    max_turns: int = 5
    user_words: int = 40
    reply_words: int = 120


@dataclass
class TraceShape:
    """The Mooncake trace: `records` requests at about `rate` requests/s (see the module docstring)."""

    records: int = 180
    rate: float = 3.0
    max_input_tokens: int = 32768
    system_prompts: int = 4
    system_prompt_blocks: int = 8  # a system prompt is 1..this many 512-token blocks (uniform)
    user_tokens: int = 1500  # median new tokens a turn adds to the prompt
    output_tokens: int = 300  # median output tokens
    mean_turns: float = 4.0
    turn_gap_s: float = 10.0


def lognormal_lengths(rng: np.random.Generator, median: float, size: int, sigma: float = LENGTH_SIGMA,
                      low: int = 1) -> np.ndarray:
    """`size` integer lengths, lognormal around `median`, clipped to low..LONGEST x median."""
    drawn = rng.lognormal(math.log(median), sigma, size=size)
    return np.clip(np.rint(drawn), low, max(low, LONGEST * median)).astype(int)


class PseudoEnglish:
    """Sentences of wonderwords' nouns, adjectives and verbs mixed with function words."""

    def __init__(self) -> None:
        from context_research.benchmarks.capability.ruler_synthesis import wonderwords_lists

        nouns, adjectives, verbs = wonderwords_lists()
        self.content = np.array(nouns + adjectives + verbs)
        self.function = np.array(FUNCTION_WORDS)

    def message(self, rng: np.random.Generator, words: int, question: bool = False) -> str:
        """About `words` words in sentences; a question's last sentence ends with '?'."""
        sentences = []
        while words > 0:
            length = min(words, int(rng.integers(SENTENCE_WORDS[0], SENTENCE_WORDS[1] + 1)))
            function = rng.random(length) < FUNCTION_SHARE
            picked = np.where(function, rng.choice(self.function, length), rng.choice(self.content, length))
            sentence = " ".join(picked.tolist())
            sentences.append(sentence[0].upper() + sentence[1:] + ".")
            words -= length
        if question:
            sentences[-1] = sentences[-1][:-1] + "?"
        return " ".join(sentences)


def sharegpt_records(shape: ConversationShape, seed: int) -> list[dict[str, Any]]:
    """The ShareGPT records of `shape` (see the module docstring)."""
    rng = np.random.default_rng([seed, 0])
    text = PseudoEnglish()
    records = []
    for index in range(shape.conversations):
        turns = int(rng.integers(shape.min_turns, shape.max_turns + 1))
        user_words = lognormal_lengths(rng, shape.user_words, turns, low=4)
        reply_words = lognormal_lengths(rng, shape.reply_words, turns, low=4)
        messages = []
        for user, reply in zip(user_words, reply_words):
            messages += [{"from": "human", "value": text.message(rng, int(user), question=True)},
                         {"from": "gpt", "value": text.message(rng, int(reply))}]
        records.append({"id": f"e8_{seed}_{index}", "conversations": messages})
    return records


def blocks_for(tokens: int) -> int:
    return -(-tokens // MOONCAKE_BLOCK_TOKENS)


class BlockIds:
    """Fresh Mooncake hash ids, counting up from 0."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> list[int]:
        ids = list(range(self.next, self.next + count))
        self.next += count
        return ids


def session_records(rng: np.random.Generator, start_s: float, system_ids: list[int], ids: BlockIds,
                    shape: TraceShape) -> list[dict[str, Any]]:
    """The requests of one session starting at `start_s` after `system_ids` (its system prompt's blocks)."""
    turns = int(rng.geometric(1.0 / shape.mean_turns))
    added = lognormal_lengths(rng, shape.user_tokens, turns, sigma=USER_TOKENS_SIGMA)
    outputs = lognormal_lengths(rng, shape.output_tokens, turns)
    gaps = rng.uniform(0.5, 1.5, size=turns) * shape.turn_gap_s
    records: list[dict[str, Any]] = []
    hash_ids, moment = list(system_ids), start_s
    # the previous prompt (turn 1's: the system prompt, whole blocks) and everything said so far
    prompt = history = len(system_ids) * MOONCAKE_BLOCK_TOKENS
    for turn in range(turns):
        input_length = history + int(added[turn])
        if input_length > shape.max_input_tokens:
            break
        kept = prompt // MOONCAKE_BLOCK_TOKENS  # the previous prompt's full blocks (its partial one changes)
        hash_ids = hash_ids[:kept] + ids.take(blocks_for(input_length) - kept)
        records.append({"timestamp": moment, "input_length": input_length, "output_length": int(outputs[turn]),
                        "hash_ids": hash_ids})
        prompt, history = input_length, input_length + int(outputs[turn])
        moment += float(gaps[turn])
    return records


def kth_timestamp(records: list[dict[str, Any]], k: int) -> float:
    """The timestamp of the k-th earliest record."""
    return float(np.partition([record["timestamp"] for record in records], k - 1)[k - 1])


def mooncake_records(shape: TraceShape, seed: int) -> list[dict[str, Any]]:
    """The earliest `shape.records` requests of the sessions (see the module docstring), in time order,
    timestamps in ms from the first."""
    rng = np.random.default_rng([seed, 1])
    ids = BlockIds()
    system_blocks = rng.integers(1, shape.system_prompt_blocks + 1, size=shape.system_prompts)
    systems = [ids.take(int(count)) for count in system_blocks]
    popularity = 1.0 / np.arange(1, shape.system_prompts + 1)
    popularity /= popularity.sum()
    session_rate = shape.rate / shape.mean_turns
    records: list[dict[str, Any]] = []
    start = 0.0
    while True:
        start += float(rng.exponential(1.0 / session_rate))
        # sessions start in time order: once one starts after the earliest `records` requests, it cannot add to them
        if len(records) >= shape.records and start > kth_timestamp(records, shape.records):
            break
        system = systems[int(rng.choice(shape.system_prompts, p=popularity))]
        records += session_records(rng, start, system, ids, shape)
    records = sorted(records, key=lambda record: record["timestamp"])[:shape.records]
    first = records[0]["timestamp"]
    return [{**record, "timestamp": int(round((record["timestamp"] - first) * 1e3))} for record in records]


def prefix_reuse(records: list[dict[str, Any]]) -> float:
    """The share of prompt tokens in leading blocks an earlier record already had (records in time order)."""
    seen: set[int] = set()
    reused = total = 0
    for record in records:
        leading = 0
        for hash_id in record["hash_ids"]:
            if hash_id not in seen:
                break
            leading += 1
        reused += min(leading * MOONCAKE_BLOCK_TOKENS, record["input_length"])
        total += record["input_length"]
        seen.update(record["hash_ids"])
    return reused / total if total else 0.0


def write_sharegpt(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    return path


def write_mooncake(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path
