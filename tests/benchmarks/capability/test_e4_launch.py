"""E4 end to end on CPU through launch.py: LongBench, RULER and PG19 jobs on the tiny model with a
locally built tokenizer and local data files. Random weights score nothing meaningful; what is
checked is the pipeline: records, sample ids, per-sample scores and the quality-under-budget table."""

from pathlib import Path

import pandas as pd

from context_research.benchmarks.capability.ruler_spec import TASKS as RULER_TASKS
from context_research.benchmarks.capability.subsets import load_jsonl, seeded_subset
from context_research.config.capability import DEFAULT_LONGBENCH_TASKS
from tests.conftest import manifests, read_summary

BUDGET = 1024


def test_e4_runs_every_benchmark_and_records_samples(run_launch, tokenizer_dir, data_dir, tmp_path):
    # one torch thread: ~2,000 decode steps of a tiny model, which oversubscribed cores slow down many-fold
    process, root = run_launch("-m", "experiment=e4", "serving=hf", "model=tiny_qwen3",
                               f"model.tokenizer={tokenizer_dir}", f"paths.data_dir={data_dir}",
                               f"prompt_len={BUDGET}", "num_prompts=1", timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr[-3000:]
    records = manifests(root / "sweep")
    assert [m["status"] for m in records] == ["completed"] * 3
    jobs = {}
    for manifest in records:
        job = Path(manifest["_dir"])
        summary = read_summary(job)
        jobs[summary["benchmark"]] = (summary, pd.read_parquet(job / "requests.parquet"), manifest)
    assert set(jobs) == {"longbench", "ruler", "pg19"}
    for summary, requests, manifest in jobs.values():
        assert summary["passed"] and all(summary["checks"].values()) and summary["context_len"] == BUDGET
        assert manifest["workload_hash"]
        assert summary["quality_vs_budget"][-1]["level"] == "all"
        assert summary["quality_vs_budget"][-1]["n"] == len(requests) == summary["n_requests"]
        recorded = requests.groupby("task")["sample_id"].apply(list).to_dict()
        assert recorded == summary["sample_ids"] or summary["benchmark"] == "pg19"
        assert requests["score"].notna().all()

    summary, requests, _ = jobs["longbench"]
    assert sorted(summary["task_scores"]) == sorted(DEFAULT_LONGBENCH_TASKS)
    for task in DEFAULT_LONGBENCH_TASKS:  # the seeded subset, as `datasets` shuffles it
        expected = seeded_subset(load_jsonl(data_dir / "longbench" / f"{task}.jsonl", tmp_path), 1, 0)["_id"]
        assert summary["sample_ids"][task] == expected
    assert requests["score"].between(0, 1).all()
    assert (requests["completion_tokens"] <= requests["task"].map({"gov_report": 512}).fillna(128)).all()

    summary, requests, _ = jobs["ruler"]
    assert sorted(summary["task_scores"]) == sorted(RULER_TASKS)
    # prompt + tokens to generate; at 1K one haystack unit (a ~70-token uuid needle) exceeds 2%
    assert requests["length"].between(0.9 * BUDGET, BUDGET).all()

    summary, requests, _ = jobs["pg19"]
    assert summary["score"] == summary["task_scores"]["pg19"] > 1  # a perplexity
    assert set(requests["sample_id"]) == set(summary["sample_ids"]["pg19"]) and len(summary["sample_ids"]["pg19"]) == 1
    assert (requests["prompt_tokens"] <= BUDGET).all()
