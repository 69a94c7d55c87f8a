"""Text data sets as load workloads: ShareGPT conversations and plain JSONL prompts, tokenised with
the model's tokenizer and sent as token ids (so every engine gets the same prompt, of known length).

ShareGPT (a JSON list of {"id", "conversations": [{"from": "human" | "gpt", "value": text}]}): one
request per conversation. The prompt is its first human turn through the chat template (the raw text
where the tokenizer has none), as the capability tasks encode text; the output length is the number
of tokens of the gpt turn right after it, or `fixed_output_len`. Filtering follows vLLM's
ShareGPTDataset and `is_valid_sequence` where they suit long contexts; skipped are
  - conversations without a human turn followed by a gpt turn (vLLM: fewer than two turns),
  - prompts whose text is under 4 tokens, and replies under 4 tokens where the output length comes
    from the reply (vLLM's min_len = 4),
  - prompt + output over `max_model_len` (in place of vLLM's 1024 / 2048 caps, made for short models).
Conversations are shuffled by the seed (as vLLM shuffles them) and the first `num_requests` that
pass are sent.

Plain JSONL: one {"prompt": text, "output_len": tokens (optional)} per line, encoded the same way;
`fixed_output_len` overrides or stands in for output_len. Shuffled by the seed; prompts over
`max_model_len` with their output are skipped.

Every output is forced to its length (`ignore_eos`). A result row carries `source_record`, the
number (from 1) of the record it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from context_research.workloads.files import Record, json_records, shorten
from context_research.workloads.workload import LoadWorkload, fits, load_request, nonempty

MIN_TOKENS = 4  # vLLM's is_valid_sequence min_len
USER, MODEL = "human", "gpt"


@dataclass
class Conversation:
    """One ShareGPT conversation: its record number and its turns as (from, value)."""

    record: int
    turns: list[tuple[str, str]]

    def exchanges(self) -> list[tuple[str, str]]:
        """(user text, reply text) pairs: from the first human turn, each human turn with the gpt
        turn right after it, up to the first turn that breaks the alternation."""
        roles = [role for role, _ in self.turns]
        if USER not in roles:
            return []
        pairs = []
        turns = self.turns[roles.index(USER):]
        for (role, text), (next_role, reply) in zip(turns[::2], turns[1::2]):
            if (role, next_role) != (USER, MODEL):
                break
            pairs.append((text, reply))
        return pairs


def _conversation(record: Record) -> Conversation:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise record.error("conversations", f"expected a list of {{from, value}} turns, got {shorten(turns)}")
    parsed = []
    for index, turn in enumerate(turns):
        for key in ("from", "value"):
            value = turn.get(key) if isinstance(turn, dict) else None
            if not isinstance(value, str):
                raise record.error(f"conversations[{index}].{key}", f"expected a string, got {shorten(value)}")
        parsed.append((turn["from"], turn["value"]))
    return Conversation(record.number, parsed)


def sharegpt_conversations(path: str | Path, cache_dir: str | Path | None = None) -> list[Conversation]:
    """Every conversation of a ShareGPT JSON file, each record checked."""
    return [_conversation(record) for record in json_records(path, cache_dir)]


def text_tokens(encoder: Any, text: str) -> int:
    """How many tokens the text itself is (no special tokens, no template)."""
    return len(encoder.tokenizer(text, add_special_tokens=False)["input_ids"])


def first_turn_fits(encoder: Any, prompt_text: str, prompt_ids: list[int], output_len: int,
                    fixed_output_len: int | None, max_model_len: int) -> bool:
    """The single-turn filtering rules of the module docstring."""
    if text_tokens(encoder, prompt_text) < MIN_TOKENS:
        return False
    if fixed_output_len is None and output_len < MIN_TOKENS:
        return False
    return fits(len(prompt_ids), output_len, max_model_len)


def sharegpt_requests(workload: Any, encoder: Any, max_model_len: int, cache_dir: str | Path | None = None
                      ) -> LoadWorkload:
    """`workload.num_requests` single-turn requests from a ShareGPT file (see the module docstring)."""
    conversations = sharegpt_conversations(workload.path, cache_dir)
    requests, skipped = [], 0
    for index in np.random.default_rng(workload.seed).permutation(len(conversations)):
        if len(requests) == workload.num_requests:
            break
        conversation = conversations[index]
        exchanges = conversation.exchanges()
        if not exchanges:
            skipped += 1
            continue
        prompt_text, reply = exchanges[0]
        prompt_ids = encoder.encode(prompt_text)
        output_len = workload.fixed_output_len or text_tokens(encoder, reply)
        if not first_turn_fits(encoder, prompt_text, prompt_ids, output_len, workload.fixed_output_len,
                               max_model_len):
            skipped += 1
            continue
        requests.append(load_request(f"q{len(requests)}", prompt_ids, output_len, workload.seed,
                                     {"source_record": conversation.record}))
    return nonempty(LoadWorkload(requests, skipped=skipped), workload.path)


def jsonl_requests(workload: Any, encoder: Any, max_model_len: int, cache_dir: str | Path | None = None
                   ) -> LoadWorkload:
    """`workload.num_requests` requests from a JSONL file of {"prompt", "output_len"?} lines, each prompt
    the chat template's user turn, or as it is where `workload.chat_template` is false."""
    records = json_records(workload.path, cache_dir)
    prompts = []
    for record in records:  # every record checked before any is tokenised
        text = record.text("prompt")
        if workload.fixed_output_len is not None:
            output_len = workload.fixed_output_len
        elif record.get("output_len") is None:
            raise record.error("output_len", "missing (or set benchmark.workload.fixed_output_len)")
        else:
            output_len = record.integer("output_len", minimum=1)
        prompts.append((record.number, text, output_len))
    requests, skipped = [], 0
    for index in np.random.default_rng(workload.seed).permutation(len(prompts)):
        if len(requests) == workload.num_requests:
            break
        number, text, output_len = prompts[index]
        prompt_ids = encoder.encode(text, chat=workload.chat_template)
        if not fits(len(prompt_ids), output_len, max_model_len):
            skipped += 1
            continue
        requests.append(load_request(f"q{len(requests)}", prompt_ids, output_len, workload.seed,
                                     {"source_record": number}))
    return nonempty(LoadWorkload(requests, skipped=skipped), workload.path)

