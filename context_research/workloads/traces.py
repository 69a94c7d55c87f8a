"""Request traces as load workloads: token-id prompts of the traced lengths, arriving at the traced times.

Mooncake (the FAST'25 traces, JSONL): {"timestamp": ms from the trace's start, "input_length",
"output_length", "hash_ids": one id per 512-token block of the prompt}. The prompt is rebuilt block
by block: block h is 512 token ids drawn from a generator seeded by (seed, h), so requests whose
hash_ids agree share those blocks token for token, and a prefix cache sees the trace's reuse. The last
block may be partial: input_length - 512 x (len(hash_ids) - 1) tokens, the start of its block.

Azure LLM inference trace (CSV: TIMESTAMP as a date-time, ContextTokens, GeneratedTokens) and BurstGPT
(CSV: Timestamp in seconds, Model, Request tokens, Response tokens, Total tokens, Log Type): prompts
of seeded token ids, record r's drawn from a generator seeded by (seed, r), so prompts are distinct and
share a prefix only by chance. Every BurstGPT model and log type is kept (vLLM's BurstGPTDataset keeps
only GPT-4).

Records replay in time order (a stable sort; the published traces are already sorted): the earliest
`num_requests` that pass are sent, each arriving at its timestamp minus the first one's. Skipped are
records with no prompt or no output tokens (BurstGPT's failed requests have Response tokens 0, which
vLLM's BurstGPTDataset drops too) and those whose prompt + output exceed `max_model_len`.
`fixed_output_len` overrides the traced output lengths. Outputs are forced to their length
(`ignore_eos`), as the Azure trace's own README replays them. Token ids come from `id_range`
(`synthetic.token_id_range`): no special ids. A result row carries `source_record`, the number
(from 1) of its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from context_research.workloads.files import csv_columns, integer_column, json_records, seconds_column
from context_research.workloads.workload import LoadWorkload, fits, load_request, nonempty

MOONCAKE_BLOCK_TOKENS = 512
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


@dataclass
class TraceRecords:
    """A trace's records as columns: record numbers (from 1), arrival seconds, prompt and output tokens."""

    numbers: np.ndarray
    seconds: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray


def mooncake_blocks(seed: int, id_range: tuple[int, int]) -> Callable[[int], list[int]]:
    """block(h): the 512 token ids of hash id h, the same for every request and every run."""
    cache: dict[int, list[int]] = {}

    def block(hash_id: int) -> list[int]:
        if hash_id not in cache:
            rng = np.random.default_rng([seed, hash_id])
            cache[hash_id] = rng.integers(id_range[0], id_range[1], size=MOONCAKE_BLOCK_TOKENS).tolist()
        return cache[hash_id]

    return block


def mooncake_prompt(hash_ids: list[int], input_length: int, block: Callable[[int], list[int]]) -> list[int]:
    """The prompt of a Mooncake record: its blocks in order, the last one cut to the length."""
    ids = [token for hash_id in hash_ids for token in block(hash_id)]
    return ids[:input_length]


def read_mooncake(path: str | Path, cache_dir: str | Path | None = None) -> tuple[TraceRecords, list[list[int]]]:
    """A Mooncake trace's records and each one's hash_ids, every record checked."""
    numbers, seconds, inputs, outputs, hashes = [], [], [], [], []
    for record in json_records(path, cache_dir):
        input_length = record.integer("input_length")
        hash_ids = record.integers("hash_ids")
        blocks = -(-input_length // MOONCAKE_BLOCK_TOKENS)
        if blocks != len(hash_ids):
            raise record.error("hash_ids", f"{len(hash_ids)} ids, but input_length {input_length} spans {blocks} "
                                           f"blocks of {MOONCAKE_BLOCK_TOKENS} tokens")
        numbers.append(record.number)
        seconds.append(record.real("timestamp") / 1e3)
        inputs.append(input_length)
        outputs.append(record.integer("output_length"))
        hashes.append(hash_ids)
    return TraceRecords(np.array(numbers), np.array(seconds), np.array(inputs), np.array(outputs)), hashes


def read_csv_trace(path: str | Path, time_column: str, prompt_column: str, output_column: str) -> TraceRecords:
    """A CSV trace's records (Azure, BurstGPT), every cell of the three columns checked."""
    frame = csv_columns(path, (time_column, prompt_column, output_column))
    return TraceRecords(np.arange(1, len(frame) + 1), seconds_column(frame, time_column, path),
                        integer_column(frame, prompt_column, path), integer_column(frame, output_column, path))


def replay(records: TraceRecords, prompt: Callable[[int], list[int]], workload: Any, max_model_len: int,
           path: str | Path) -> LoadWorkload:
    """The earliest `workload.num_requests` records that pass, as requests with their arrival offsets;
    `prompt(i)` builds the token ids of the i-th record (0-based, file order)."""
    requests, times, skipped = [], [], 0
    for index in np.argsort(records.seconds, kind="stable"):
        if len(requests) == workload.num_requests:
            break
        prompt_len = int(records.prompt_tokens[index])
        output_len = workload.fixed_output_len or int(records.output_tokens[index])
        if prompt_len < 1 or output_len < 1 or not fits(prompt_len, output_len, max_model_len):
            skipped += 1
            continue
        requests.append(load_request(f"q{len(requests)}", prompt(int(index)), output_len, workload.seed,
                                     {"source_record": int(records.numbers[index])}))
        times.append(records.seconds[index])
    offsets = np.asarray(times, dtype=np.float64) - (times[0] if times else 0.0)
    return nonempty(LoadWorkload(requests, offsets_s=offsets, skipped=skipped), path)


def mooncake_requests(workload: Any, id_range: tuple[int, int], max_model_len: int,
                      cache_dir: str | Path | None = None) -> LoadWorkload:
    records, hashes = read_mooncake(workload.path, cache_dir)
    block = mooncake_blocks(workload.seed, id_range)
    return replay(records, lambda i: mooncake_prompt(hashes[i], int(records.prompt_tokens[i]), block),
                  workload, max_model_len, workload.path)


def seeded_prompt(seed: int, record: int, length: int, id_range: tuple[int, int]) -> list[int]:
    """`length` token ids drawn from a generator seeded by (seed, record number)."""
    return np.random.default_rng([seed, record]).integers(id_range[0], id_range[1], size=length).tolist()


def _length_trace_requests(records: TraceRecords, workload: Any, id_range: tuple[int, int],
                           max_model_len: int) -> LoadWorkload:
    def prompt(i: int) -> list[int]:
        return seeded_prompt(workload.seed, int(records.numbers[i]), int(records.prompt_tokens[i]), id_range)

    return replay(records, prompt, workload, max_model_len, workload.path)


def azure_requests(workload: Any, id_range: tuple[int, int], max_model_len: int) -> LoadWorkload:
    records = read_csv_trace(workload.path, *AZURE_COLUMNS)
    return _length_trace_requests(records, workload, id_range, max_model_len)


def burstgpt_requests(workload: Any, id_range: tuple[int, int], max_model_len: int) -> LoadWorkload:
    records = read_csv_trace(workload.path, *BURSTGPT_COLUMNS)
    return _length_trace_requests(records, workload, id_range, max_model_len)
