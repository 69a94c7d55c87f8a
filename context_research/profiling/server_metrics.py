"""A server's own figures, from its Prometheus text (/metrics), for the jobs whose engines are servers.

The collector scrapes every server endpoint of the job (engines with `metrics_urls`, serving/backends/
openai.py) when the job starts and when it ends, and every `interval_s` in between in a background
thread; each scrape keeps only the series below (a line filter before prometheus_client's parser,
so a large exposition costs little) and is parsed with `text_string_to_metric_families`.

- Counters, as deltas over the job: prefix-cache queries and hits (tokens) and their ratio, the hit
  rate; preemptions; prompt and generation tokens; finished requests.
- Histograms, as deltas over the job: time in the queue, in prefill, in decode per request (vLLM's
  request_*_time_seconds): mean = delta sum / delta count, p50 and p99 interpolated within the
  buckets as Prometheus' histogram_quantile does (so only as fine as the server's buckets).
- Gauges, over the samples: KV-cache usage (peak, mean; a fraction of the cache), running and
  waiting requests (peaks).

Names are vLLM 0.26's (`vllm:` prefix; counters are exposed with `_total`). The samples go to
timeseries/server.parquet. A server without /metrics (transformers serve) or whose scrape fails
gives `server_metrics_available: false` and the reason (so do in-process engines: no server); a
figure a server does not expose is null.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from context_research.metrics.schema import Section, ServerSection
from context_research.profiling.base import MetricCollector

log = logging.getLogger(__name__)

# figure -> series (vLLM 0.26)
COUNTERS = {"prefix_cache_queries": "vllm:prefix_cache_queries", "prefix_cache_hits": "vllm:prefix_cache_hits",
            "preemptions": "vllm:num_preemptions", "prompt_tokens": "vllm:prompt_tokens",
            "generation_tokens": "vllm:generation_tokens", "requests": "vllm:request_success"}
GAUGES = {"kv_cache_usage": "vllm:kv_cache_usage_perc", "num_requests_running": "vllm:num_requests_running",
          "num_requests_waiting": "vllm:num_requests_waiting"}
HISTOGRAMS = {"queue_time": "vllm:request_queue_time_seconds", "prefill_time": "vllm:request_prefill_time_seconds",
              "decode_time": "vllm:request_decode_time_seconds"}
CACHE_INFO = "vllm:cache_config_info"
WANTED = tuple(sorted({*COUNTERS.values(), *GAUGES.values(), *HISTOGRAMS.values(), CACHE_INFO}))


def scrape(url: str, timeout_s: float = 5.0) -> tuple[str | None, str | None]:
    """GET a Prometheus endpoint: (text, None), or (None, why not) in one line."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read().decode("utf-8", errors="replace"), None
    except urllib.error.HTTPError as error:
        return None, f"GET {url}: HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, f"GET {url}: {type(error).__name__}: {getattr(error, 'reason', error)}"


def wanted_lines(text: str) -> str:
    """The exposition's lines for WANTED series only (their samples and TYPE/HELP lines)."""
    kept = []
    for line in text.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("# ") and line.count(" ") >= 2 else line
        if name.startswith(WANTED):
            kept.append(line)
    return "\n".join(kept) + "\n"


@dataclass
class Reading:
    """One scrape of one endpoint, summed over the label sets of each series (engines, models)."""

    counters: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    # figure -> ({upper bound: cumulative count}, sum, count)
    histograms: dict[str, tuple[dict[float, float], float, float]] = field(default_factory=dict)
    cache_info: list[dict[str, str]] = field(default_factory=list)


def parse(text: str) -> Reading:
    """A Reading from Prometheus text (only the WANTED series are looked at)."""
    from prometheus_client.parser import text_string_to_metric_families

    by_series = {series: figure for figure, series in {**COUNTERS, **GAUGES, **HISTOGRAMS}.items()}
    reading = Reading()
    for family in text_string_to_metric_families(wanted_lines(text)):
        if family.name == CACHE_INFO:
            reading.cache_info.extend(dict(sample.labels) for sample in family.samples)
            continue
        figure = by_series.get(family.name)
        if figure is None:
            continue
        if family.name in COUNTERS.values():
            values = [s.value for s in family.samples if s.name.endswith("_total") or s.name == family.name]
            reading.counters[figure] = float(sum(values))
        elif family.name in GAUGES.values():
            values = [s.value for s in family.samples]
            if values:  # KV usage: the fullest engine; requests: all engines together
                reading.gauges[figure] = float(max(values) if figure == "kv_cache_usage" else sum(values))
        else:
            buckets: dict[float, float] = {}
            total = count = 0.0
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
            reading.histograms[figure] = (buckets, total, count)
    return reading


def kv_capacity_tokens(text: str) -> int | None:
    """KV tokens of a vLLM server: num_gpu_blocks x block_size of its cache_config_info, summed over engines."""
    info = parse(text).cache_info
    try:
        total = sum(int(labels["num_gpu_blocks"]) * int(labels["block_size"]) for labels in info)
    except (KeyError, ValueError):
        return None
    return total or None


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of cumulative `buckets` ({upper bound: count}), interpolated linearly inside the
    bucket it falls in, as Prometheus' histogram_quantile; the highest finite bound when it falls in +Inf."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower


