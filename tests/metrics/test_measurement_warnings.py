"""Warnings a job records with its figures: percentiles from too few requests, and a CV above the
plan's bar where the requests repeat one measurement."""

import pytest

from context_research.metrics.latency import distribution
from context_research.metrics.measurement_warnings import (CV_LIMIT, measurement_warnings, min_requests,
                                                           percentile_warnings)
from context_research.metrics.schema import LatencySection, Summary


@pytest.mark.parametrize("percentile, needed", [(50, 2), (90, 10), (95, 20), (99, 100), (99.9, 1000), (10, 10)])
def test_a_percentile_needs_one_request_beyond_it(percentile, needed):
    assert min_requests(percentile) == needed


def test_the_percentiles_too_few_requests_cannot_support_are_named():
    assert percentile_warnings(100, [50, 90, 95, 99]) == []
    [warning] = percentile_warnings(19, [50, 90, 95, 99])
    assert warning.startswith("p95, p99 from 19 measured requests")
    assert "p99: 100" in warning and "p95: 20" in warning and "p90" not in warning.split(":")[0]


def summary(values_ms: list[float], n_ok: int | None = None) -> Summary:
    distributions = {"ttft": distribution(values_ms), "tpot": distribution([5.0] * len(values_ms))}
    latency = LatencySection(n_requests=len(values_ms), n_ok=n_ok or len(values_ms), n_errors=0,
                             distributions=distributions)
    return Summary().add(latency)


def test_cv_is_judged_only_where_the_requests_repeat_one_measurement():
    steady, noisy = [10.0] * 100, [10.0, 30.0] * 50
    assert measurement_warnings(summary(steady), alike_requests=True) == []
    [warning] = measurement_warnings(summary(noisy), alike_requests=True)
    assert warning.startswith("TTFT CV ") and f"above {CV_LIMIT:.0%}" in warning
    assert measurement_warnings(summary(noisy), alike_requests=False) == []  # under load: the spread is the figure


def test_no_warnings_without_measured_requests():
    assert measurement_warnings(Summary(), alike_requests=True) == []
    assert measurement_warnings(Summary().add(LatencySection(n_requests=0, n_ok=0)), alike_requests=True) == []
