"""The `client` collector: the event-loop lag probe sees a blocked loop, and an HTTP run whose client is
the bottleneck is flagged with the reasons."""

from __future__ import annotations

import asyncio
import time

from context_research.serving import event_loop
from context_research.profiling.client_health import ClientHealthCollector
from tests.conftest import snapshot_figures, typed


def collector(*overrides: str) -> ClientHealthCollector:
    return ClientHealthCollector(typed(list(overrides), "collectors")["client"])


class HttpEngine:
    is_http_client = True


def test_an_idle_loop_has_small_lag_and_a_blocked_one_large_lag():
    health = collector("collectors.client.interval_s=0.005")
    health.bind_engines({"aggregated": HttpEngine()})
    health.start()
    time.sleep(0.3)

    async def block() -> None:
        busy_until = time.perf_counter() + 0.12
        while time.perf_counter() < busy_until:  # the loop thread busy for 120 ms: every probe in that time waits
            pass
        await asyncio.sleep(0)

    event_loop.run(block())
    time.sleep(0.1)
    health.stop()
    figures = snapshot_figures(health)
    assert figures["loop_lag_samples"] >= 40
    assert figures["loop_lag_max_ms"] >= 80 and figures["loop_lag_p50_ms"] < 20
    # the loop thread's CPU: at least much of those 120 ms, over a job of about 0.5 s (a shared host may preempt it)
    assert figures["client_cpu_share"] >= figures["loop_cpu_share"] >= 0.05
    assert figures["client_limited"] is True
    assert any("event-loop lag p99" in warning for warning in figures["client_warnings"])
    assert list(health.timeseries().columns) == ["t_s", "loop_lag_ms"]


def test_in_process_engines_get_the_figures_without_a_verdict():
    health = collector("collectors.client.max_lag_p99_ms=0.000001")
    health.bind_engines({"aggregated": object()})
    health.start()
    time.sleep(0.1)
    health.stop()
    figures = snapshot_figures(health)
    assert figures["loop_lag_p99_ms"] is not None
    assert figures["client_limited"] is None and figures["client_warnings"] == []
