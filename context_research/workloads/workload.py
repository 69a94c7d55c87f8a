"""What a load run sends, whatever its source: requests in sending order, with trace arrival times
where the source has them, and the labels each request's record carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from context_research.requests import GenerationRequest, GenerationResult
from context_research.workloads.files import WorkloadFileError

# request.metadata[LABELS]: fields of the request's row in the records (session_id, turn, source_record)
LABELS = "labels"


@dataclass
class LoadWorkload:
    """`requests` in sending order (sessions: one per turn, holding the tokens that turn adds).
    `offsets_s`: each request's arrival after the first, in seconds, for sources with timestamps.
    `skipped`: records of the source left out (too long for the model, too short, failed)."""

    requests: list[GenerationRequest]
    offsets_s: np.ndarray | None = None
    skipped: int = 0


def load_request(request_id: str, prompt_token_ids: list[int], output_len: int, seed: int,
                 labels: dict[str, Any]) -> GenerationRequest:
    """A request of a file workload: token ids in, exactly `output_len` tokens out (`ignore_eos`,
    as the traces' own replay rules ask), `labels` copied to its result row."""
    return GenerationRequest(request_id=request_id, prompt_token_ids=list(prompt_token_ids),
                             max_new_tokens=int(output_len), seed=seed, ignore_eos=True,
                             metadata={LABELS: dict(labels)})


def labelled(result: GenerationResult, request: GenerationRequest) -> GenerationResult:
    """The result with its request's labels in its metadata (so they become columns of its row)."""
    result.metadata.update(request.metadata.get(LABELS, {}))
    return result


def fits(prompt_tokens: int, output_tokens: int, max_model_len: int) -> bool:
    """Whether a request's prompt and output fit the context limit."""
    return prompt_tokens + output_tokens <= max_model_len


def nonempty(loaded: LoadWorkload, path: Any) -> LoadWorkload:
    """The workload, unless its source's filters left no request to send."""
    if not loaded.requests:
        raise WorkloadFileError(path, f"no request left to send: the {loaded.skipped} records read were all skipped "
                                      "(no tokens, too short, or too long for max_model_len)")
    return loaded
