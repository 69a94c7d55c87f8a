"""Repeat variance across seeds: CV of the TTFT and TPOT p50, flagged above 5%."""

import pytest
from tests.report.report_records import job_config, write_record

from context_research.report.loader import load_jobs
from context_research.report.repeats import repeat_variance


def test_cv_across_seeds_matches_the_summaries(run_folders):
    jobs = load_jobs([run_folders.a, run_folders.a])  # the same folder twice counts each job once
    table = repeat_variance(jobs)
    assert len(table) == 2 and (table["n_repeats"] == 2).all()
    for _, row in table.iterrows():
        length = row["point"].split("prompt_len=")[1].split()[0]
        values = jobs.drop_duplicates("job_dir").query(f"prompt_len == {length}")["ttft_p50_ms"]
        assert row["ttft_p50_ms_cv"] == pytest.approx(values.std(ddof=1) / values.mean())
        assert row["above_limit"] == (row["ttft_p50_ms_cv"] > 0.05 or row["tpot_p50_ms_cv"] > 0.05)


def test_flag_only_above_five_percent(tmp_path):
    for seed, ttft in enumerate((100.0, 101.0, 99.0)):  # cv 1%
        write_record(tmp_path / "s" / f"{seed}", ["prompt_len=1024", f"seed={seed}"],
                     {"name": "e1", "ttft_p50_ms": ttft, "tpot_p50_ms": 10.0}, job_config("e1", prompt_len=1024))
    for seed, ttft in enumerate((100.0, 120.0)):  # cv 14%
        write_record(tmp_path / "s" / f"long{seed}", ["prompt_len=4096", f"seed={seed}"],
                     {"name": "e1", "ttft_p50_ms": ttft, "tpot_p50_ms": 10.0}, job_config("e1", prompt_len=4096))
    write_record(tmp_path / "s" / "single", ["prompt_len=8192"], {"name": "e1", "ttft_p50_ms": 1.0, "tpot_p50_ms": 1.0},
                 job_config("e1", prompt_len=8192))
    table = repeat_variance(load_jobs([tmp_path / "s"])).set_index("point")
    assert table.loc["prompt_len=1024", "ttft_p50_ms_cv"] == pytest.approx(0.01)
    assert not table.loc["prompt_len=1024", "above_limit"]
    assert table.loc["prompt_len=4096", "above_limit"]
    assert "prompt_len=8192" not in table.index  # one job: no variance to report
