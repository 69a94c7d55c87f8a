"""Token-length distributions for prompts and outputs: fixed, uniform over a range, or a normal
clipped to a range. Drawn from a seeded numpy generator, so a seed gives the same lengths."""

from __future__ import annotations

from typing import Any

import numpy as np

DISTRIBUTIONS = ("fixed", "uniform", "normal")


def length_bounds(spec: Any) -> tuple[int, int]:
    """[shortest, longest] length `spec` can give (fixed: the mean; otherwise [low, high])."""
    if spec.distribution == "fixed":
        return int(spec.mean), int(spec.mean)
    return int(spec.low), int(spec.high)


def sample_lengths(spec: Any, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` integer lengths drawn from `spec`.

    fixed: every length is `mean`. uniform: integers in [low, high], both included.
    normal: round(N(mean, std)) clipped to [low, high].
    """
    low, high = length_bounds(spec)
    if spec.distribution == "fixed":
        return np.full(count, int(spec.mean), dtype=np.int64)
    if spec.distribution == "uniform":
        return rng.integers(low, high, size=count, endpoint=True, dtype=np.int64)
    if spec.distribution == "normal":
        draws = np.rint(rng.normal(spec.mean, spec.std, size=count))
        return np.clip(draws, low, high).astype(np.int64)
    raise ValueError(f"distribution={spec.distribution!r}: allowed: {', '.join(DISTRIBUTIONS)}")
