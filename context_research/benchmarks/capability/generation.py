"""Capability samples as requests: send each through the serving stack, score the reply, record it.

Every reply is reported to the job's observer with its task, sample id and score in the result
metadata, so requests.parquet holds one row per sample: score, prompt and output tokens, TTFT and
end-to-end latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd
from tqdm import tqdm

from context_research.benchmarks.base import Observer
from context_research.metrics.phases import MEASURE
from context_research.requests import GenerationRequest



@dataclass
class TaskPrompt:
    """One sample ready to send: prompt token ids, output budget and the references it is scored on."""

    task: str
    sample_id: str
    prompt_token_ids: list[int]
    max_new_tokens: int
    references: Any
    metadata: dict[str, Any] = field(default_factory=dict)  # scalars recorded with the request

    def request(self) -> GenerationRequest:
        return GenerationRequest(request_id=f"{self.task}/{self.sample_id}", prompt_token_ids=self.prompt_token_ids,
                                 max_new_tokens=self.max_new_tokens, temperature=0.0,
                                 metadata={"task": self.task, "sample_id": self.sample_id})


@dataclass
class TaskPrompts:
    """A task's loaded samples; `requests` lets the run record hash the workload."""

    prompts: list[TaskPrompt]

    @property
    def requests(self) -> list[GenerationRequest]:
        return [prompt.request() for prompt in self.prompts]

    def sample_ids(self) -> dict[str, list[str]]:
        ids: dict[str, list[str]] = {}
        for prompt in self.prompts:
            ids.setdefault(prompt.task, []).append(prompt.sample_id)
        return ids


def generate_and_score(backend: Any, prompts: list[TaskPrompt], observe: Observer,
                       score: Callable[[TaskPrompt, str], float], desc: str) -> pd.DataFrame:
    """Greedy-generate every prompt one at a time (so each latency is the sample's own) and score it.

    Returns one row per sample: task, sample_id, score, prompt/completion tokens, ttft_ms, e2e_ms, and
    the prediction with its references.
    """
    rows = []
    for prompt in tqdm(prompts, desc=desc, unit="sample", leave=False):
        result = backend.generate(prompt.request())
        value = score(prompt, result.text)
        result.metadata.update(prompt.metadata, task=prompt.task, sample_id=prompt.sample_id, score=value)
        observe(result, MEASURE)
        rows.append({"task": prompt.task, "sample_id": prompt.sample_id, "score": value,
                     "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                     "ttft_ms": result.ttft_ms,
                     "e2e_ms": result.e2e_ms,
                     "prediction": result.text, "references": prompt.references})
    return pd.DataFrame(rows)
