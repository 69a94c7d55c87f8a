"""How jobs are told apart and matched: their Hydra overrides.

A job's identity in a sweep is its override list (`prompt_len=1024 seed=1 ...`). Hydra's own
keys (`hydra.*`, `hydra/...`) and the `paths.*` keys (where files go, not what a job measures)
never count. Repeats are jobs whose overrides differ only by a
repeat key (`seed`, `repeat`). Two folders are aligned for an A/B by the keys they share with the
same values; the keys whose values differ between the folders are the treatment, matched by rank
(the smallest value on one side with the smallest on the other, and so on).
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser

REPEAT_KEYS = ("seed", "repeat")
IGNORED_ROOTS = ("hydra", "paths")


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """Override strings as {key: value}, read by Hydra's override parser (`+a.b=1` and `~a` name `a.b`
    and `a`); values kept as typed; Hydra's and the paths keys left out."""
    parser = OverridesParser.create()
    parsed = {}
    for override in parser.parse_overrides(list(overrides)):
        key = override.key_or_group
        if key.split(".", 1)[0].split("/", 1)[0] in IGNORED_ROOTS:
            continue
        parsed[key] = override.input_line.split("=", 1)[1] if "=" in override.input_line else ""
    return parsed


def is_repeat_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in REPEAT_KEYS


def sortable(value: str | None) -> tuple:
    """Numbers sort by value, everything else by text, missing values first."""
    if value is None:
        return (0, 0.0, "")
    try:
        return (1, float(value), "")
    except ValueError:
        return (2, 0.0, value)


def repeat_group(overrides: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The overrides that define a sweep point, repeat keys left out."""
    return tuple(sorted((k, v) for k, v in overrides.items() if not is_repeat_key(k)))


def treatment_keys(a: pd.Series, b: pd.Series) -> list[str]:
    """Override keys whose set of values differs between two folders (each Series holds dicts)."""
    keys = {k for overrides in [*a, *b] for k in overrides}

    def values(side: pd.Series, key: str) -> set:
        return {overrides.get(key) for overrides in side}

    return sorted(k for k in keys if values(a, k) != values(b, k))


def alignment_keys(side: pd.Series, treatment: list[str]) -> list[tuple]:
    """Per job: (shared overrides, rank of its treatment values within them, occurrence)."""
    shared = [tuple(sorted((k, v) for k, v in o.items() if k not in treatment)) for o in side]
    treated = [tuple(sortable(o.get(k)) for k in treatment) for o in side]
    frame = pd.DataFrame({"shared": shared, "treated": treated, "position": range(len(side))})
    ranks = {}
    for _, group in frame.groupby("shared", sort=False):
        levels = sorted(set(group["treated"]))
        for _, row in group.iterrows():
            ranks[row["position"]] = levels.index(row["treated"])
    frame["rank"] = [ranks[i] for i in frame["position"]]
    frame["occurrence"] = frame.groupby(["shared", "rank"]).cumcount()
    return list(zip(frame["shared"], frame["rank"], frame["occurrence"]))


def align(a: pd.DataFrame, b: pd.DataFrame, overrides_column: str = "override_map") -> tuple[pd.DataFrame, list[str]]:
    """Pairs of jobs (index in `a`, index in `b`) matched by override keys, and the treatment keys.

    Jobs left without a partner are returned with the other side's index missing (NaN).
    """
    treatment = treatment_keys(a[overrides_column], b[overrides_column])
    keys_a = pd.DataFrame({"key": alignment_keys(a[overrides_column], treatment), "a": a.index})
    keys_b = pd.DataFrame({"key": alignment_keys(b[overrides_column], treatment), "b": b.index})
    pairs = keys_a.merge(keys_b, on="key", how="outer").drop(columns="key")
    return pairs, treatment
