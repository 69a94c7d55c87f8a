"""Job directories written by hand, for what no CPU engine produces yet (goodput sweeps,
disaggregated KV transfer, memory decomposition, capability scores): the same files and fields a
run record has, so the report reads them like any other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from context_research.metrics.schema import LatencySection, Summary

# a real GPU run: E8's trace and sessions jobs on one H200 (tests/fixtures/e8_h200/README.md)
E8_H200 = Path(__file__).resolve().parents[1] / "fixtures" / "e8_h200"
TRACE_JOB, SESSIONS_JOB = (f"{n}_e8_workload={part},model.load_format=dummy,model=qwen3_8b,serving=vllm_server"
                           for n, part in enumerate(("trace", "sessions")))

# prompt lengths of the two E1 multiruns the tests run (conftest.run_folders): B doubles A
A_LENGTHS, B_LENGTHS = (384, 768), (768, 1536)

def write_record(job_dir: Path, overrides: list[str], summary: dict[str, Any] | None, config: dict[str, Any],
                 status: str = "completed", error: str | None = None, requests: pd.DataFrame | None = None,
                 gpu: str | None = "NVIDIA H200") -> Path:
    """A job directory as the run record writes it (manifest, Hydra's config and overrides, summary, requests)."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir.parent / "multirun.yaml").write_text("hydra: {}\n")
    (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    manifest = {"run_id": f"run-{job_dir.name}", "status": status, "error": error, "name": config.get("name"),
                "started": "2026-01-01T00:00:00.000+00:00", "ended": "2026-01-01T00:00:10.000+00:00",
                "overrides": overrides, "seed": config.get("seed", 0),
                "gpu": {"available": True, "gpus": [{"index": 0, "name": gpu}]} if gpu else {"available": False},
                "engines": {"aggregated": {"engine": config.get("serving", {}).get("engine")}}}
    (job_dir / "manifest.json").write_text(json.dumps(manifest))
    if summary is not None:
        (job_dir / "summary.json").write_text(json.dumps(summary))
        if requests is None and status == "completed":  # a completed record holds the requests it counts
            requests = counted_requests(summary)
    if requests is not None:
        requests.to_parquet(job_dir / "requests.parquet", index=False)
    return job_dir


def counted_requests(summary: dict[str, Any]) -> pd.DataFrame | None:
    """The rows of requests.parquet a summary counts (measured, warm-up, cool-down), by phase."""
    latency = Summary.from_json(summary).get(LatencySection)
    if latency is None:
        return None
    phases = {"measure": latency.n_requests, "warmup": latency.n_warmup, "cooldown": latency.n_cooldown}
    rows = [phase for phase, count in phases.items() for _ in range(count or 0)]
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(len(rows))], "phase": rows, "ok": True})


def job_config(name: str, engine: str = "vllm", scheduler: str = "aggregated", **axes: Any) -> dict[str, Any]:
    """A resolved job config with the parts the report reads."""
    return {"name": name, "seed": 0, **axes, "model": {"name": "qwen3_8b", "max_model_len": 40960},
            "serving": {"_target_": "context_research.serving.backends.vllm.VLLMBackend", "engine": engine,
                        "gpu_memory_utilization": 0.9},
            "scheduler": {"name": scheduler}, "benchmark": {"name": "throughput"}}
