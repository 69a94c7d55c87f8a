"""Reading workload data files with one-line errors that name the file, the record and the field.

JSON and JSONL files go through `datasets` (`load_dataset("json", data_files=...)`, local only, as
the capability tasks read theirs), CSV files through pandas. Records are numbered from 1 in file
order (a JSONL file's blank lines are not records, nor is a CSV file's header). Every problem is a
`WorkloadFileError`, raised while the workload is built, before any engine starts:

    data/trace.jsonl: record 3: hash_ids: expected a list of integers, got 'abc'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd


class WorkloadFileError(ValueError):
    """A data file that is not in the format its source reads: `path: record N: field: problem`."""

    def __init__(self, path: str | Path, problem: str, record: int | None = None, field: str | None = None) -> None:
        parts = [str(path)] + ([f"record {record}"] if record is not None else []) + ([field] if field else [])
        super().__init__(": ".join(parts + [problem]))


def _integral(value: Any) -> bool:
    """An integer, or a float with an integer value (a JSON column with one float reads as floats)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())


@dataclass
class Record:
    """One record of a data file, whose fields are read with one-line errors."""

    path: Path
    number: int
    values: Mapping[str, Any]

    def error(self, field: str, problem: str) -> WorkloadFileError:
        return WorkloadFileError(self.path, problem, self.number, field)

    def get(self, field: str) -> Any:
        """The field's value; None when the record lacks it (or holds null)."""
        return self.values.get(field) if isinstance(self.values, Mapping) else None

    def integer(self, field: str, minimum: int = 0) -> int:
        value = self.get(field)
        if value is None:
            raise self.error(field, "missing")
        if not _integral(value) or value < minimum:
            raise self.error(field, f"expected an integer >= {minimum}, got {value!r}")
        return int(value)

    def real(self, field: str, minimum: float = 0.0) -> float:
        value = self.get(field)
        if value is None:
            raise self.error(field, "missing")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
                or value < minimum:
            raise self.error(field, f"expected a number >= {minimum:g}, got {value!r}")
        return float(value)

    def text(self, field: str) -> str:
        value = self.get(field)
        if value is None:
            raise self.error(field, "missing")
        if not isinstance(value, str) or not value:
            raise self.error(field, f"expected a non-empty string, got {value!r}")
        return value

    def integers(self, field: str) -> list[int]:
        value = self.get(field)
        if value is None:
            raise self.error(field, "missing")
        if not isinstance(value, list) or not all(_integral(v) and v >= 0 for v in value):
            raise self.error(field, f"expected a list of integers, got {shorten(value)}")
        return [int(v) for v in value]


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def shorten(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _raw_json_records(path: Path) -> Iterator[Any]:
    """The records of a JSON list or a JSONL file, parsed with `json` (to find a broken record)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            yield from json.loads(text)
        except json.JSONDecodeError as error:
            raise WorkloadFileError(path, f"not valid JSON: {error}") from None
        return
    lines = (line for line in text.splitlines() if line.strip())
    for number, line in enumerate(lines, 1):
        try:
            yield json.loads(line)
        except json.JSONDecodeError as error:
            raise WorkloadFileError(path, f"not valid JSON: {error.msg}", number) from None


def json_records(path: str | Path, cache_dir: str | Path | None = None) -> list[Record]:
    """Every record of a local JSON list or JSONL file, read through `datasets`. Where `datasets`
    cannot read the file, the broken record is found with `json` and named."""
    from context_research.benchmarks.capability.subsets import load_jsonl  # imports datasets

    path = Path(path)
    if not path.is_file():
        raise WorkloadFileError(path, "no such file")
    try:
        rows = load_jsonl(path, cache_dir)
    except Exception as error:  # datasets wraps the parser's error: find the record that broke it
        if sum(1 for _ in _raw_json_records(path)) == 0:  # raises at a broken record
            raise WorkloadFileError(path, "no records") from None
        raise WorkloadFileError(path, f"datasets cannot read it: {_first_line(error.__cause__ or error)}") from None
    if not len(rows):
        raise WorkloadFileError(path, "no records")
    return [Record(path, number, row) for number, row in enumerate(rows, 1)]


def csv_columns(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """The named columns of a CSV file with a header row (other columns are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise WorkloadFileError(path, "no such file")
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise WorkloadFileError(path, f"not a CSV file: {str(error).splitlines()[0]}") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise WorkloadFileError(path, f"no column {', '.join(map(repr, missing))} (the header has "
                                      f"{', '.join(map(str, frame.columns))})")
    if not len(frame):
        raise WorkloadFileError(path, "no records (only a header)")
    return frame[list(columns)]


def integer_column(frame: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    """A CSV column of integers >= 0; the first bad cell is named by its record number."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        first = int(np.argmax(bad))
        raise WorkloadFileError(path, f"expected an integer >= 0, got {frame[column].iloc[first]!r}", first + 1,
                                column)
    return values.astype(np.int64)


def seconds_column(frame: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    """A CSV column of times as seconds: numbers as they are, date-times (ISO 8601) as seconds
    since the epoch. The first cell that is neither is named by its record number."""
    cells = frame[column]
    numbers = pd.to_numeric(cells, errors="coerce")
    if not pd.isna(numbers.iloc[0]):  # the first cell says which kind the column holds
        values = numbers.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < 0)
    else:
        stamps = pd.to_datetime(cells, errors="coerce", format="ISO8601")
        bad = stamps.isna().to_numpy()
        values = (stamps - pd.Timestamp(0, tz=stamps.dt.tz)).dt.total_seconds().to_numpy(dtype=np.float64)
    if bad.any():
        first = int(np.argmax(bad))
        raise WorkloadFileError(path, f"expected a time (seconds >= 0 or an ISO 8601 date-time), got "
                                      f"{cells.iloc[first]!r}", first + 1, column)
    return values
