"""Prefix-cache hit rate: the share of prompt tokens an engine served from its prefix cache.

    prefix_cache_hit_rate = sum(num_cached_tokens) / sum(prompt_tokens)

over the measured, successful requests (a request-weighted mean would let short prompts count as
much as long ones; this is the share of prompt tokens that needed no prefill). `num_cached_tokens`
is the engine's own count for each request, recorded in its requests.parquet row: vLLM's
`RequestOutput.num_cached_tokens`, the prompt tokens whose KV its scheduler found in the prefix cache.
An engine that reports no such count (the transformers engine keeps no prefix cache) gets no figure.
For multi-turn sessions the rate per turn shows how much of the conversation so far was reused:
turn 1 only shares what other sessions' prompts share, later turns should be mostly cached.
"""

from __future__ import annotations

import math

import pandas as pd

from context_research.metrics.phases import MEASURE
from context_research.metrics.schema import PrefixCacheSection

CACHED_TOKENS = "num_cached_tokens"  # the requests.parquet column of the engine's count


def reports_cached_tokens(rows: pd.DataFrame) -> bool:
    """Whether the rows carry the engine's cached-token counts."""
    return CACHED_TOKENS in rows and rows[CACHED_TOKENS].notna().any()


def measured_ok(rows: pd.DataFrame) -> pd.DataFrame:
    """The measured, successful requests (whose prompt the engine ran to completion)."""
    return rows[(rows["phase"] == MEASURE) & rows["ok"].astype(bool)] if "phase" in rows else rows


def hit_rate(rows: pd.DataFrame) -> float:
    """sum(num_cached_tokens) / sum(prompt_tokens) over `rows` (NaN without prompt tokens)."""
    prompt = float(rows["prompt_tokens"].sum())
    return float(rows[CACHED_TOKENS].fillna(0).sum()) / prompt if prompt else math.nan


def hit_rate_by(rows: pd.DataFrame, column: str) -> pd.Series:
    """The hit rate of each group of `rows` by `column` (turn, session_id, ...), in the column's order."""
    return rows.groupby(column, sort=True)[["prompt_tokens", CACHED_TOKENS]].apply(hit_rate)


def summarize(rows: pd.DataFrame) -> PrefixCacheSection | None:
    """The hit rate over the measured requests and, for sessions (rows with a `turn`), per turn;
    None where the engine reports no cached tokens."""
    if not len(rows) or not reports_cached_tokens(rows):
        return None
    measured = measured_ok(rows)
    by_turn = None
    if "turn" in measured and measured["turn"].notna().any():
        by_turn = {str(int(turn)): rate for turn, rate in hit_rate_by(measured, "turn").items()}
    return PrefixCacheSection(prefix_cache_hit_rate=hit_rate(measured),
                              cached_prompt_tokens=int(measured[CACHED_TOKENS].fillna(0).sum()),
                              measured_prompt_tokens=int(measured["prompt_tokens"].sum()),
                              prefix_cache_hit_rate_by_turn=by_turn)
