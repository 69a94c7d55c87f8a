"""What makes a job's figures less than they look, as warnings in its summary (`run.warnings`) and
on the console when it ends:

- a percentile from too few requests. With n requests the p-th percentile has n x (100 - p) / 100
  requests beyond it; below one, the "p99" is an interpolation between the slowest requests, not
  a tail. So a p-th percentile needs at least 100 / min(p, 100 - p) measured requests: p99 100,
  p95 20, p90 10, p50 2.
- an unstable measurement: a coefficient of variation (sample std / mean) of TTFT or TPOT above
  CV_LIMIT, the plan's bar. It is judged across repeats of a sweep point (report/repeats.py) and,
  within a job, across its measured requests where they repeat one measurement (the same kind of
  request, one at a time: `BenchmarkTask.alike_requests`); under load the spread is the figure,
  not noise, and is not judged.
"""

from __future__ import annotations

import math
from typing import Iterable

from context_research.metrics.schema import LatencySection, Summary

CV_LIMIT = 0.05  # the plan's bar for a stable measurement
CV_METRICS = ("ttft", "tpot")


def min_requests(percentile: float) -> int:
    """Measured requests the p-th percentile needs for at least one request beyond it on each side."""
    return math.ceil(round(100 / min(percentile, 100 - percentile), 9))


def percentile_warnings(n_requests: int, percentiles: Iterable[float]) -> list[str]:
    """One warning naming the reported percentiles that `n_requests` cannot support."""
    thin = sorted(p for p in percentiles if n_requests < min_requests(p))
    if not thin:
        return []
    needs = ", ".join(f"p{p:g}: {min_requests(p)}" for p in reversed(thin))
    return [f"{', '.join(f'p{p:g}' for p in thin)} from {n_requests} measured requests: a p-th percentile needs "
            f"at least 100 / (100 - p) requests ({needs}) for one request beyond it, so these are the slowest "
            "requests, not a tail"]


def cv_warnings(latency: LatencySection, limit: float = CV_LIMIT) -> list[str]:
    """A warning per metric whose coefficient of variation across the measured requests exceeds `limit`."""
    warnings = []
    for metric in CV_METRICS:
        distribution = latency.distributions.get(metric)
        cv = distribution.cv if distribution is not None else None
        if cv is not None and not math.isnan(cv) and cv > limit:
            warnings.append(f"{metric.upper()} CV {cv:.1%} across the measured requests is above {limit:.0%}: "
                            "the measurement is not stable (look for interference, or measure more requests)")
    return warnings


def reported_percentiles(latency: LatencySection) -> list[float]:
    """The percentiles the job reports (the keys of its distributions, `p50` -> 50)."""
    names = {name for distribution in latency.distributions.values() for name in distribution.percentiles}
    return sorted(float(name[1:]) for name in names)


def measurement_warnings(summary: Summary, alike_requests: bool) -> list[str]:
    """The warnings of a job's summary (module docstring); `alike_requests` judges the CV within the job."""
    latency = summary.get(LatencySection)
    if latency is None or not latency.n_ok:
        return []
    warnings = percentile_warnings(latency.n_ok, reported_percentiles(latency))
    if alike_requests and latency.n_ok > 1:
        warnings += cv_warnings(latency)
    return warnings
