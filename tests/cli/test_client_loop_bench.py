"""The client benchmark runs end to end on a few streams (its figures are benchmark figures, not checked here)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_the_client_benchmark_streams_every_request_and_prints_its_figures():
    done = subprocess.run([sys.executable, "-m", "context_research.cli.client_loop_bench", "--streams", "4",
                           "--requests", "8", "--tokens", "5", "--prompt-len", "16", "--step-ms", "5", "--profile", "3"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = dict(line.split(None, 1) for line in done.stdout.splitlines()[:16] if line.strip())
    assert figures["errors"] == "0" and figures["requests"] == "8" and figures["chunks"] == str(8 * 5)
    assert "steady_lag_p99_ms" in figures and "function calls" in done.stdout
