"""Capability benchmark schemas: LongBench v1, RULER and PG19 on fixed seeded subsets.

All three need the model's tokenizer and share `context_len` (the token budget, which the sweep axis
`prompt_len` feeds in the E4 preset), `num_samples` (per task) and `seed` (which samples).
`max_sequence_tokens` is the longest sequence a job sends, checked against model.max_model_len by
the cross-field rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List, Optional

from context_research.benchmarks.capability import longbench_spec, ruler_spec
from context_research.config.bounds import require_count, require_seed
from context_research.config.errors import require

# one task per LongBench category and per official metric (qa_f1, rouge, classification, count,
# retrieval, code_sim): the fixed small subset E4 runs
DEFAULT_LONGBENCH_TASKS = ["qasper", "hotpotqa", "gov_report", "trec", "passage_count", "passage_retrieval_en", "lcc"]


def _check_common(num_samples: int, seed: int, context_len: Optional[int], max_model_len: Optional[int]) -> None:
    require_count("num_samples", num_samples)
    require(max_model_len is None or max_model_len >= 1, "max_model_len", max_model_len, "null or an integer >= 1")
    require_seed("seed", seed)
    require(context_len is None or context_len >= 1, "context_len", context_len, "an integer >= 1")


@dataclass
class LongBenchConfig:
    """LongBench v1 tasks from local JSONL files, official prompts, truncation and metrics."""

    needs_tokenizer: ClassVar[bool] = True  # prompts are built and measured in the model's tokens
    _target_: str = "context_research.benchmarks.capability.longbench.LongBenchTask"
    name: str = "longbench"
    data_dir: str = "data/longbench"
    cache_dir: Optional[str] = None
    tasks: List[str] = field(default_factory=lambda: list(DEFAULT_LONGBENCH_TASKS))
    num_samples: int = 4
    seed: int = 0
    context_len: Optional[int] = None  # prompt budget in tokens; null = what max_model_len leaves
    max_model_len: Optional[int] = None  # the engine's limit where serving sets one; null = the model's

    def __post_init__(self) -> None:
        _check_common(self.num_samples, self.seed, self.context_len, self.max_model_len)
        require(len(self.tasks) > 0, "tasks", self.tasks, "at least one task")
        for task in self.tasks:
            try:
                longbench_spec.base_task(task)
            except KeyError:
                require(False, "tasks", task, "LongBench v1 tasks (a `_e` suffix for LongBench-E): "
                        + ", ".join(longbench_spec.TASKS))

    @property
    def max_sequence_tokens(self) -> Optional[int]:
        if self.context_len is None:
            return None  # the budget follows the model
        return self.context_len + max(longbench_spec.DATASET2MAXLEN[longbench_spec.base_task(t)] for t in self.tasks)


@dataclass
class RulerConfig:
    """RULER tasks synthesised to `context_len` tokens (prompt + tokens to generate)."""

    needs_tokenizer: ClassVar[bool] = True  # prompts are built and measured in the model's tokens
    _target_: str = "context_research.benchmarks.capability.ruler.RulerTask"
    name: str = "ruler"
    tasks: List[str] = field(default_factory=lambda: list(ruler_spec.TASKS))
    context_len: int = 4096
    num_samples: int = 4
    seed: int = 0
    essay_file: Optional[str] = None  # essay haystack (RULER's PaulGrahamEssays.json or a .txt)
    max_model_len: Optional[int] = None  # the engine's limit where serving sets one; null = the model's

    def __post_init__(self) -> None:
        _check_common(self.num_samples, self.seed, self.context_len, self.max_model_len)
        require(len(self.tasks) > 0, "tasks", self.tasks, "at least one task")
        for task in self.tasks:
            require(task in ruler_spec.TASKS, "tasks", task, "allowed: " + ", ".join(ruler_spec.TASKS))
        essay_tasks = [t for t in self.tasks if ruler_spec.needs_essay(t)]
        require(not essay_tasks or self.essay_file is not None, "essay_file", self.essay_file,
                f"a local essay file for {', '.join(essay_tasks)}")

    @property
    def max_sequence_tokens(self) -> int:
        return self.context_len


@dataclass
class PG19Config:
    """Sliding-window perplexity over local PG19 books (`<data_dir>/<split>/<id>.txt`)."""

    needs_tokenizer: ClassVar[bool] = True  # prompts are built and measured in the model's tokens
    _target_: str = "context_research.benchmarks.capability.pg19.PG19Task"
    name: str = "pg19"
    data_dir: str = "data/pg19"
    context_len: int = 4096  # window length in tokens
    stride: Optional[int] = None  # tokens between window starts; null = context_len / 2
    num_samples: int = 4  # books
    seed: int = 0
    max_doc_tokens: Optional[int] = None  # score only each book's first N tokens; null = whole books
    max_model_len: Optional[int] = None  # the engine's limit where serving sets one; null = the model's

    def __post_init__(self) -> None:
        _check_common(self.num_samples, self.seed, self.context_len, self.max_model_len)
        require(self.context_len >= 2, "context_len", self.context_len, "an integer >= 2")
        # windows must overlap by a token, or each window's first token would be scored without context
        require(self.stride is None or 1 <= self.stride < self.context_len, "stride", self.stride,
                f"null or an integer from 1 to context_len - 1 ({self.context_len - 1})")
        require(self.max_doc_tokens is None or self.max_doc_tokens >= 2, "max_doc_tokens", self.max_doc_tokens,
                "null or an integer >= 2")

    @property
    def max_sequence_tokens(self) -> int:
        return self.context_len  # a window is a prompt; the one token its prefill returns needs no position
