"""The views serving researchers expect: SLO attainment with the goodput marked, latency against
throughput with its Pareto points, per-request timelines, prefix-cache hit rates, warnings, log
axes that stay readable, A/B labels that do not collide, folder names by --label, and no GPU
floors on a CPU run. Each plot is checked as a file (PNG opened with PIL) and as a figure (its
axes labelled)."""

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from tests.report.report_records import E8_H200, job_config, write_record

matplotlib.use("Agg")

from context_research.cli.report import main  # noqa: E402
from context_research.report import plots  # noqa: E402
from context_research.report.build import build_report  # noqa: E402
from context_research.report.goodput import attainment_by_load, distserve_goodput  # noqa: E402
from context_research.report.loader import load_jobs, load_requests  # noqa: E402
from context_research.report.pareto import pareto_efficient  # noqa: E402
from context_research.workloads.generator import TraceShape, mooncake_records  # noqa: E402

RATES = (1, 2, 4, 8)


def requests_frame(count: int, rate: float, ttft_s: float = 0.05, decode_s: float = 0.2) -> pd.DataFrame:
    """Measured requests arriving every 1/rate s, queued a little, then prefilled and decoded."""
    arrival = np.arange(count) / rate
    dispatch = arrival + 0.01
    first = dispatch + ttft_s
    last = first + decode_s
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(count)], "phase": "measure", "ok": True,
                         "prompt_tokens": 100, "completion_tokens": 11, "arrival_s": arrival, "dispatch_s": dispatch,
                         "first_token_s": first, "last_token_s": last, "ttft_ms": ttft_s * 1e3,
                         "tpot_ms": decode_s * 100, "e2e_ms": (last - dispatch) * 1e3, "queue_wait_ms": 10.0,
                         "itl_ms": [[decode_s * 100] * 10] * count})


def rate_sweep(root, label: str = "rates", engine: str = "vllm", slowdown: float = 1.0) -> None:
    """A Poisson and a bursty rate sweep: attainment falls with the rate, faster when bursty."""
    for burstiness in (1.0, 0.5):
        for rate in RATES:
            attainment = max(0.0, 1.0 - 0.06 * rate * (1 / burstiness) * slowdown)
            summary = {"schema_version": 1,
                       "run": {"name": "e2_rate", "engine": engine, "model": "qwen3_8b", "scheduler": "aggregated",
                               "warnings": ["p99 from 40 measured requests"] if rate == 1 else []},
                       "latency": {"n_requests": 40, "n_ok": 40, "distributions": {
                           "ttft": {"mean": 50.0 * rate, "percentiles": {"p50": 50.0 * rate * slowdown,
                                                                        "p99": 90.0 * rate * slowdown}},
                           "tpot": {"mean": 10.0, "percentiles": {"p50": 10.0 + rate, "p99": 14.0 + rate}}}},
                       "throughput": {"req_s": rate * 0.98, "out_tok_s": 250.0 * rate / slowdown},
                       "load": {"arrival_process": "gamma", "request_rate": float(rate), "burstiness": burstiness},
                       "slo": {"slo_attainment": attainment, "goodput_req_s": rate * attainment}}
            write_record(root / label / f"r{rate}b{burstiness}",
                         ["experiment=e2_rate", f"benchmark.arrival.rate={rate}",
                          f"benchmark.arrival.burstiness={burstiness}"],
                         summary, job_config("e2_rate", engine=engine), requests=requests_frame(40, rate))


def labelled(ax) -> bool:
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel())


