"""The per-request detail of a vs_vllm_bench call, from the two clients' own files: vllm bench's
detailed result JSON and the harness's run records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from context_research.report.vs_vllm_bench_detail import detail


def test_events_empty_outputs_and_the_servers_pace_per_side(tmp_path):
    bench = tmp_path / "vllm_bench"
    bench.mkdir()
    # two requests of 100 tokens: one streamed an event per token, one had its tokens merged into 5 events
    json.dump({"ttfts": [0.05, 0.07], "itls": [[0.01] * 99, [0.2] * 4], "start_times": [10.0, 10.0],
               "generated_texts": ["", " river" * 100]}, (bench / "c64.json").open("w"))
    job = tmp_path / "harness" / "0"
    job.mkdir(parents=True)
    (job / "manifest.json").write_text(json.dumps({"overrides": ["+point=c64", "serving.prompt_format=text"]}))
    times = [[1.0 + 0.02 * i for i in range(100)], [1.1 + 0.02 * i for i in range(100)]]
    pd.DataFrame({"phase": ["warmup", "measure", "measure"], "ttft_ms": [9.0, 40.0, 60.0],
                  "token_times_s": [times[0], *times], "output_ids_source": ["retokenized"] * 3,
                  "output_token_ids": [[], [], [7, 8]], "dispatch_s": [0.5, 0.96, 1.04],
                  "last_token_s": [2.0, times[0][-1], times[1][-1]]}).to_parquet(job / "requests.parquet")
    table = detail(tmp_path).set_index("side")
    assert list(table["point"]) == ["c64", "c64"]
    harness, vllm_bench = table.loc["harness (text)"], table.loc["vllm_bench"]
    assert harness["requests"] == 2 and harness["ttft_p50_ms"] == pytest.approx(50.0)  # the warm-up left out
    assert harness["events_median"] == 100 and harness["empty_text_outputs"] == 1
    assert harness["tail_event_gap_ms"] == pytest.approx(20.0)
    assert harness["duration_s"] == pytest.approx(times[1][-1] - 0.96)
    assert (vllm_bench["events_min"], vllm_bench["events_max"]) == (5, 100) and vllm_bench["empty_text_outputs"] == 1
    assert vllm_bench["tail_event_gap_ms"] == pytest.approx(10.0)  # only the request with 60 gaps has a tail
    assert vllm_bench["duration_s"] == pytest.approx(max(0.05 + 99 * 0.01, 0.07 + 4 * 0.2))
