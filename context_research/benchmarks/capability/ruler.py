"""RULER (niah_single_1..3, niah_multikey_1..3, niah_multivalue, niah_multiquery, vt, cwe, fwe),
synthesised locally at a target length measured with the model's tokenizer and scored with
RULER's string_match_all.

The target (`context_len`) is RULER's max_seq_length: prompt tokens (chat template and answer
prefix included) plus the task's tokens to generate. A sample falls short of it by less than one
haystack unit (an essay word, a noise sentence, a distractor needle, a listed word): under 2% from
4K tokens up. Samples are deterministic per seed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from context_research.benchmarks.base import BenchmarkOutcome, BenchmarkTask, Observer
from context_research.benchmarks.capability.budget import capability_outcome
from context_research.benchmarks.capability.generation import TaskPrompt, TaskPrompts, generate_and_score
from context_research.benchmarks.capability.ruler_metrics import (postprocess_pred, sample_match_all,
                                                               string_match_all)
from context_research.benchmarks.capability.ruler_spec import needs_essay
from context_research.benchmarks.capability.ruler_synthesis import Rendered, TaskSynthesizer, read_essay_words
from context_research.serving.prompting import PromptEncoder


def synthesize(encoder: PromptEncoder, tasks: list[str], context_len: int, num_samples: int, seed: int,
               essay_file: str | None) -> list[TaskPrompt]:
    """`num_samples` prompts of every task, each filling `context_len` tokens."""
    essay_words = read_essay_words(essay_file) if any(needs_essay(t) for t in tasks) else None

    def measure(rendered: Rendered) -> int:
        return len(encoder.encode(rendered.text, chat=True, answer_prefix=rendered.answer_prefix))

    def count(text: str) -> int:
        return len(encoder.token_ids(text))

    prompts = []
    for task in tasks:
        synthesizer = TaskSynthesizer(task, context_len, seed, measure, count, essay_words)
        for index in range(num_samples):
            rendered = synthesizer.sample(index)
            ids = encoder.encode(rendered.text, chat=True, answer_prefix=rendered.answer_prefix)
            prompts.append(TaskPrompt(
                task=task, sample_id=f"{task}-{context_len}-{index}", prompt_token_ids=ids,
                max_new_tokens=synthesizer.tokens_to_generate, references=rendered.outputs,
                metadata={"context_len": context_len, "length": len(ids) + synthesizer.tokens_to_generate,
                          "needles": len(rendered.needles)}))
    return prompts


def official_score(samples: pd.DataFrame) -> float:
    """RULER's task score over these samples: string_match_all of the post-processed predictions."""
    return string_match_all([postprocess_pred(p) for p in samples["prediction"]], list(samples["references"]))


class RulerTask(BenchmarkTask):
    """BenchmarkTask `ruler` (config: RulerConfig)."""

    def __init__(self, config: Any, model: Any) -> None:
        super().__init__(config, model)
        self.tasks = list(config.tasks)
        self.context_len = config.context_len
        self.num_samples = config.num_samples
        self.seed = config.seed
        self.essay_file = config.essay_file
        self.max_model_len = int(config.max_model_len or model.max_model_len)

    def load(self, split: str = "test") -> TaskPrompts:
        """Synthesised samples (RULER has no splits: every seed is a fresh set)."""
        encoder = PromptEncoder(self.model, self.max_model_len)
        return TaskPrompts(synthesize(encoder, self.tasks, self.context_len, self.num_samples, self.seed,
                                      self.essay_file))

    def evaluate(self, backend: Any, samples: TaskPrompts, observe: Observer) -> BenchmarkOutcome:
        def score(prompt: TaskPrompt, text: str) -> float:
            return sample_match_all(text, prompt.references)

        frame = generate_and_score(backend, samples.prompts, observe, score, desc=self.name)
        return capability_outcome(frame, official_score, samples.sample_ids(), self.context_len, self.max_model_len,
                                  expected=len(samples.prompts))
