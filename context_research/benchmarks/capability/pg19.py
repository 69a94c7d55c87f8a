"""PG19 perplexity with a sliding window over local book texts.

Data: PG19's own layout, one plain-text file per book under `<data_dir>/<split>/<book id>.txt`; a
seeded subset of the books is chosen through `datasets`. Each book is tokenised without a chat
template and cut into windows of `context_len` tokens that advance by `stride`; a window scores
only the tokens no earlier window scored, with everything before them in the window as context
(the transformers perplexity recipe), so every token after a book's first is scored exactly once.
Perplexity = exp(total negative log-likelihood / scored tokens), per book and pooled over books.
The engine scores each window through `prompt_logprobs` (a prefill; see the ServingBackend contract).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from datasets import Dataset
from tqdm import tqdm

from context_research.benchmarks.base import BenchmarkOutcome, BenchmarkTask, Observer
from context_research.benchmarks.capability.budget import capability_outcome
from context_research.benchmarks.capability.subsets import seeded_subset
from context_research.requests import GenerationRequest
from context_research.serving.prompting import PromptEncoder

TASK = "pg19"


@dataclass
class Window:
    """A slice of one book: the tokens sent and the position of the first one it scores."""

    book_id: str
    index: int
    token_ids: list[int]
    first_scored: int

    def request(self) -> GenerationRequest:
        return GenerationRequest(request_id=f"{TASK}/{self.book_id}/w{self.index}", prompt_token_ids=self.token_ids,
                                 max_new_tokens=1, temperature=0.0,
                                 metadata={"task": TASK, "sample_id": self.book_id, "window": self.index})


@dataclass
class BookWindows:
    windows: list[Window]
    book_ids: list[str]

    @property
    def requests(self) -> list[GenerationRequest]:
        return [window.request() for window in self.windows]


def sliding_windows(book_id: str, ids: list[int], length: int, stride: int) -> list[Window]:
    """Windows of at most `length` tokens starting every `stride` (< `length`) tokens, until the book's end."""
    if not 1 <= stride < length:
        raise ValueError(f"stride {stride} must be from 1 to the window length - 1 ({length - 1})")
    windows: list[Window] = []
    scored_until = 0
    for begin in range(0, len(ids), stride):
        end = min(begin + length, len(ids))
        new = end - scored_until
        window = ids[begin:end]
        windows.append(Window(book_id, len(windows), window, first_scored=max(1, len(window) - new)))
        scored_until = end
        if end == len(ids):
            break
    return windows


def pooled_perplexity(samples: pd.DataFrame) -> float:
    """exp(total negative log-likelihood / scored tokens) over these windows."""
    return float(math.exp(samples["nll"].sum() / samples["scored_tokens"].sum()))


class PG19Task(BenchmarkTask):
    """BenchmarkTask `pg19`."""

    def __init__(self, config: Any, model: Any) -> None:
        super().__init__(config, model)
        self.data_dir = Path(config.data_dir)
        self.context_len = config.context_len
        self.stride = config.stride or config.context_len // 2
        self.num_samples = config.num_samples
        self.seed = config.seed
        self.max_doc_tokens = config.max_doc_tokens
        self.max_model_len = int(config.max_model_len or model.max_model_len)

    def load(self, split: str = "test") -> BookWindows:
        files = sorted((self.data_dir / split).glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"no PG19 books (*.txt) in {self.data_dir / split}")
        books = seeded_subset(Dataset.from_dict({"book_id": [f.stem for f in files], "path": [str(f) for f in files]}),
                              self.num_samples, self.seed)
        encoder = PromptEncoder(self.model)
        windows = []
        for book in books:
            ids = encoder.token_ids(Path(book["path"]).read_text(encoding="utf-8"))[:self.max_doc_tokens]
            if len(ids) > 1:
                windows.extend(sliding_windows(book["book_id"], ids, self.context_len, self.stride))
        if not windows:
            raise ValueError(f"the PG19 books chosen from {self.data_dir / split} hold no text to score")
        return BookWindows(windows, list(books["book_id"]))

    def evaluate(self, backend: Any, samples: BookWindows, observe: Observer) -> BenchmarkOutcome:
        rows = []
        for window in tqdm(samples.windows, desc=self.name, unit="window", leave=False):
            result = backend.prompt_logprobs(window.request())
            logprobs = result.metadata.pop("prompt_logprobs")[window.first_scored:]
            nll = -float(sum(logprobs))
            perplexity = math.exp(nll / len(logprobs))
            result.metadata.update(task=TASK, sample_id=window.book_id, window=window.index, nll=nll,
                                   scored_tokens=len(logprobs), score=perplexity)
            observe(result, "measure")
            rows.append({"task": TASK, "sample_id": window.book_id, "window": window.index, "score": perplexity,
                         "nll": nll, "scored_tokens": len(logprobs), "prompt_tokens": result.prompt_tokens,
                         "completion_tokens": result.completion_tokens, "ttft_ms": result.ttft_ms,
                         "e2e_ms": result.e2e_ms})
        frame = pd.DataFrame(rows)
        return capability_outcome(
            frame, pooled_perplexity, {TASK: samples.book_ids}, self.context_len, self.max_model_len,
            expected=len(samples.windows), score_name="perplexity (lower is better)", stride=self.stride,
            scored_tokens=int(frame["scored_tokens"].sum()) if len(frame) else 0,
            book_perplexity={book: pooled_perplexity(group) for book, group in frame.groupby("sample_id")})
