"""The E8 workload generator: its files read by the project's own loaders (ShareGPT conversations and
sessions with the built tokenizer, the Mooncake trace with its block checks), the same files for the
same seed, and the reuse the trace promises (shared system-prompt blocks, multi-turn prefix growth)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from omegaconf import OmegaConf

from context_research.cli.make_workload_files import main
from context_research.serving.prompting import PromptEncoder
from context_research.workloads.datasets import sharegpt_conversations
from context_research.workloads.generator import (MOONCAKE_FILE, SHAREGPT_FILE, ConversationShape, TraceShape,
                                                  mooncake_records, prefix_reuse)
from context_research.workloads.sessions import sharegpt_sessions
from context_research.workloads.traces import MOONCAKE_BLOCK_TOKENS, mooncake_requests, read_mooncake
from tests.conftest import compose_config
from tests.workloads.conftest import workload_config

B = MOONCAKE_BLOCK_TOKENS
# the CI scale: a few short conversations, a 2-second trace of prompts up to 1536 tokens (fits tiny_qwen3)
TINY_ARGS = ["--conversations", "4", "--max-turns", "3", "--user-words", "12", "--reply-words", "8",
             "--trace-records", "12", "--trace-rate", "8", "--max-input-tokens", "1536", "--system-prompt-blocks", "1",
             "--user-tokens", "120", "--output-tokens", "4", "--mean-turns", "3", "--turn-gap-s", "0.3"]


def generate(folder, *args: str) -> tuple[str, str]:
    assert main(["--out", str(folder), *args]) == 0
    return (folder / SHAREGPT_FILE).read_text(), (folder / MOONCAKE_FILE).read_text()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e8-files")
    generate(folder, "--conversations", "12", "--trace-records", "60", "--seed", "3")
    return folder


def test_the_same_seed_writes_the_same_files_and_another_seed_others(tmp_path) -> None:
    first = generate(tmp_path / "a", *TINY_ARGS)
    assert generate(tmp_path / "b", *TINY_ARGS) == first
    other = generate(tmp_path / "c", *TINY_ARGS, "--seed", "1")
    assert other[0] != first[0] and other[1] != first[1]


def test_sharegpt_conversations_are_multi_turn_pseudo_english(files) -> None:
    conversations = sharegpt_conversations(files / SHAREGPT_FILE)
    assert len(conversations) == 12
    shape = ConversationShape()
    for conversation in conversations:
        exchanges = conversation.exchanges()
        assert shape.min_turns <= len(exchanges) == len(conversation.turns) // 2 <= shape.max_turns
        for user, reply in exchanges:
            assert user.endswith("?") and reply.endswith(".") and user[0].isupper()
            assert len(user.split()) >= 4 and len(reply.split()) >= 4
    words = [len(reply.split()) for c in conversations for _, reply in c.exchanges()]
    assert 0.5 * shape.reply_words < np.median(words) < 2 * shape.reply_words


def test_the_built_tokenizer_turns_the_conversations_into_sessions(files) -> None:
    cfg = compose_config(["benchmark=throughput", "model.tokenizer=built"])
    encoder = PromptEncoder(OmegaConf.to_object(cfg.model))
    workload = workload_config("sharegpt", files / SHAREGPT_FILE, "num_prompts=12")
    loaded = sharegpt_sessions(workload, encoder, max_model_len=4096)
    assert loaded.skipped == 0 and len({t.metadata["labels"]["session_id"] for t in loaded.requests}) == 12
    text = json.loads((files / SHAREGPT_FILE).read_text())[0]["conversations"][0]["value"]
    ids = encoder.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert encoder.tokenizer.decode(ids) == text  # the word lists' text round-trips through the built tokenizer
    assert len(ids) < 3 * len(text.split())  # words the tokenizer was trained on: a few tokens each at most


def test_the_trace_reads_back_in_time_order_within_its_bounds(files) -> None:
    records, hashes = read_mooncake(files / MOONCAKE_FILE)  # checks every record's hash_ids against its length
    shape = TraceShape()
    assert len(records.numbers) == 60 and records.seconds[0] == 0.0
    assert (np.diff(records.seconds) >= 0).all()
    assert records.prompt_tokens.max() <= shape.max_input_tokens and records.output_tokens.min() >= 1
    raw = [json.loads(line) for line in (files / MOONCAKE_FILE).read_text().splitlines()]
    assert all(isinstance(r["timestamp"], int) for r in raw)  # milliseconds, as Mooncake writes them


def test_the_trace_reuses_system_prompts_and_each_session_grows_its_prefix() -> None:
    shape = TraceShape(records=120)
    records = mooncake_records(shape, seed=0)
    assert all(len(r["hash_ids"]) == -(-r["input_length"] // B) for r in records)  # one id per block
    position = defaultdict(set)
    for record in records:
        for index, hash_id in enumerate(record["hash_ids"]):
            position[hash_id].add(index)
    assert all(len(places) == 1 for places in position.values())  # a block id always at the same place
    system_ids = shape.system_prompts * shape.system_prompt_blocks
    openers = [record["hash_ids"][0] for record in records]
    assert all(opener < system_ids for opener in openers)  # every prompt starts with a system prompt
    assert len(set(openers)) > 1 and max(openers.count(o) for o in set(openers)) > len(records) / 4  # shared
    # a later turn of a session keeps its earlier turns' blocks: ids past the system prompts' seen again
    seen: set[int] = set()
    growing = 0
    for record in records:
        growing += any(hash_id >= system_ids and hash_id in seen for hash_id in record["hash_ids"])
        seen.update(record["hash_ids"])
    assert growing > len(records) / 4
    assert 0.5 < prefix_reuse(records) < 1.0


def test_equal_hash_ids_are_equal_token_blocks_in_the_rebuilt_prompts(files) -> None:
    loaded = mooncake_requests(workload_config("mooncake", files / MOONCAKE_FILE, "num_prompts=60"), (3, 8192), 40960)
    _, hashes = read_mooncake(files / MOONCAKE_FILE)
    blocks: dict[int, list[int]] = {}
    shared = 0
    for request, hash_ids in zip(loaded.requests, hashes):
        ids = request.prompt_token_ids
        for index, hash_id in enumerate(hash_ids):
            block = ids[index * B:(index + 1) * B]
            if hash_id in blocks:
                known = blocks[hash_id]
                assert block == known[:len(block)] or known == block[:len(known)]
                shared += 1
            blocks[hash_id] = max(block, blocks.get(hash_id, []), key=len)
    assert shared > len(loaded.requests)


def test_prefix_reuse_counts_leading_blocks_seen_before() -> None:
    records = [{"input_length": 2 * B, "hash_ids": [0, 1]}, {"input_length": 2 * B + 10, "hash_ids": [0, 1, 2]},
               {"input_length": B, "hash_ids": [5]}, {"input_length": 2 * B, "hash_ids": [9, 1]}]
    assert prefix_reuse(records) == pytest.approx(2 * B / (7 * B + 10))  # only record 2's first two blocks


def test_bad_arguments_are_one_line_each(capsys, tmp_path) -> None:
    code = main(["--out", str(tmp_path), "--conversations", "0", "--max-turns", "1", "--max-input-tokens", "1000"])
    assert code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["error: --conversations 0: a number > 0", "error: --max-turns 1: at least --min-turns (2)",
                     "error: --max-input-tokens 1000: at least the longest system prompt (4096 tokens) + "
                     "--user-tokens (1500)"]
    assert not (tmp_path / SHAREGPT_FILE).exists()


def test_an_unwritable_folder_names_the_path(capsys, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--out", str(blocker / "e8"), *TINY_ARGS]) == 1
    assert capsys.readouterr().err.startswith(f"error: {blocker / 'e8'}: ")
