"""A load workload from its config (`LoadWorkloadConfig`): synthetic requests, a text data set
tokenised with the model's tokenizer, a trace rebuilt as token ids, or multi-turn sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from context_research.serving.prompting import PromptEncoder
from context_research.workloads.datasets import jsonl_requests, sharegpt_requests
from context_research.workloads.sessions import sharegpt_sessions
from context_research.workloads.synthetic import synthetic_requests, token_id_range
from context_research.workloads.traces import azure_requests, burstgpt_requests, mooncake_requests
from context_research.workloads.workload import LoadWorkload


def load_workload(workload: Any, model: Any, max_model_len: int, cache_dir: str | Path | None = None,
                  sessions: bool = False) -> LoadWorkload:
    """The requests `workload` describes for `model`; records that do not fit `max_model_len` are
    skipped. `sessions`: ShareGPT conversations as multi-turn sessions (their turns) instead of
    single-turn requests. A bad file raises `WorkloadFileError` (one line) before any engine starts."""
    id_range = token_id_range(model.config_json)
    source = workload.source
    if source == "synthetic":
        return LoadWorkload(synthetic_requests(workload, id_range))
    if source == "mooncake":
        return mooncake_requests(workload, id_range, max_model_len, cache_dir)
    if source == "azure":
        return azure_requests(workload, id_range, max_model_len)
    if source == "burstgpt":
        return burstgpt_requests(workload, id_range, max_model_len)
    encoder = PromptEncoder(model, max_model_len)
    if source == "sharegpt":
        build = sharegpt_sessions if sessions else sharegpt_requests
        return build(workload, encoder, max_model_len, cache_dir)
    if source == "jsonl":
        return jsonl_requests(workload, encoder, max_model_len, cache_dir)
    raise ValueError(f"source={source!r}: allowed: synthetic, sharegpt, jsonl, mooncake, azure, burstgpt")
