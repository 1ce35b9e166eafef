"""Validation helpers for input records: every problem reported at once, by file, index, field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqltune.errors import DataError

_MAX_LISTED = 10


def require_fields(path: Path, items: Sequence[Any], required: Sequence[str]) -> None:
    """Raise one DataError listing every record that is not an object or lacks a required field."""
    problems = []
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            problems.append(f"record {i}: expected an object, got {type(it).__name__}")
            continue
        for name in required:
            if name not in it or it[name] is None or (isinstance(it[name], str) and not it[name].strip()):
                problems.append(f"record {i}: missing field {name!r}")
    if problems:
        shown = "\n  ".join(problems[:_MAX_LISTED])
        more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise DataError(
            f"{path}: {len(problems)} bad record(s) (records are numbered from 0):\n  {shown}{more}\n"
            f"Fix these records or remove them; nothing was written."
        )
