"""Latency against throughput across a sweep's points: the Pareto-efficient points, those no other
point beats on both (at least its throughput and at most its latency, one of them strictly)."""

from __future__ import annotations

import numpy as np


def pareto_efficient(throughput, latency) -> np.ndarray:
    """Per point, whether it is Pareto-efficient for (higher throughput, lower latency); points with a
    missing value are not."""
    throughput, latency = np.asarray(throughput, dtype=float), np.asarray(latency, dtype=float)
    known = ~(np.isnan(throughput) | np.isnan(latency))
    efficient = np.zeros(len(throughput), dtype=bool)
    for i in np.flatnonzero(known):
        others = known & (np.arange(len(throughput)) != i)
        dominated = (others & (throughput >= throughput[i]) & (latency <= latency[i])
                     & ((throughput > throughput[i]) | (latency < latency[i])))
        efficient[i] = not dominated.any()
    return efficient
