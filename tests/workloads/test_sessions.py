"""Multi-turn sessions from ShareGPT on the tiny HF engine: each turn's prompt is the previous
turn's prompt + the model's actual reply + the new user turn, exactly; think time between turns;
at most `concurrency` sessions at once; rows labelled with session and turn."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from tests.benchmarks.capability.conftest import tiny_model
from tests.workloads.conftest import MODEL, USER, conversation, typed, workload_config

from context_research.serving.prompting import PromptEncoder
from context_research.workloads.arrivals import SessionLoop, think_time_s
from context_research.workloads.sessions import follow_up_ids, sharegpt_sessions

@pytest.fixture
def sharegpt(tmp_path):
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps([conversation(i) for i in range(3)]), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def encoder(tokenizer_dir) -> PromptEncoder:
    return PromptEncoder(tiny_model(tokenizer_dir))


class Recorder:
    """Passes requests to the real scheduler, keeping what was sent and when each reply came back."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler
        self.prompts: dict[str, list[int]] = {}
        self.received: dict[str, float] = {}

    async def generate_async(self, request):
        self.prompts[request.request_id] = list(request.prompt_token_ids)
        result = await self.scheduler.generate_async(request)
        self.received[request.request_id] = time.perf_counter()
        return result


def test_each_turn_carries_the_conversation_so_far_exactly(scheduler, sharegpt, encoder) -> None:
    workload = workload_config("sharegpt", sharegpt, "num_prompts=3", "benchmark.workload.fixed_output_len=3")
    turns = sharegpt_sessions(workload, encoder, max_model_len=4096).requests
    assert [t.request_id for t in turns] == [f"s{s}t{k}" for s in range(3) for k in (1, 2, 3)]
    plan = {t.request_id: t.prompt_token_ids for t in turns}
    think = typed("benchmark.arrival.think_time.mean_s=0.02")[0].arrival.think_time
    recorder = Recorder(scheduler)
    results = SessionLoop(concurrency=2, think_time=think, seed=0).run(turns, recorder)
    by_id = {r.request_id: r for r in results}
    assert sorted(by_id) == sorted(plan) and all(r.error is None for r in results)
    for session in range(3):
        first = f"s{session}t1"
        assert recorder.prompts[first] == plan[first]
        for turn in (2, 3):
            before, now = f"s{session}t{turn - 1}", f"s{session}t{turn}"
            expected = recorder.prompts[before] + by_id[before].output_token_ids + plan[now]
            assert recorder.prompts[now] == expected
            assert by_id[now].prompt_tokens == len(expected)
            pause = by_id[now].arrival_time - recorder.received[before]
            assert 0.02 <= pause < 0.02 + 0.01  # the think time after the reply arrived
        for turn in (1, 2, 3):
            result = by_id[f"s{session}t{turn}"]
            assert (result.metadata["session_id"], result.metadata["turn"]) == (f"s{session}", turn)
            assert result.completion_tokens == 3
    # at most two sessions open at once: the third starts only after one of the first two ended
    spans = {s: (by_id[f"s{s}t1"].arrival_time, recorder.received[f"s{s}t3"]) for s in range(3)}
    assert spans[2][0] >= min(spans[0][1], spans[1][1])
    assert spans[1][0] < spans[0][1]  # the first two ran side by side
    assert [r.arrival_time for r in results] == sorted(r.arrival_time for r in results)


def test_a_follow_up_turn_is_the_template_between_a_reply_and_the_next_message(encoder) -> None:
    text = encoder.tokenizer.decode(follow_up_ids(encoder, USER[1]))
    assert text == f"<|im_end|>\n<|im_start|>user\n{USER[1]}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_sessions_end_before_the_turn_that_would_not_fit(sharegpt, encoder) -> None:
    full = sharegpt_sessions(workload_config("sharegpt", sharegpt, "num_prompts=1"), encoder, 4096).requests
    assert [t.metadata["labels"]["turn"] for t in full] == [1, 2, 3]
    outputs = [t.max_new_tokens for t in full]
    assert outputs == [len(encoder.tokenizer(m, add_special_tokens=False)["input_ids"]) for m in MODEL]
    two_turns = sum(len(t.prompt_token_ids) + t.max_new_tokens for t in full[:2])
    cut = sharegpt_sessions(workload_config("sharegpt", sharegpt, "num_prompts=1"), encoder, two_turns).requests
    assert [t.request_id for t in cut] == ["s0t1", "s0t2"]
    capped = sharegpt_sessions(workload_config("sharegpt", sharegpt, "num_prompts=2", "benchmark.workload.max_turns=1"),
                               encoder, 4096).requests
    assert [t.request_id for t in capped] == ["s0t1", "s1t1"]


def test_think_times_are_seeded_per_session() -> None:
    spec = typed("benchmark.arrival.think_time.distribution=exponential",
                 "benchmark.arrival.think_time.mean_s=2.0")[0].arrival.think_time

    def draws(seed: int) -> list[float]:
        rng = np.random.default_rng([seed, 0])
        return [think_time_s(spec, rng) for _ in range(2000)]

    assert draws(1) == draws(1) and draws(1) != draws(2)
    assert abs(np.mean(draws(1)) - 2.0) < 0.15
    uniform = typed("benchmark.arrival.think_time.distribution=uniform", "benchmark.arrival.think_time.low_s=0.5",
                    "benchmark.arrival.think_time.high_s=1.5")[0].arrival.think_time
    rng = np.random.default_rng(0)
    values = [think_time_s(uniform, rng) for _ in range(200)]
    assert 0.5 <= min(values) and max(values) <= 1.5 and len(set(values)) == 200
