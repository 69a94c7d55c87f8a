"""Multi-turn sessions from ShareGPT conversations, for the session loop (`arrivals.SessionLoop`).

A conversation's exchanges (a human turn and the gpt turn right after it, from the first human turn,
up to `max_turns`) become the turns of one session. Turn 1's prompt is the first user message as a
single-turn request has it (the chat template with its generation prompt). Turn k's prompt is turn
k-1's prompt, then the model's actual reply to it (its output token ids), then the tokens the chat
template puts between a reply and the next user message (the end of the assistant turn, the user
turn, the generation prompt): the history grows by exactly reply + new user turn, so an engine's
prefix cache can serve every earlier turn. Without a chat template the user text follows the reply
after a newline.

Each turn's output length is the token count of the dataset's reply, or `fixed_output_len`; outputs
are forced to their length (`ignore_eos`), so every turn's prompt length is known in advance and a
session ends before its first turn that would not fit `max_model_len`. A conversation is skipped
when its first turn fails the single-turn rules (`datasets` module). Conversations are shuffled by
the seed; the first `num_requests` kept become the sessions.

The workload's requests are the turns, each holding only the tokens it adds (turn 1: its whole
prompt), labelled `session_id`, `turn` (from 1) and `source_record`, which their result rows carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from context_research.requests import GenerationRequest
from context_research.workloads.datasets import (Conversation, first_turn_fits, sharegpt_conversations,
                                                  text_tokens)
from context_research.workloads.workload import LoadWorkload, fits, load_request, nonempty

REPLY_MARK = "REPLYMARK"  # stands for the model's reply while the template renders the turn after it


def follow_up_ids(encoder: Any, text: str) -> list[int]:
    """The tokens that follow the model's reply when the user says `text` next."""
    tokenizer = encoder.tokenizer
    if not encoder.has_chat_template:
        return list(tokenizer("\n" + text, add_special_tokens=False)["input_ids"])
    messages = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": REPLY_MARK},
                {"role": "user", "content": text}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **encoder.chat_template_kwargs)
    after_reply = rendered[rendered.index(REPLY_MARK) + len(REPLY_MARK):]
    return list(tokenizer(after_reply, add_special_tokens=False)["input_ids"])


def session_turns(conversation: Conversation, session_id: str, workload: Any, encoder: Any,
                  max_model_len: int) -> list[GenerationRequest]:
    """The turns of one session; none when its first turn fails the single-turn rules."""
    turns: list[GenerationRequest] = []
    history = 0  # the prompt tokens every later turn starts with
    for turn, (text, reply) in enumerate(conversation.exchanges()[:workload.max_turns], 1):
        ids = encoder.encode(text) if turn == 1 else follow_up_ids(encoder, text)
        output_len = max(workload.fixed_output_len or text_tokens(encoder, reply), 1)
        if turn == 1 and not first_turn_fits(encoder, text, ids, output_len, workload.fixed_output_len,
                                             max_model_len):
            return []
        if not fits(history + len(ids), output_len, max_model_len):
            break  # the session ends before the turn that would not fit
        turns.append(load_request(f"{session_id}t{turn}", ids, output_len, workload.seed,
                                  {"session_id": session_id, "turn": turn, "source_record": conversation.record}))
        history += len(ids) + output_len
    return turns


def sharegpt_sessions(workload: Any, encoder: Any, max_model_len: int, cache_dir: str | Path | None = None
                      ) -> LoadWorkload:
    """`workload.num_requests` sessions from a ShareGPT file, as their turns in session order."""
    conversations = sharegpt_conversations(workload.path, cache_dir)
    turns: list[GenerationRequest] = []
    sessions = skipped = 0
    for index in np.random.default_rng(workload.seed).permutation(len(conversations)):
        if sessions == workload.num_requests:
            break
        made = session_turns(conversations[index], f"s{sessions}", workload, encoder, max_model_len)
        if not made:
            skipped += 1
            continue
        turns += made
        sessions += 1
    return nonempty(LoadWorkload(turns, skipped=skipped), workload.path)