def combine(readings: list[Reading]) -> Reading:
    """Endpoints together: counters and histograms summed; KV usage the fullest, requests summed."""
    combined = Reading()
    for reading in readings:
        for figure, value in reading.counters.items():
            combined.counters[figure] = combined.counters.get(figure, 0.0) + value
        for figure, value in reading.gauges.items():
            before = combined.gauges.get(figure)
            combined.gauges[figure] = value if before is None else (
                max(before, value) if figure == "kv_cache_usage" else before + value)
        for figure, (buckets, total, count) in reading.histograms.items():
            old_buckets, old_total, old_count = combined.histograms.get(figure, ({}, 0.0, 0.0))
            merged = {b: old_buckets.get(b, 0.0) + buckets.get(b, 0.0) for b in {*old_buckets, *buckets}}
            combined.histograms[figure] = (merged, old_total + total, old_count + count)
    return combined


def job_figures(before: Reading, after: Reading, samples: list[Reading]) -> dict[str, Any]:
    """ServerSection's figures: counter and histogram deltas over the job, gauges over the samples."""
    figures: dict[str, Any] = {}
    for figure in COUNTERS:
        if figure in before.counters and figure in after.counters:
            figures[f"server_{figure}"] = after.counters[figure] - before.counters[figure]
    queries, hits = figures.get("server_prefix_cache_queries"), figures.get("server_prefix_cache_hits")
    if queries:
        figures["server_prefix_cache_hit_rate"] = hits / queries if hits is not None else None
    for figure in HISTOGRAMS:
        if figure not in before.histograms or figure not in after.histograms:
            continue
        (old, old_sum, old_count), (new, new_sum, new_count) = before.histograms[figure], after.histograms[figure]
        count = new_count - old_count
        if count <= 0:
            continue
        delta = {bound: new.get(bound, 0.0) - old.get(bound, 0.0) for bound in new}
        figures[f"server_{figure}_mean_ms"] = (new_sum - old_sum) / count * 1e3
        for q in (50, 99):
            value = histogram_quantile(q / 100, delta)
            figures[f"server_{figure}_p{q}_ms"] = value * 1e3 if value is not None else None
    points = [*samples, after]
    for figure, name in (("kv_cache_usage", "server_kv_cache_usage"), ("num_requests_running", "server_num_running"),
                         ("num_requests_waiting", "server_num_waiting")):
        values = [point.gauges[figure] for point in points if figure in point.gauges]
        if values:
            figures[f"{name}_peak"] = max(values)
            if figure == "kv_cache_usage":
                figures[f"{name}_mean"] = sum(values) / len(values)
    return figures


class ServerMetricsCollector(MetricCollector):
    """Collector `server` (config: ServerMetricsCollectorConfig): see the module doc."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.interval_s = config.interval_s
        self.timeout_s = config.timeout_s
        self.urls: list[str] = []
        self.servers = False  # the job's engines include servers
        self.unavailable: str | None = None
        self.before: dict[str, Reading] = {}
        self.after: dict[str, Reading] = {}
        self.rows: list[dict[str, Any]] = []
        self.rounds: list[list[Reading]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def bind_engines(self, engines: dict[str, Any]) -> None:
        servers = [engine for engine in engines.values() if hasattr(engine, "metrics_urls")]
        self.servers = bool(servers)
        self.urls = [url for engine in servers for url in engine.metrics_urls()]
        if self.servers and not self.urls:
            self.unavailable = "serving.metrics_path is null: the server's /metrics is not read"

    def _read_all(self) -> dict[str, Reading] | None:
        """Every endpoint's Reading now; None (and `unavailable` says why) when one cannot be read."""
        readings = {}
        for url in self.urls:
            text, error = scrape(url, self.timeout_s)
            if text is None:
                self.unavailable = error
                return None
            readings[url] = parse(text)
        return readings

    def start(self) -> None:
        if not self.servers or self.unavailable:
            return
        before = self._read_all()
        if before is None:
            return
        self.before = before
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="server-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            t_s = time.perf_counter() - self.origin
            readings = self._read_all()
            if readings is None:
                log.warning("server metrics sampling stopped: %s", self.unavailable)
                self.unavailable = None  # the end-of-job scrape decides whether figures exist
                return
            self._keep(t_s, readings)

    def _keep(self, t_s: float, readings: dict[str, Reading]) -> None:
        self.rounds.append(list(readings.values()))
        for url, reading in readings.items():
            self.rows.append({"t_s": t_s, "endpoint": url, **reading.gauges, **reading.counters})

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=self.timeout_s + self.interval_s + 1)
            self._thread = None
        if self.before and not self.after:
            after = self._read_all()
            if after is not None:
                self.after = after
                self._keep(time.perf_counter() - self.origin, after)

    def snapshot(self) -> list[Section]:
        if not self.servers:
            return [ServerSection(server_metrics_available=False,
                                  server_metrics_reason="the job's engines run in process: no server to read")]
        if not self.after:
            return [ServerSection(server_metrics_available=False,
                                  server_metrics_reason=self.unavailable or "no scrape at the job's end")]
        figures = job_figures(combine(list(self.before.values())), combine(list(self.after.values())),
                              [combine(readings) for readings in self.rounds[:-1]])
        reason = None if figures else "the server exposes none of the vllm:* series read here"
        return [ServerSection(server_metrics_available=bool(figures), server_metrics_reason=reason,
                              server_metrics_samples=len(self.rounds), **figures)]

    def timeseries(self) -> pd.DataFrame | None:
        return pd.DataFrame(self.rows) if self.rows else None
