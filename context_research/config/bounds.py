"""The limits every schema applies to seeds, counts and real numbers, stated once.

A value past them is refused when the config is validated, with one line naming the key, instead of
failing later (numpy refuses a seed past 64 bits, a hundred million repeats run out of memory, an
infinite request rate never sleeps, an infinite SLO is recorded as no SLO).
"""

from __future__ import annotations

import math
from typing import Optional

from context_research.config.errors import require

MAX_SEED = 2**63 - 1  # seeds are 64-bit integers for numpy, torch and the records' int64 columns
MAX_COUNT = 1_000_000  # requests, prompts, repeats, samples, requests in flight: what one run's tables hold


def require_seed(key: str, value: int) -> None:
    require(0 <= value <= MAX_SEED, key, value, "an integer >= 0 and <= 2**63 - 1")


def require_count(key: str, value: Optional[int], minimum: int = 1, null: Optional[str] = None) -> None:
    """An integer count of things one run holds (requests, prompts, repeats, ...); `null` says what
    null means where null is allowed."""
    if null is not None and value is None:
        return
    allowed = f"an integer >= {minimum} and <= {MAX_COUNT:,}" + (f", or null ({null})" if null else "")
    require(value is not None and minimum <= value <= MAX_COUNT, key, value, allowed)


def require_finite(key: str, value: Optional[float], condition: bool, allowed: str) -> None:
    """A real number that meets `condition` and is finite (infinity and NaN mean nothing as a rate, a
    duration or an objective); `allowed` says what is."""
    require(value is not None and math.isfinite(value) and condition, key, value, f"{allowed}; not inf or nan")
