"""Records between stages: one reader, one way to check them, one numbering.

Every file of records a stage reads (a data-stage JSONL, predictions, Spider's and BIRD's JSON, a
user's pairs) is checked here, and **every** problem is reported at once, not the first one:
``FILE:LINE`` for a JSONL file, ``FILE: record N`` for the N-th element of a JSON list, both
counted from 1 as editors count lines. Nothing is written when a file is bad.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqltune.errors import DataError
from sqltune.io import read_utf8

_MAX_LISTED = 10


def _fail(path: Path, problems: list[str], hint: str) -> None:
    shown = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise DataError(
        f"{path}: {len(problems)} problem(s):\n  {shown}{more}\n{hint or 'Fix these records'}; nothing was written."
    )


def _missing(rec: dict[str, Any], name: str) -> bool:
    v = rec.get(name)
    return v is None or (isinstance(v, str) and not v.strip())


def require_fields(path: str | Path, items: Sequence[Any], required: Sequence[str], hint: str = "") -> None:
    """Raise one DataError listing every element of a JSON list (``record N``, from 1) that is not an object
    or lacks a required field."""
    problems = []
    for n, it in enumerate(items, 1):
        if not isinstance(it, dict):
            problems.append(f"record {n}: expected an object, got {type(it).__name__}")
            continue
        problems += [f"record {n}: missing field {name!r}" for name in required if _missing(it, name)]
    if problems:
        _fail(Path(path), problems, hint)


def read_records(
    path: str | Path,
    required: Sequence[str] = (),
    unique: str | None = None,
    check: Callable[[dict[str, Any]], str | None] | None = None,
    hint: str = "",
) -> list[dict[str, Any]]:
    """The records of a JSONL file, checked: malformed lines, missing ``required`` fields, duplicate values of
    ``unique`` and what ``check`` says of a record (a message, or None) are reported together, each as
    ``FILE:LINE``; ``hint`` says how to fix them."""
    path = Path(path)
    text = read_utf8(path)
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    first: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: malformed JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(rec, dict):
            problems.append(f"{where}: expected a JSON object, got {type(rec).__name__}")
            continue
        problems += [f"{where}: missing field {name!r}" for name in required if _missing(rec, name)]
        if unique is not None and not _missing(rec, unique):
            key = str(rec[unique])
            if key in first:
                problems.append(f"{where}: duplicate {unique} {key!r} (first on line {first[key]})")
            else:
                first[key] = lineno
        if check is not None:
            msg = check(rec)
            if msg:
                problems.append(f"{where}: {msg}")
        out.append(rec)
    if problems:
        _fail(path, problems, hint)
    return out


def side_path(out: str | Path, kind: str) -> Path:
    """The side file of an output (``runs/x.jsonl`` -> ``runs/x.<kind>.json``): reports, manifests."""
    out = Path(out)
    stem = out.name.removesuffix(".jsonl").removesuffix(".json")
    return out.with_name(f"{stem}.{kind}.json")
