"""The `server` collector against a real server's /metrics (tests/serving/scripted_server.py exposes
vLLM-named series with prometheus_client), and the formulas it uses."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from context_research.profiling.server_metrics import (Reading, ServerMetricsCollector, histogram_quantile,
                                                       job_figures, kv_capacity_tokens, parse)
from tests.conftest import snapshot_figures, typed
from tests.serving.scripted_server import ScriptedServer
from tests.serving.test_openai_client import openai_engine, token_request


def test_counters_gauges_and_histograms_are_read_from_prometheus_text():
    registry = CollectorRegistry()
    hits = Counter("vllm:prefix_cache_hits", "h", ["engine"], registry=registry)
    hits.labels("0").inc(30)
    hits.labels("1").inc(10)  # two engines of one server: summed
    queue = Histogram("vllm:request_queue_time_seconds", "q", registry=registry, buckets=[0.1, 1.0])
    for seconds in (0.05, 0.5, 0.5, 5.0):
        queue.observe(seconds)
    text = generate_latest(registry).decode() + "vllm:other_series_total 3\n"
    reading = parse(text)
    assert reading.counters == {"prefix_cache_hits": 40.0}
    buckets, total, count = reading.histograms["queue_time"]
    assert buckets == {0.1: 1.0, 1.0: 3.0, math.inf: 4.0} and total == pytest.approx(6.05) and count == 4


def test_histogram_quantiles_interpolate_inside_a_bucket_as_prometheus_does():
    buckets = {0.1: 10.0, 1.0: 30.0, math.inf: 40.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.9 * (20 - 10) / 20)
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.1 * 4 / 10)  # from 0, the lowest bound
    assert histogram_quantile(0.99, buckets) == 1.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, {1.0: 0.0, math.inf: 0.0}) is None


def test_job_figures_are_deltas_over_the_job():
    before = Reading(counters={"prefix_cache_queries": 100.0, "prefix_cache_hits": 20.0, "preemptions": 1.0},
                     histograms={"prefill_time": ({0.1: 5.0, math.inf: 5.0}, 0.2, 5.0)})
    after = Reading(counters={"prefix_cache_queries": 300.0, "prefix_cache_hits": 70.0, "preemptions": 4.0},
                    gauges={"kv_cache_usage": 0.1},
                    histograms={"prefill_time": ({0.1: 7.0, math.inf: 9.0}, 1.4, 9.0)})
    during = [Reading(gauges={"kv_cache_usage": 0.6, "num_requests_waiting": 3.0})]
    figures = job_figures(before, after, during)
    assert figures["server_prefix_cache_queries"] == 200 and figures["server_prefix_cache_hit_rate"] == 0.25
    assert figures["server_preemptions"] == 3
    assert figures["server_prefill_time_mean_ms"] == pytest.approx((1.4 - 0.2) / 4 * 1e3)
    assert figures["server_kv_cache_usage_peak"] == 0.6 and figures["server_kv_cache_usage_mean"] == 0.35
    assert figures["server_num_waiting_peak"] == 3 and "server_generation_tokens" not in figures


def test_the_collector_reads_a_servers_metrics_before_during_and_after_a_job(tmp_path):
    with ScriptedServer(delay_s=0.01) as server:
        engine = openai_engine(tmp_path, [server.url])
        engine.start()
        try:
            collector = ServerMetricsCollector(typed(["collectors.server.interval_s=0.05"], "collectors")["server"])
            collector.bind_engines({"aggregated": engine})
            engine.generate(token_request("before", tokens=3))  # served before the job: not in its figures
            collector.start()
            for i in range(3):
                engine.generate(token_request(f"r{i}", tokens=10))
            collector.stop()
        finally:
            engine.stop()
    figures = snapshot_figures(collector)
    assert figures["server_metrics_available"] is True and figures["server_metrics_samples"] >= 2
    assert figures["server_generation_tokens"] == 30 and figures["server_prompt_tokens"] == 3 * 32
    assert figures["server_prefix_cache_queries"] == 96 and figures["server_prefix_cache_hit_rate"] == 0.0
    assert figures["server_queue_time_mean_ms"] == pytest.approx(5.0)
    assert figures["server_kv_cache_usage_peak"] == 0.25  # sampled while a request ran
    frame = collector.timeseries()
    assert {"t_s", "endpoint", "kv_cache_usage", "generation_tokens"} <= set(frame.columns)
    assert frame["generation_tokens"].is_monotonic_increasing


def test_a_server_without_metrics_gives_null_figures_with_the_reason(tmp_path):
    with ScriptedServer(metrics=False) as server:
        engine = openai_engine(tmp_path, [server.url])
        engine.start()
        try:
            collector = ServerMetricsCollector(typed([], "collectors")["server"])
            collector.bind_engines({"aggregated": engine})
            collector.start()
            collector.stop()
            assert engine.kv_capacity_tokens() is None
        finally:
            engine.stop()
    figures = snapshot_figures(collector)
    assert figures["server_metrics_available"] is False
    assert figures["server_metrics_reason"] == f"GET {server.url[:-3]}/metrics: HTTP 404 Not Found"
    assert figures["server_prefix_cache_hit_rate"] is None


def test_kv_capacity_is_blocks_times_block_size():
    assert kv_capacity_tokens('vllm:cache_config_info{block_size="16",num_gpu_blocks="1000"} 1.0\n') == 16000
    assert kv_capacity_tokens("vllm:num_requests_running 0\n") is None
