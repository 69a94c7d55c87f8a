"""Traces as workloads: Mooncake JSONL rebuilt block by block (equal hash ids, equal tokens), the
Azure LLM inference CSV and BurstGPT CSV as seeded prompts of the traced lengths, arrival offsets
from the timestamps, skipped records counted."""

from __future__ import annotations

import numpy as np
from tests.workloads.conftest import workload_config, write_csv, write_jsonl

from context_research.workloads.traces import (MOONCAKE_BLOCK_TOKENS, azure_requests, burstgpt_requests,
                                              mooncake_requests)

ID_RANGE = (3, 8192)
B = MOONCAKE_BLOCK_TOKENS


def mooncake_trace(path, records):
    return write_jsonl(path, [{"timestamp": t, "input_length": n, "output_length": m, "hash_ids": h}
                              for t, n, m, h in records])


def ids(request) -> list[int]:
    return request.prompt_token_ids


def test_mooncake_prompts_share_exactly_the_blocks_their_hash_ids_share(tmp_path) -> None:
    path = mooncake_trace(tmp_path / "trace.jsonl", [
        (0, 2 * B + 100, 4, [0, 1, 2]),     # blocks 0, 1 and a partial block 2
        (0, 3 * B, 3, [0, 1, 3]),           # shares blocks 0, 1; its own full third block
        (1500, 2 * B + 300, 5, [0, 1, 2]),  # the first record's blocks, a longer partial block 2
        (3052, 40, 2, [7]),                 # one partial block, shared with nothing
    ])
    loaded = mooncake_requests(workload_config("mooncake", path, "num_prompts=10"), ID_RANGE, 4096)
    first, second, third, fourth = loaded.requests
    assert [len(ids(r)) for r in loaded.requests] == [2 * B + 100, 3 * B, 2 * B + 300, 40]
    assert [r.max_new_tokens for r in loaded.requests] == [4, 3, 5, 2]
    assert ids(first)[:2 * B] == ids(second)[:2 * B]  # hash ids 0, 1
    assert ids(first)[2 * B] != ids(second)[2 * B]  # hash 2 against hash 3
    assert ids(third)[:2 * B + 100] == ids(first)  # the same block 2, cut shorter in the first record
    assert ids(fourth)[0] != ids(first)[0]
    assert all(ID_RANGE[0] <= t < ID_RANGE[1] for r in loaded.requests for t in ids(r))
    np.testing.assert_allclose(loaded.offsets_s, [0.0, 0.0, 1.5, 3.052])  # timestamps are milliseconds
    assert [r.metadata["labels"]["source_record"] for r in loaded.requests] == [1, 2, 3, 4]


def test_a_hash_id_gives_the_same_tokens_in_any_trace_and_the_seed_changes_them(tmp_path) -> None:
    one = mooncake_trace(tmp_path / "one.jsonl", [(0, B, 2, [42])])
    other = mooncake_trace(tmp_path / "other.jsonl", [(0, 2 * B, 2, [42, 5]), (10, B + 1, 2, [42, 9])])
    block = ids(mooncake_requests(workload_config("mooncake", one), ID_RANGE, 4096).requests[0])
    for request in mooncake_requests(workload_config("mooncake", other), ID_RANGE, 4096).requests:
        assert ids(request)[:B] == block
    reseeded = mooncake_requests(workload_config("mooncake", one, "seed=1"), ID_RANGE, 4096).requests[0]
    assert ids(reseeded) != block


def test_mooncake_replays_in_time_order_and_skips_what_does_not_fit(tmp_path) -> None:
    path = mooncake_trace(tmp_path / "trace.jsonl", [
        (2000, 100, 4, [1]), (0, 5000, 10, list(range(10, 20))), (1000, 100, 0, [2]), (3000, 200, 3, [3]),
        (4000, 50, 2, [4])])
    loaded = mooncake_requests(workload_config("mooncake", path, "num_prompts=2"), ID_RANGE, 4096)
    # record 2 (5000 + 10 tokens) exceeds 4096, record 3 asks for no output: skipped, then the next two in time
    assert [r.metadata["labels"]["source_record"] for r in loaded.requests] == [1, 4]
    assert loaded.skipped == 2
    np.testing.assert_allclose(loaded.offsets_s, [0.0, 1.0])  # from the first request sent


AZURE_HEADER = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
AZURE_ROWS = [["2023-11-16 18:15:46.6805900", 374, 44], ["2023-11-16 18:15:50.9951690", 396, 109],
              ["2023-11-16 18:15:51.2224670", 0, 55], ["2023-11-16 18:15:51.3910170", 91, 16]]


def test_azure_trace_lengths_and_offsets_from_its_date_times(tmp_path) -> None:
    path = write_csv(tmp_path / "AzureLLMInferenceTrace_conv.csv", AZURE_HEADER, AZURE_ROWS)
    loaded = azure_requests(workload_config("azure", path, "num_prompts=10"), ID_RANGE, 4096)
    assert [(len(ids(r)), r.max_new_tokens) for r in loaded.requests] == [(374, 44), (396, 109), (91, 16)]
    assert loaded.skipped == 1  # no context tokens
    np.testing.assert_allclose(loaded.offsets_s, [0.0, 4.314579, 4.710427], atol=1e-6)
    prompts = [ids(r) for r in loaded.requests]
    assert len({tuple(p[:16]) for p in prompts}) == 3  # distinct, seeded per record
    again = azure_requests(workload_config("azure", path, "num_prompts=10"), ID_RANGE, 4096)
    assert [ids(r) for r in again.requests] == prompts


def test_azure_2024_timestamps_with_a_time_zone(tmp_path) -> None:
    path = write_csv(tmp_path / "AzureLLMInferenceTrace_code_1week.csv", AZURE_HEADER,
                     [["2024-05-10 00:00:00.009930+00:00", 2162, 5], ["2024-05-10 00:00:00.512110+00:00", 1500, 7]])
    loaded = azure_requests(workload_config("azure", path), ID_RANGE, 4096)
    np.testing.assert_allclose(loaded.offsets_s, [0.0, 0.50218], atol=1e-6)


def test_burstgpt_trace_drops_failed_requests_and_keeps_every_model(tmp_path) -> None:
    header = ["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"]
    path = write_csv(tmp_path / "BurstGPT_1.csv", header, [
        [5, "ChatGPT", 472, 18, 490, "Conversation log"], [45, "ChatGPT", 1087, 0, 1087, "Conversation log"],
        [118, "GPT-4", 417, 276, 693, "API log"], [120.5, "GPT-4", 30, 2, 32, "Conversation log"]])
    loaded = burstgpt_requests(workload_config("burstgpt", path, "num_prompts=10"), ID_RANGE, 4096)
    assert [(len(ids(r)), r.max_new_tokens) for r in loaded.requests] == [(472, 18), (417, 276), (30, 2)]
    assert [r.metadata["labels"]["source_record"] for r in loaded.requests] == [1, 3, 4]
    assert loaded.skipped == 1
    np.testing.assert_allclose(loaded.offsets_s, [0.0, 113.0, 115.5])


def test_fixed_output_len_overrides_the_traced_outputs(tmp_path) -> None:
    path = write_csv(tmp_path / "trace.csv", AZURE_HEADER, AZURE_ROWS)
    loaded = azure_requests(workload_config("azure", path, "benchmark.workload.fixed_output_len=6"), ID_RANGE, 4096)
    assert [r.max_new_tokens for r in loaded.requests] == [6, 6, 6]
