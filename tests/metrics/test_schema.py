"""The metrics schema: sections written as summary.json with a schema_version and read back to the same
columns; summaries from before the schema give their own names; one SLO rule for the job and the report."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from context_research.config.benchmark import SLOConfig
from context_research.metrics.latency import distribution
from context_research.metrics.load import slo_attainment
from context_research.metrics.schema import (SCHEMA_VERSION, LatencySection, RooflineSection, RunSection, Summary,
                                             ThroughputSection)


def test_a_summary_round_trips_through_json_to_the_same_columns():
    latency = LatencySection(n_requests=3, n_ok=3, n_errors=0, distributions={"ttft": distribution([10, 20, 30])})
    summary = Summary().add(RunSection(name="e1", passed=True, checks={"full_outputs": True}), latency,
                            ThroughputSection(req_s=2.0), RooflineSection(ttft_floor_ms=5.0).with_ratios(latency))
    stored = json.loads(json.dumps(summary.to_json()))
    assert stored["schema_version"] == SCHEMA_VERSION and stored["latency"]["distributions"]["ttft"]["unit"] == "ms"
    columns = Summary.from_json(stored).columns()
    assert columns == summary.columns()
    assert columns["ttft_p50_ms"] == 20.0 and columns["ttft_cv"] == pytest.approx(0.5)
    assert columns["ttft_measured_over_floor"] == 4.0 and columns["req_s"] == 2.0
    assert columns["checks"] == {"full_outputs": True}


def test_a_summary_from_before_the_schema_keeps_its_names_order_and_values():
    flat = {"name": "e1", "ttft_p50_ms": 30.0, "ttft_floor_ms": 20.0, "kv_transfer_p50_ms": 4.0, "n_ok": 2,
            "something_new": "kept", "passed": True}
    loaded = Summary.from_json(flat)
    assert loaded.schema_version is None
    assert loaded.get(LatencySection).p50("ttft") == 30.0  # a distribution, even without its cv
    columns = loaded.columns()
    assert list(columns) == [*flat, "ttft_measured_over_floor"] and columns["ttft_measured_over_floor"] == 1.5
    assert {k: columns[k] for k in flat} == flat


def test_the_report_judges_slos_by_the_jobs_rule():
    # r1 meets both; r2 meets TTFT only from dispatch (it queued 400 ms); r3 has one token: no TPOT to judge
    rows = pd.DataFrame({"phase": ["measure"] * 3, "ok": [True] * 3, "ttft_ms": [100.0, 150.0, 120.0],
                         "tpot_ms": [10.0, 10.0, math.nan], "queue_wait_ms": [0.0, 400.0, 0.0],
                         "e2e_ms": [500.0, 600.0, 120.0]})
    assert slo_attainment(rows, SLOConfig(ttft_ms=200.0, tpot_ms=20.0)) == pytest.approx(2 / 3)
    assert slo_attainment(rows, SLOConfig(ttft_ms=200.0, tpot_ms=20.0, include_queue_wait=False)) == 1.0
