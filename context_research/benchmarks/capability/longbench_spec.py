"""LongBench v1's per-task settings as the official repository ships them (THUDM/LongBench main; the
v1 files sit in LongBench/config/ since LongBench v2, in config/ before): the prompt templates
(dataset2prompt.json) and generation lengths (dataset2maxlen.json), copied verbatim into
longbench_config/, and the tasks pred.py leaves the chat template off. Verbatim includes narrativeqa's
"asconcisely" (twice): the published scores were made with it, and its fix (pull request #76) is unmerged.

Data only (no torch, no scorer packages): the config schemas import it to validate task names.
"""

from __future__ import annotations

import json
from pathlib import Path

SPEC_DIR = Path(__file__).with_name("longbench_config")
DATASET2PROMPT: dict[str, str] = json.loads((SPEC_DIR / "dataset2prompt.json").read_text(encoding="utf-8"))
DATASET2MAXLEN: dict[str, int] = json.loads((SPEC_DIR / "dataset2maxlen.json").read_text(encoding="utf-8"))
TASKS: tuple[str, ...] = tuple(DATASET2PROMPT)
# pred.py: "chat models are better off without build prompts on these tasks"
NO_CHAT_TEMPLATE = frozenset({"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"})
# eval.py scores only the first line of the prediction on these tasks (few-shot formats)
FIRST_LINE_TASKS = frozenset({"trec", "triviaqa", "samsum", "lsht"})
LONGBENCH_E_SUFFIX = "_e"


def base_task(name: str) -> str:
    """The v1 task of a data file stem: LongBench-E files (`qasper_e`) use their task's settings."""
    stem = name[: -len(LONGBENCH_E_SUFFIX)] if name.endswith(LONGBENCH_E_SUFFIX) else name
    if stem not in DATASET2PROMPT:
        raise KeyError(f"unknown LongBench task {name!r}; known: {', '.join(TASKS)}")
    return stem
