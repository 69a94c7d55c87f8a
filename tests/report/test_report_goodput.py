"""DistServe goodput: the highest load with SLO attainment >= 90%."""

import pandas as pd
import pytest
from tests.report.report_records import job_config, write_record

from context_research.report.goodput import attainment_by_load, distserve_goodput
from context_research.report.loader import load_jobs


def test_highest_concurrency_meeting_the_target(tmp_path):
    attainment = {1: (1.0, 1.0), 2: (0.96, 0.94), 4: (0.95, 0.87), 8: (0.5, 0.4), 16: (0.95, 0.95)}
    for concurrency, per_seed in attainment.items():
        for seed, value in enumerate(per_seed):
            write_record(tmp_path / "e2" / f"c{concurrency}s{seed}", ["experiment=e2", f"concurrency={concurrency}",
                                                                      f"seed={seed}", "prompt_len=1024"],
                         {"name": "e2", "slo_attainment": value, "req_s": 2.0 * concurrency},
                         job_config("e2", concurrency=concurrency, prompt_len=1024))
    jobs = load_jobs([tmp_path / "e2"])
    by_load = attainment_by_load(jobs)
    assert by_load["load"].tolist() == ["1", "2", "4", "8", "16"]
    assert by_load.set_index("load").loc["4", "slo_attainment"] == pytest.approx(0.91)
    goodput = distserve_goodput(jobs)
    assert len(goodput) == 1
    assert goodput["load_key"].iloc[0] == "concurrency"
    assert goodput["distserve_goodput"].iloc[0] == 16  # the highest load that meets it, even past a dip
    assert goodput["req_s_at_goodput"].iloc[0] == 32


def test_attainment_from_requests_and_config_slos(tmp_path):
    def requests(ttft):
        return pd.DataFrame({"phase": ["warmup"] + ["measure"] * len(ttft), "ok": [True] * (len(ttft) + 1),
                             "ttft_ms": [9999.0, *ttft], "tpot_ms": [1.0] * (len(ttft) + 1),
                             "queue_wait_ms": [0.0] * (len(ttft) + 1)})

    for rate, ttft in ((1, [10, 20, 30, 40]), (2, [10, 20, 300, 400]), (4, [300] * 4)):
        config = job_config("e2", request_rate=rate)
        config["benchmark"]["slo"] = {"ttft_ms": 50.0, "tpot_ms": 5.0, "e2e_ms": None}
        write_record(tmp_path / "s" / f"r{rate}", [f"request_rate={rate}"], {"name": "e2"}, config,
                     requests=requests(ttft))
    by_load = attainment_by_load(load_jobs([tmp_path / "s"])).set_index("load")
    assert by_load["slo_attainment"].to_dict() == {"1": 1.0, "2": 0.5, "4": 0.0}
    assert distserve_goodput(load_jobs([tmp_path / "s"]))["distserve_goodput"].iloc[0] == 1


def test_nothing_without_a_load_sweep(run_folders):
    assert distserve_goodput(load_jobs([run_folders.a])).empty
