"""A/B: alignment by override keys and bootstrap intervals over requests."""

import numpy as np
import pandas as pd

from context_research.report.alignment import align, parse_overrides, treatment_keys
from context_research.report.compare import bootstrap_difference, compare_folders
from context_research.report.loader import load_jobs


def test_run_against_itself_shows_no_significant_difference(run_folders):
    jobs = load_jobs([run_folders.a, run_folders.a])
    pairs, differences = compare_folders(jobs, "a", "a#2")
    assert pairs["matched"].all() and len(pairs) == 4
    assert (pairs["a_job"] == pairs["b_job"]).all()
    assert set(differences["metric"]) >= {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"}
    assert not differences["significant"].any()
    assert (differences["diff"] == 0).all()


def test_doubled_prompt_length_shows_a_significant_ttft_increase(run_folders):
    jobs = load_jobs([run_folders.a, run_folders.b])
    pairs, differences = compare_folders(jobs, "a", "b")
    assert pairs["treatment"].iloc[0] == "prompt_len"
    assert pairs["matched"].all() and len(pairs) == 4
    for _, pair in pairs.iterrows():  # each A job meets the B job at twice its length, same seed
        a, b = parse_overrides(pair["a_overrides"].split()), parse_overrides(pair["b_overrides"].split())
        assert int(b["prompt_len"]) == 2 * int(a["prompt_len"]) and a["seed"] == b["seed"]
    ttft = differences[differences["metric"] == "ttft_ms"]
    assert len(ttft) == 4
    assert ttft["significant"].all() and (ttft["ci_low"] > 0).all(), ttft.to_string()


def frame(*overrides: dict) -> pd.DataFrame:
    return pd.DataFrame({"override_map": list(overrides)})


def test_treatment_keys_are_those_whose_values_differ():
    a = frame({"prompt_len": "1", "seed": "0"}, {"prompt_len": "2", "seed": "0"})
    b = frame({"prompt_len": "2", "seed": "0"}, {"prompt_len": "4", "seed": "0"}, {"serving": "vllm"})
    assert treatment_keys(a["override_map"], b["override_map"]) == ["prompt_len", "seed", "serving"]


def test_alignment_matches_shared_keys_and_treatment_by_rank():
    a = frame({"prompt_len": "128", "seed": "0"}, {"prompt_len": "256", "seed": "0"},
              {"prompt_len": "128", "seed": "1"}, {"prompt_len": "256", "seed": "1"})
    b = frame({"prompt_len": "512", "seed": "1"}, {"prompt_len": "256", "seed": "1"},
              {"prompt_len": "256", "seed": "0"}, {"prompt_len": "512", "seed": "0"}, {"prompt_len": "1024", "seed": "0"})
    pairs, treatment = align(a, b)
    assert treatment == ["prompt_len"]
    matched = {(a.loc[int(p.a), "override_map"]["prompt_len"], a.loc[int(p.a), "override_map"]["seed"]):
               b.loc[int(p.b), "override_map"]["prompt_len"] for p in pairs.dropna().itertuples()}
    assert matched == {("128", "0"): "256", ("256", "0"): "512", ("128", "1"): "256", ("256", "1"): "512"}
    unmatched = pairs[pairs["a"].isna()]
    assert [b.loc[int(i), "override_map"]["prompt_len"] for i in unmatched["b"]] == ["1024"]


def test_bootstrap_interval_cases():
    rng = np.random.default_rng(1)
    a = rng.normal(100, 5, 40)
    shifted = bootstrap_difference(a, a + 20, "mean")
    assert shifted["diff"] == np.float64(20) or abs(shifted["diff"] - 20) < 1e-9
    assert shifted["significant"] and shifted["ci_low"] > 0
    same = bootstrap_difference(a, a.copy())
    assert not same["significant"] and same["ci_low"] < 0 < same["ci_high"]
    constant = bootstrap_difference(np.zeros(5), np.zeros(5))
    assert constant["ci_low"] == constant["ci_high"] == 0 and not constant["significant"]
    tiny = bootstrap_difference(np.array([1.0]), np.array([2.0, 3.0]))
    assert np.isnan(tiny["ci_low"]) and not tiny["significant"]
