"""The config groups of the project's --help (conf/hydra/help/context_research.yaml): each group a
user chooses, its options as conf/ holds them now, the default marked, and for experiments the
first clause of each preset's opening comment."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

DESCRIPTION_CHARS = 72  # an experiment's description is cut to this many characters
WIDTH = 100  # help lines wrap at this width


def first_clause(comment: str) -> str:
    """'E1: latency scaling with prompt length at batch 1, aggregated: warm-up at ...' ->
    'latency scaling with prompt length at batch 1, aggregated'."""
    text = re.sub(r"^E\d+\w*:\s*", "", " ".join(comment.split()))
    clause = re.split(r"(?<=[a-z0-9)])[.:;]\s", text + " ", maxsplit=1)[0].rstrip(".:; ")
    return clause if len(clause) <= DESCRIPTION_CHARS else clause[:DESCRIPTION_CHARS - 1].rstrip(" ,") + "…"


def opening_comment(path: Path) -> str:
    """The comment lines a config file opens with (its `# @package` line left out)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def config_dirs() -> list[Path]:
    """The file config sources of the composed config (conf/ and any --config-dir)."""
    from hydra.core.hydra_config import HydraConfig

    sources = HydraConfig.get().runtime.config_sources
    return [Path(s.path) for s in sources if s.schema == "file" and s.path]


def help_groups(groups: Any) -> str:
    """One entry per group of `groups` (group -> what it chooses): its options, the default marked *."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    loader = GlobalHydra.instance().config_loader()
    choices = HydraConfig.get().runtime.choices
    entries = []
    for group, what in groups.items():
        options = sorted(loader.get_group_options(group))
        marked = [f"{o}*" if o == choices.get(group) else o for o in options]
        entry = [f"  {group}: {what}"]
        if group == "experiment":
            described = []
            for option in options:
                path = next((d / group / f"{option}.yaml" for d in config_dirs()
                             if (d / group / f"{option}.yaml").is_file()), None)
                described.append(f"      {option:<10} {first_clause(opening_comment(path)) if path else ''}")
            entry += described
        else:
            entry.append(textwrap.fill(", ".join(marked), WIDTH, initial_indent=" " * 6,
                                       subsequent_indent=" " * 6))
        entries.append("\n".join(entry))
    return "\n".join(entries) + "\n"
