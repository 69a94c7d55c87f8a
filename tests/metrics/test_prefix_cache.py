"""Prefix-cache hit rate: cached prompt tokens over prompt tokens of the measured requests, overall
and per turn of multi-turn sessions, from the engine's own num_cached_tokens."""

import math

import pandas as pd
import pytest

from context_research.metrics import prefix_cache
from context_research.metrics.schema import PrefixCacheSection, Summary


def rows(**columns) -> pd.DataFrame:
    count = len(next(iter(columns.values())))
    return pd.DataFrame({"phase": ["measure"] * count, "ok": [True] * count, **columns})


def test_the_rate_is_token_weighted_over_measured_successful_requests():
    frame = rows(prompt_tokens=[100, 300, 50, 1000], num_cached_tokens=[0, 240, 50, 1000])
    frame.loc[2, "phase"] = "warmup"  # a warm-up request warms the cache but is not counted
    frame.loc[3, "ok"] = False  # nor is a failed one
    section = prefix_cache.summarize(frame)
    assert section.prefix_cache_hit_rate == pytest.approx(240 / 400)  # not the mean of 0 and 0.8
    assert (section.cached_prompt_tokens, section.measured_prompt_tokens) == (240, 400)
    assert section.prefix_cache_hit_rate_by_turn is None  # no sessions


def test_sessions_get_a_rate_per_turn():
    # two sessions of three turns: turn k's prompt carries the conversation so far, cached but the new part
    frame = rows(session_id=["s0", "s0", "s0", "s1", "s1", "s1"], turn=[1, 2, 3, 1, 2, 3],
                 prompt_tokens=[100, 220, 350, 80, 200, 300], num_cached_tokens=[0, 200, 320, 16, 176, 288])
    section = prefix_cache.summarize(frame)
    assert section.prefix_cache_hit_rate_by_turn == pytest.approx({"1": 16 / 180, "2": 376 / 420, "3": 608 / 650})
    assert section.prefix_cache_hit_rate == pytest.approx(1000 / 1250)
    per_session = prefix_cache.hit_rate_by(frame, "session_id")
    assert per_session.to_dict() == pytest.approx({"s0": 520 / 670, "s1": 480 / 580})


def test_no_figure_where_the_engine_counts_no_cached_tokens():
    assert prefix_cache.summarize(rows(prompt_tokens=[10, 20])) is None
    assert prefix_cache.summarize(rows(prompt_tokens=[10], num_cached_tokens=[math.nan])) is None


def test_the_section_round_trips_to_flat_columns():
    section = PrefixCacheSection(prefix_cache_hit_rate=0.5, cached_prompt_tokens=5, measured_prompt_tokens=10,
                                 prefix_cache_hit_rate_by_turn={"1": 0.0, "2": 0.9})
    stored = Summary().add(section).to_json()
    columns = Summary.from_json(stored).columns()
    assert columns["prefix_cache_hit_rate"] == 0.5
    assert columns["prefix_cache_hit_rate_by_turn"] == {"1": 0.0, "2": 0.9}
