"""Fixed random subsets of local data sets, through `datasets`: the same seed gives the same samples."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, load_dataset


def load_jsonl(path: str | Path, cache_dir: str | Path | None = None) -> Dataset:
    """One local JSONL file as a Dataset (nothing is downloaded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file {path}")
    return load_dataset("json", data_files=str(path), split="train",
                        cache_dir=str(cache_dir) if cache_dir else None)


def seeded_subset(dataset: Dataset, num_samples: int, seed: int) -> Dataset:
    """`num_samples` rows (all, if fewer) chosen by `shuffle(seed)`."""
    return dataset.shuffle(seed=seed).select(range(min(num_samples, len(dataset))))
