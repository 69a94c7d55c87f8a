"""LongBench v1 on a fixed random subset of each task, with the official prompts, generation lengths,
truncation and metrics (THUDM/LongBench pred.py and eval.py).

Data: one JSONL file per task in the official format (`<data_dir>/<task>.jsonl`, fields input,
context, answers, length, dataset, language, all_classes, _id), loaded through `datasets`.
Prompts longer than the budget are truncated in the middle, as pred.py does; the budget is
`context_len` tokens, or (max_model_len - the task's generation length) when unset, and
is shrunk further if the chat template would push prompt + generation past max_model_len.
Decoding is greedy. pred.py also stops samsum at its first newline; eval.py scores only the first
line of samsum (and trec, triviaqa, lsht) predictions, so the score is the same without the stop.

Scores are eval.py's. A task's score is its `scorer` over the subset, in the order the samples ran.
eval.py keeps the `all_classes` of the last line it reads and scores every prediction of the file
with it; here that line is the data file's last row, whatever the subset, so each sample scores
what it scores in a run over the whole file. A LongBench-E task (`<task>_e`) also reports eval.py
--e's figures, its score per `length` group (0-4k, 4-8k, 8k+), in `length_group_scores`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from context_research.benchmarks.base import BenchmarkOutcome, BenchmarkTask, Observer
from context_research.benchmarks.capability.budget import capability_outcome
from context_research.benchmarks.capability.generation import TaskPrompt, TaskPrompts, generate_and_score
from context_research.benchmarks.capability.longbench_metrics import length_group_scores, score_sample, task_score
from context_research.benchmarks.capability.longbench_spec import (DATASET2MAXLEN, DATASET2PROMPT,
                                                                   LONGBENCH_E_SUFFIX, NO_CHAT_TEMPLATE, base_task)
from context_research.benchmarks.capability.subsets import load_jsonl, seeded_subset
from context_research.serving.prompting import PromptEncoder


def build_prompt(encoder: PromptEncoder, task: str, row: dict[str, Any], context_len: int | None,
                 all_classes: list[str] | None) -> TaskPrompt:
    """One JSONL row as a prompt: official template, middle truncation, chat template except on the
    tasks pred.py sends raw (few-shot and code completion). `all_classes` are the classes its
    prediction is scored with (those of the file's last row)."""
    spec = base_task(task)
    if task.endswith(LONGBENCH_E_SUFFIX) and not isinstance(row.get("length"), int):
        raise ValueError(f"{task} {row['_id']}: a LongBench-E row needs an integer `length` (eval.py groups by it), "
                         f"got {row.get('length')!r}")
    text = DATASET2PROMPT[spec].format(**row)
    max_new_tokens = DATASET2MAXLEN[spec]
    budget = context_len if context_len is not None else encoder.max_model_len - max_new_tokens
    chat = spec not in NO_CHAT_TEMPLATE
    while True:
        truncated = encoder.middle_truncate(text, budget)
        ids = encoder.encode(truncated, chat=chat)
        excess = len(ids) + max_new_tokens - encoder.max_model_len
        if excess <= 0:
            break
        budget -= excess
        if budget < 2:
            raise ValueError(f"{task} {row['_id']}: the chat template alone leaves no room for a prompt "
                             f"within max_model_len={encoder.max_model_len}")
    return TaskPrompt(task=task, sample_id=str(row["_id"]), prompt_token_ids=ids, max_new_tokens=max_new_tokens,
                      references={"answers": list(row["answers"]), "all_classes": all_classes},
                      metadata={"length": row.get("length"), "language": row.get("language"),
                                "truncated": truncated != text, "chat_template": chat and encoder.has_chat_template})


def score_prediction(prompt: TaskPrompt, prediction: str) -> float:
    """One sample's score in [0, 1] (eval.py's per-prediction score)."""
    return score_sample(prompt.task, prediction, prompt.references["answers"], prompt.references["all_classes"])


def official_task_score(samples: pd.DataFrame) -> float:
    """eval.py's score of these scored samples, taken in the order they ran."""
    return task_score(samples["score"])


def longbench_e_scores(samples: pd.DataFrame, prompts: list[TaskPrompt]) -> dict[str, dict[str, float]]:
    """eval.py --e's score per length group of every LongBench-E task among the scored samples."""
    lengths = {(prompt.task, prompt.sample_id): prompt.metadata["length"] for prompt in prompts}
    return {task: length_group_scores(group["score"], [lengths[task, sample] for sample in group["sample_id"]])
            for task, group in samples.groupby("task", sort=True) if task.endswith(LONGBENCH_E_SUFFIX)}


class LongBenchTask(BenchmarkTask):
    """BenchmarkTask `longbench` (config: LongBenchConfig)."""

    def __init__(self, config: Any, model: Any) -> None:
        super().__init__(config, model)
        self.data_dir = Path(config.data_dir)
        self.tasks = list(config.tasks)
        self.num_samples = config.num_samples
        self.seed = config.seed
        self.context_len = config.context_len
        self.cache_dir = Path(config.cache_dir) / "datasets" if config.cache_dir else None
        self.max_model_len = int(config.max_model_len or model.max_model_len)

    def load(self, split: str = "test") -> TaskPrompts:
        """The subset of every task (LongBench ships only a test split: `split` names nothing else)."""
        encoder = PromptEncoder(self.model, self.max_model_len)
        prompts = []
        for task in self.tasks:
            rows = load_jsonl(self.data_dir / f"{task}.jsonl", self.cache_dir)
            all_classes = rows[len(rows) - 1]["all_classes"]  # what eval.py scores the whole file with
            prompts.extend(build_prompt(encoder, task, row, self.context_len, all_classes)
                           for row in seeded_subset(rows, self.num_samples, self.seed))
        return TaskPrompts(prompts)

    def evaluate(self, backend: Any, samples: TaskPrompts, observe: Observer) -> BenchmarkOutcome:
        frame = generate_and_score(backend, samples.prompts, observe, score_prediction, desc=self.name)
        return capability_outcome(frame, official_task_score, samples.sample_ids(), self.context_len,
                                  self.max_model_len, expected=len(samples.prompts),
                                  length_group_scores=longbench_e_scores(frame, samples.prompts))
