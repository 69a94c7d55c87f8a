"""What the HTTP stack costs: TTFT and TPOT over HTTP minus in process, per prompt length.

Latency jobs (E1) of an in-process engine and of a server running the same engine (vllm and
vllm_server, hf and transformers_server) are paired by model, prompt and output length. Each side's
figure is the median over its jobs of their p50; cost = HTTP - in process. `same_prompts` says both
sides sent the same requests (equal workload hashes: the same seeded token ids), `same_engine_args`
that the serving settings the two configs share are equal (`differing_args` lists the others), so a
row compares the HTTP stack and nothing else only where both are true.
"""

from __future__ import annotations

import pandas as pd

# a server engine -> the in-process engine it runs
RUNS_IN_PROCESS = {"vllm_server": "vllm", "transformers_server": "hf"}
# serving keys that name the component, not the engine's settings
NOT_SETTINGS = ("_target_", "engine")
KEYS = ("model", "prompt_len", "output_len")
COLUMNS = ("model", "prompt_len", "output_len", "in_process", "http", "ttft_p50_in_process_ms", "ttft_p50_http_ms",
           "ttft_http_cost_ms", "tpot_p50_in_process_ms", "tpot_p50_http_ms", "tpot_http_cost_ms", "jobs_in_process",
           "jobs_http", "same_prompts", "same_engine_args", "differing_args")


def _shared_settings_differ(in_process: pd.DataFrame, http: pd.DataFrame) -> list[str]:
    """Serving keys both sides' configs have whose values differ between any two of their jobs."""
    configs = [dict(job["config"].get("serving") or {}) for _, job in pd.concat([in_process, http]).iterrows()]
    shared = set.intersection(*(set(config) for config in configs)) - set(NOT_SETTINGS)
    return sorted(key for key in shared if len({repr(config[key]) for config in configs}) > 1)


def http_cost_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, prompt_len, output_len, in-process engine, server engine) with both sides."""
    needed = {"benchmark", "engine", "status", *KEYS, "ttft_p50_ms", "tpot_p50_ms", "workload_hash", "config"}
    if jobs.empty or not needed <= set(jobs.columns):
        return pd.DataFrame(columns=COLUMNS)
    latency = jobs[(jobs["benchmark"] == "latency") & (jobs["status"] == "completed")]
    rows = []
    for server, engine in RUNS_IN_PROCESS.items():
        http_jobs = latency[latency["engine"] == server]
        local_jobs = latency[latency["engine"] == engine]
        for key, http in http_jobs.groupby(list(KEYS)):
            local = local_jobs[(local_jobs[list(KEYS)] == pd.Series(key, index=list(KEYS))).all(axis=1)]
            if local.empty:
                continue
            differing = _shared_settings_differ(local, http)
            row = dict(zip(KEYS, key), in_process=engine, http=server, jobs_in_process=len(local), jobs_http=len(http),
                       same_prompts=set(local["workload_hash"]) == set(http["workload_hash"]) and
                       local["workload_hash"].nunique() == 1,
                       same_engine_args=not differing, differing_args=", ".join(differing))
            for metric in ("ttft", "tpot"):
                inside, over = local[f"{metric}_p50_ms"].median(), http[f"{metric}_p50_ms"].median()
                row.update({f"{metric}_p50_in_process_ms": inside, f"{metric}_p50_http_ms": over,
                            f"{metric}_http_cost_ms": over - inside})
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["model", "http", "prompt_len"], ignore_index=True)
