"""A request-rate sweep on the CPU, through launch.py with the E2-by-rate preset at tiny scale: each
job records the rate and arrival process it ran, and the report finds the DistServe goodput from
the records and plots attainment against the rate."""

from __future__ import annotations

import math

import matplotlib
import pandas as pd
from PIL import Image

from context_research.report.build import build_report
from tests.conftest import manifests, read_summary

matplotlib.use("Agg")
TINY = ["experiment=e2_rate", "prompt_len=16", "output_len=4", "num_prompts=8", "benchmark.arrival.rate=4,32",
        "benchmark.arrival.burstiness=1"]


def test_rate_sweep_records_and_its_goodput(run_launch, tmp_path):
    # SLOs no CPU run misses (a minute) : every rate meets them, so the goodput is the highest rate
    process, root = run_launch("-m", *TINY, "benchmark.slo.ttft_ms=60000", "benchmark.slo.tpot_ms=60000",
                               env={"OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr[-3000:]
    jobs = manifests(root / "sweep")
    assert [m["status"] for m in jobs] == ["completed", "completed"]
    summaries = [read_summary(m["_dir"]) for m in jobs]
    assert [(s["arrival_process"], s["request_rate"], s["burstiness"]) for s in summaries] == [
        ("gamma", 4.0, 1.0), ("gamma", 32.0, 1.0)]
    assert all(s["n_requests"] == 6 and s["n_warmup"] == 1 and s["n_cooldown"] == 1 for s in summaries)
    assert all(s["slo_attainment"] == 1.0 for s in summaries)

    report = build_report([root / "sweep"], tmp_path / "report")
    goodput = pd.read_csv(tmp_path / "report" / "goodput.csv")
    assert goodput[["load_key", "loads", "distserve_goodput"]].values.tolist() == [["benchmark.arrival.rate", "4 32",
                                                                                   32.0]]
    assert math.isclose(goodput["req_s_at_goodput"].iloc[0], summaries[1]["req_s"])
    png = next(p for p in report.files if p.name == "goodput_attainment.png")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 300
    table = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert table["request_rate"].tolist() == [4.0, 32.0] and (table["slo_attainment"] == 1.0).all()
