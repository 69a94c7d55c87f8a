"""Atomic writers: write to a temporary file in the same directory, then rename over the target.

The temporary file is created with mode 0o666 less the umask, like any file the process opens, so
records on shared storage are as readable to colleagues as the umask allows (`tempfile.mkstemp`
would make every record file 0600)."""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null so the files stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def _replace_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.filename is None:  # a failed write names no file: name it
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write `payload` as indented strict JSON, atomically."""
    data = json.dumps(_json_safe(payload), indent=2, sort_keys=False, default=str).encode()
    _replace_atomically(Path(path), lambda handle: handle.write(data))


def write_parquet_atomic(path: str | Path, frame) -> None:
    """Write a pandas DataFrame as Parquet (pyarrow), atomically."""
    _replace_atomically(Path(path), lambda handle: frame.to_parquet(handle, engine="pyarrow", index=False))
