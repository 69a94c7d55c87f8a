"""Bad data files: one line naming the file, the record (from 1) and the field, raised while the
workload loads (before any engine starts); a bad workload config is a one-line ConfigError."""

from __future__ import annotations

import json

import pytest
from tests.conftest import compose_config
from tests.workloads.conftest import typed, workload_config, write_csv, write_jsonl

from context_research.config import ConfigError, validate
from context_research.workloads.files import WorkloadFileError
from context_research.workloads.sources import load_workload

GOOD = {"timestamp": 0, "input_length": 600, "output_length": 4, "hash_ids": [0, 1]}
AZURE = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]


def mooncake(tmp_path, third: dict | str):
    path = tmp_path / "trace.jsonl"
    lines = [json.dumps(GOOD), json.dumps(GOOD), third if isinstance(third, str) else json.dumps(third)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "mooncake", path


def sharegpt(tmp_path, records):
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return "sharegpt", path


CASES = {
    "hash_ids not a list": (lambda p: mooncake(p, {**GOOD, "hash_ids": "abc"}),
                            "record 3: hash_ids: expected a list of integers, got 'abc'"),
    "hash_ids with a string": (lambda p: mooncake(p, {**GOOD, "hash_ids": [0, "b"]}),
                               "record 3: hash_ids: expected a list of integers"),
    "hash_ids too few": (lambda p: mooncake(p, {**GOOD, "input_length": 1025}),
                         "record 3: hash_ids: 2 ids, but input_length 1025 spans 3 blocks of 512 tokens"),
    "missing field": (lambda p: mooncake(p, {k: v for k, v in GOOD.items() if k != "output_length"}),
                      "record 3: output_length: missing"),
    "negative timestamp": (lambda p: mooncake(p, {**GOOD, "timestamp": -5}),
                           "record 3: timestamp: expected a number >= 0, got -5"),
    "fractional length": (lambda p: mooncake(p, {**GOOD, "input_length": 600.5}),
                          "record 3: input_length: expected an integer >= 0, got 600.5"),
    "not JSON": (lambda p: mooncake(p, "{timestamp: 0"), "record 3: not valid JSON"),
    "empty file": (lambda p: ("mooncake", write_jsonl(p / "empty.jsonl", [])), "no records"),
    "azure bad tokens": (lambda p: ("azure", write_csv(p / "azure.csv", AZURE, [
        ["2023-11-16 18:15:46.68", 374, 44], ["2023-11-16 18:15:47.00", "many", 1]])),
        "record 2: ContextTokens: expected an integer >= 0, got 'many'"),
    "azure bad time": (lambda p: ("azure", write_csv(p / "azure.csv", AZURE, [
        ["2023-11-16 18:15:46.68", 374, 44], ["yesterday", 3, 1]])), "record 2: TIMESTAMP: expected a time"),
    "burstgpt missing column": (lambda p: ("burstgpt", write_csv(p / "burst.csv", ["Timestamp", "Model"],
                                                                 [[5, "GPT-4"]])),
                                "no column 'Request tokens', 'Response tokens' (the header has Timestamp, Model)"),
    "sharegpt conversations": (lambda p: sharegpt(p, [{"id": "a", "conversations": "hello"}]),
                               "record 1: conversations: expected a list of {from, value} turns, got 'hello'"),
    "sharegpt turn value": (lambda p: sharegpt(p, [{"id": "a", "conversations": [{"from": "human", "value": "hi"}]},
                                                   {"id": "b", "conversations": [{"from": "human", "value": 7}]}]),
                            "record 2: conversations[0].value: expected a string, got 7"),
    "jsonl prompt": (lambda p: ("jsonl", write_jsonl(p / "prompts.jsonl", [{"prompt": "hello", "output_len": 2},
                                                                           {"prompt": ["a"], "output_len": 2}])),
                     "record 2: prompt: expected a non-empty string, got ['a']"),
    "jsonl output_len": (lambda p: ("jsonl", write_jsonl(p / "prompts.jsonl", [{"prompt": "hello"}])),
                         "record 1: output_len: missing (or set benchmark.workload.fixed_output_len)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_file_is_one_line_naming_file_record_and_field(case, tmp_path, tokenizer_dir) -> None:
    make, expected = CASES[case]
    source, path = make(tmp_path)
    benchmark, model = typed(f"benchmark.workload.source={source}", f"benchmark.workload.path={path}",
                             f"model.tokenizer={tokenizer_dir}")
    with pytest.raises(WorkloadFileError) as error:
        load_workload(benchmark.workload, model, 4096, tmp_path / "cache")
    message = str(error.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "\n" not in message


def test_a_file_whose_records_are_all_skipped_says_so(tmp_path) -> None:
    path = write_jsonl(tmp_path / "trace.jsonl", [{**GOOD, "input_length": 5000, "hash_ids": list(range(10))}])
    with pytest.raises(WorkloadFileError, match="no request left to send: the 1 records read were all skipped"):
        load_workload(workload_config("mooncake", path), typed()[1], 4096)


@pytest.mark.parametrize("overrides, key, allowed", [
    (["benchmark.workload.source=mooncake", "benchmark.workload.path=/no/such/trace.jsonl"],
     "benchmark.workload.path", "an existing local file (the mooncake data)"),
    (["benchmark.workload.source=zipf"], "benchmark.workload.source", "allowed: synthetic, sharegpt, jsonl"),
    (["benchmark.workload.path=trace.jsonl"], "benchmark.workload.path", "null for source=synthetic"),
    (["benchmark.arrival.process=trace"], "benchmark.arrival.process", "a trace replays the timestamps"),
    (["benchmark.arrival.process=sessions"], "benchmark.arrival.process", "sessions are ShareGPT conversations"),
    (["benchmark.arrival.time_scale=0"], "benchmark.arrival.time_scale", "a factor > 0"),
    (["benchmark.arrival.think_time.distribution=uniform"], "benchmark.arrival.think_time.low_s", "seconds >= 0"),
    (["benchmark.workload.fixed_output_len=0"], "benchmark.workload.fixed_output_len", "an integer >= 1"),
])
def test_bad_workload_settings_are_one_line_config_errors(overrides, key, allowed) -> None:
    with pytest.raises(ConfigError) as error:
        validate(compose_config(["benchmark=throughput", *overrides]))
    message = str(error.value)
    assert message.startswith(key) and allowed in message and "\n" not in message, message


def test_text_sources_need_the_tokenizer(tmp_path) -> None:
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "hello", "output_len": 2}])
    cfg = compose_config(["benchmark=throughput", "benchmark.workload.source=jsonl", f"benchmark.workload.path={path}"])
    with pytest.raises(ConfigError, match="model.tokenizer=None: a local tokenizer directory"):
        validate(cfg)