def opens_as_png(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_goodput_plot_marks_the_target_and_each_sweeps_goodput(tmp_path):
    rate_sweep(tmp_path)
    jobs = load_jobs([tmp_path / "rates"])
    goodput = distserve_goodput(jobs)
    # attainment 1 - 0.06 x rate (Poisson) and 1 - 0.12 x rate (bursty): >= 90% up to rate 1 resp. none
    by_point = dict(zip(goodput["sweep_point"].str.extract(r"burstiness=([\d.]+)")[0], goodput["distserve_goodput"]))
    assert by_point["1.0"] == 1 and math.isnan(by_point["0.5"])
    plot = plots.goodput_attainment(attainment_by_load(jobs), goodput, jobs)
    [ax] = plot.figure.axes
    assert labelled(ax) and "request rate" in ax.get_xlabel()
    assert any(line.get_linestyle() == "--" and set(line.get_ydata()) == {0.9} for line in ax.get_lines())
    stars = [c for c in ax.collections if len(c.get_offsets())]
    assert [tuple(c.get_offsets()[0]) for c in stars] == [(1.0, pytest.approx(0.94))]  # only Poisson reaches 90%
    assert "star: the DistServe goodput" in plot.caption
    paths = plot.save(tmp_path / "plots")
    assert opens_as_png(paths[0])[0] > 300


def test_pareto_points_are_those_no_other_point_beats():
    throughput = [100, 200, 300, 250, 300]
    latency = [10, 20, 40, 50, 30]
    assert pareto_efficient(throughput, latency).tolist() == [True, True, False, False, True]
    assert pareto_efficient([1, math.nan], [1, 1]).tolist() == [True, False]


def test_latency_vs_throughput_joins_the_pareto_points_per_folder(tmp_path):
    rate_sweep(tmp_path, "fast")
    rate_sweep(tmp_path, "slow", slowdown=2.0)
    jobs = load_jobs([tmp_path / "fast", tmp_path / "slow"])
    plot = plots.latency_vs_throughput(jobs)
    assert [ax.get_title() for ax in plot.figure.axes] == ["TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99"]
    assert all(labelled(ax) and ax.get_xlabel() == "output throughput (tokens/s)" for ax in plot.figure.axes)
    # one joined line per series (folder x burstiness), through its efficient points only
    lines = plot.figure.axes[0].get_lines()
    assert len(lines) == 4
    for line in lines:  # TTFT rises with throughput here: every point is efficient
        assert len(line.get_xdata()) == len(RATES)
    assert "Pareto-efficient" in plot.caption


def test_timeline_draws_queue_prefill_decode_and_samples_many_requests(tmp_path):
    rate_sweep(tmp_path)
    jobs = load_jobs([tmp_path / "rates"])
    job = jobs.iloc[0]
    few = plots.request_timeline(requests_frame(40, 4.0), job)
    [ax] = few.figure.axes
    assert labelled(ax) and "all 40 measured requests" in few.caption
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["queue", "prefill", "decode"]
    bars = ax.containers
    assert [len(b) for b in bars] == [40, 40, 40]
    assert bars[1][0].get_width() == pytest.approx(0.05) and bars[2][0].get_width() == pytest.approx(0.2)
    many = plots.request_timeline(requests_frame(1000, 50.0), job)
    assert "a sample of 200 of the 1000 measured requests, evenly spaced in arrival order" in many.caption
    assert len(many.figure.axes[0].containers[0]) == 200
    # every 5th: the drawn bars start at arrivals 0, 0.1, 0.2, ... s (50 requests/s)
    assert [bar.get_x() for bar in many.figure.axes[0].containers[0][:3]] == pytest.approx([0.0, 0.1, 0.2])
    # a few over the limit: still the limit drawn, not every 2nd (half of them)
    few_over = plots.request_timeline(requests_frame(203, 50.0), job)
    assert len(few_over.figure.axes[0].containers[0]) == 200 and "200 of the 203" in few_over.caption
    assert opens_as_png(many.save(tmp_path / "plots")[0])[1] > 200


def visible_labels(ax, axis: str) -> list[str]:
    """The tick labels drawn inside the axis's view (major and minor)."""
    FigureCanvasAgg(ax.figure).draw()
    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = sorted(target.get_view_interval())
    labels = [*target.get_ticklabels(minor=False), *target.get_ticklabels(minor=True)]
    inside = [label for label in labels if low <= label.get_position()[1 if axis == "y" else 0] <= high]
    return [label.get_text() for label in inside if label.get_text()]


@pytest.mark.parametrize("low, high, at_least", [(30, 45, 2), (12, 30, 2), (3, 40, 3), (0.02, 0.05, 3),
                                                 (1, 1000, 4)])
def test_a_log_axis_spanning_less_than_a_decade_still_has_labels(low, high, at_least):
    figure, [ax] = plots.new_figure(1)
    ax.plot([0, 1], [low, high])
    plots.plain_log_scale(ax, "y")
    labels = visible_labels(ax, "y")
    assert len(labels) >= at_least, labels
    assert all("e" not in label and "^" not in label for label in labels)  # plain numbers: 20, 0.05


def test_ab_panel_labels_do_not_collide(tmp_path):
    differences = pd.DataFrame([
        {"pair": f"benchmark.workload.prompt_len={n} serving.max_num_batched_tokens=8192 seed=0", "metric": m,
         "statistic": "median", "diff": 1.0, "ci_low": 0.5, "ci_high": 1.5, "significant": True}
        for n in (1024, 4096, 16384) for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")])
    jobs = pd.DataFrame({"label": ["2026-01-01_10-00-00", "2026-01-02_11-30-00"], "model": "qwen3_8b",
                         "engine": "vllm", "gpu": "NVIDIA H200", "status": "completed"})
    plot = plots.ab_differences(differences, jobs, "2026-01-01_10-00-00", "2026-01-02_11-30-00")
    figure = plot.figure
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = []
    for ax in figure.axes:
        texts = [ax.xaxis.label, ax.title, *[t for t in ax.get_yticklabels() if t.get_text()],
                 *[t for t in ax.get_xticklabels() if t.get_text()]]
        boxes.append([t.get_window_extent(renderer) for t in texts])
    for i, mine in enumerate(boxes):  # no text of one panel overlaps a text of another
        for j, theirs in enumerate(boxes):
            if i < j:
                assert not any(a.overlaps(b) for a in mine for b in theirs), (i, j)
    assert all(ax.get_xlabel() == "B − A (ms)" for ax in figure.axes)
    assert "B = 2026-01-02_11-30-00, A = 2026-01-01_10-00-00" in figure._suptitle.get_text().replace("\n", " ")


def test_label_names_folders_in_the_report(tmp_path, capsys):
    rate_sweep(tmp_path, "2026-01-01_10-00-00")
    rate_sweep(tmp_path, "2026-01-02_11-30-00", slowdown=2.0)
    first, second = tmp_path / "2026-01-01_10-00-00", tmp_path / "2026-01-02_11-30-00"
    assert main([str(first), "--label", f"baseline={first}", "--label", f"slower={second}",
                 "--out", str(tmp_path / "out")]) == 0
    jobs = pd.read_csv(tmp_path / "out" / "jobs.csv")
    assert list(dict.fromkeys(jobs["label"])) == ["baseline", "slower"]  # DIR given first stays A
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "A/B: slower vs baseline" in markdown and "2026-01-02_11-30-00 vs" not in markdown
    with pytest.raises(SystemExit):
        main(["--label", "nodir", "--out", str(tmp_path / "bad")])
    assert "expected NAME=DIR" in capsys.readouterr().err


def test_report_sections_for_a_rate_sweep(tmp_path):
    rate_sweep(tmp_path)
    report = build_report([tmp_path / "rates"], tmp_path / "out")
    names = {p.name for p in report.files}
    for stem in ("goodput_attainment", "latency_vs_throughput"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, (stem, names)
    # the timeline shows the job under the highest load (rate 8)
    timelines = sorted(n for n in names if n.startswith("timeline_"))
    assert timelines in ([f"timeline_rates_r8b{b}.png", f"timeline_rates_r8b{b}.svg"] for b in ("0.5", "1.0"))
    markdown = (tmp_path / "out" / "report.md").read_text()
    for title in ("## Warnings", "## DistServe goodput", "## Latency vs throughput", "## Request timeline"):
        assert title in markdown
    warnings = markdown.split("## Warnings")[1].split("## ")[0]
    assert "p99 from 40 measured requests" in warnings
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")  # the e2_rate table
    assert summary["request_rate"].tolist() == [1, 2, 4, 8] * 2 and set(summary["burstiness"]) == {0.5, 1.0}


def test_a_timeline_per_workload_of_a_folder(tmp_path):
    """E8's folder holds two workloads at one load (the trace, the sessions): a timeline each, the
    trace's bars starting at its own timestamps, the sessions' 200 of their 203 turns."""
    report = build_report([E8_H200], tmp_path / "out")
    names = {p.name for p in report.files}
    assert {"timeline_e8_h200_0.png", "timeline_e8_h200_1.png"} <= names
    assert "latency_vs_throughput.png" not in names  # no load axis with two values: no Pareto of one point each
    jobs = load_jobs([E8_H200])
    trace = plots.request_timeline(load_requests(jobs.iloc[[0]]), jobs.iloc[0])
    queue = trace.figure.axes[0].containers[0]
    starts = np.array([bar.get_x() for bar in queue])
    timestamps = np.array([record["timestamp"] for record in mooncake_records(TraceShape(), 0)]) / 1e3
    np.testing.assert_allclose(starts - starts[0], timestamps, atol=1e-6)  # the planned arrival of every request
    sessions = plots.request_timeline(load_requests(jobs.iloc[[1]]), jobs.iloc[1])
    assert len(sessions.figure.axes[0].containers[0]) == 200 and "200 of the 203" in sessions.caption
    for name in ("timeline_e8_h200_0.png", "timeline_e8_h200_1.png"):
        assert opens_as_png(tmp_path / "out" / "plots" / name)[1] > 400


def session_requests(cached_share: float) -> pd.DataFrame:
    rows = []
    for session in range(3):
        prompt = 0
        for turn in (1, 2, 3):
            added = 100
            rows.append({"request_id": f"s{session}t{turn}", "phase": "measure", "ok": True,
                         "session_id": f"s{session}", "turn": turn, "prompt_tokens": prompt + added,
                         "num_cached_tokens": int(prompt * cached_share), "completion_tokens": 20})
            prompt += added + 20
    return pd.DataFrame(rows)


def test_prefix_cache_hit_rates_per_job_turn_and_session(tmp_path):
    for share in (1.0, 0.5):
        frame = session_requests(share)
        summary = {"schema_version": 1, "run": {"name": "e8", "engine": "vllm", "model": "qwen3_8b"},
                   "prefix_cache": {"prefix_cache_hit_rate": float(frame["num_cached_tokens"].sum()
                                                                   / frame["prompt_tokens"].sum())}}
        write_record(tmp_path / "s" / f"share{share}", [f"share={share}"], summary, job_config("e8"),
                     requests=frame)
    report = build_report([tmp_path / "s"], tmp_path / "out")
    by_turn = pd.read_csv(tmp_path / "out" / "prefix_cache_by_turn.csv")
    full = by_turn[by_turn["job"] == "share1.0"].set_index("turn")["hit_rate"]
    assert full.to_dict() == pytest.approx({1: 0.0, 2: 120 / 220, 3: 240 / 340})
    assert "prefix_cache_by_turn.png" in {p.name for p in report.files}
    markdown = (tmp_path / "out" / "report.md").read_text()
    section = markdown.split("## Prefix cache")[1].split("## ")[0]
    assert "hit rate per turn" in section and "hit rate per session" in section


def test_no_gpu_floors_on_a_cpu_run(tmp_path):
    floors = {"ttft_p50_ms": 5.0, "ttft_floor_ms": 0.0002, "tpot_p50_ms": 2.0, "tpot_floor_ms": 0.002,
              "roofline_hardware": "H200", "name": "e1"}
    write_record(tmp_path / "cpu" / "0", ["prompt_len=64"], floors, job_config("e1", engine="hf"), gpu=None)
    write_record(tmp_path / "gpu" / "0", ["prompt_len=64"], {**floors, "ttft_floor_ms": 2.0, "tpot_floor_ms": 1.0},
                 job_config("e1"))
    jobs = load_jobs([tmp_path / "cpu", tmp_path / "gpu"]).set_index("label")
    assert math.isnan(jobs.loc["cpu", "ttft_floor_ms"]) and math.isnan(jobs.loc["cpu", "ttft_measured_over_floor"])
    assert "H200 peaks on a CPU run" in jobs.loc["cpu", "roofline_reason"]
    assert jobs.loc["gpu", "ttft_measured_over_floor"] == pytest.approx(2.5)
    build_report([tmp_path / "cpu", tmp_path / "gpu"], tmp_path / "out")
    section = (tmp_path / "out" / "report.md").read_text().split("## Roofline")[1].split("## ")[0]
    assert "NVIDIA H200" in section and "| cpu " not in section
    stored = json.loads((tmp_path / "cpu" / "0" / "summary.json").read_text())
    assert stored["ttft_floor_ms"] == 0.0002  # the record itself is untouched
