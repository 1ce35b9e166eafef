"""A user's own question/SQL pairs, in JSON (a list), JSONL or CSV.

Each record needs a question, a SQL query and a database:

* question: ``question`` (or alpaca's ``instruction``)
* SQL: ``sql``, ``query``, ``SQL`` (or alpaca's ``output``)
* database: ``db_path`` / ``database`` (a SQLite path, relative to the pairs file, or a
  SQLAlchemy URL), or ``db_id`` resolved as ``<db_root>/<db_id>/<db_id>.sqlite``, or the
  ``--db`` option for all records.
* optional: ``id``, ``evidence``, ``difficulty``.

Alpaca-style records (``instruction`` / ``input`` / ``output``, as in the LitGPT article) are
accepted: ``instruction`` is the question, ``output`` the SQL; their ``input`` (a schema text) is
ignored because sqltune reads the schema from the live database.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from sqltune.data.example import Example
from sqltune.errors import DataError
from sqltune.io import read_json, read_jsonl

QUESTION_KEYS = ("question", "instruction")
SQL_KEYS = ("sql", "query", "SQL", "output")
DB_KEYS = ("db_path", "database")
_EXTS = (".jsonl", ".json", ".csv")


def find_pairs_file(data_dir: str | Path, split: str | None) -> Path:
    p = Path(data_dir)
    if p.is_file():
        return p
    if split:
        cand = p / split
        if cand.is_file():
            return cand
        for ext in _EXTS:
            if (p / f"{split}{ext}").is_file():
                return p / f"{split}{ext}"
    raise DataError(
        f"{p}: no pairs file {split!r} (looked for {', '.join(f'{split}{e}' for e in _EXTS)}); "
        f"pass the file itself as --data-dir or its name as --split"
    )


def _read_records(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".jsonl":
        return read_jsonl(path)
    if path.suffix.lower() == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8") from None
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
            rows: list[dict[str, Any]] = []
            for row in reader:
                if None in row:
                    raise DataError(
                        f"{path}: record {len(rows) + 1} (line {reader.line_num}) has more cells than the header "
                        f"({', '.join(reader.fieldnames or [])}); quote fields that contain commas"
                    )
                rows.append(dict(row))
            return rows
        except csv.Error as e:
            raise DataError(f"{path}: malformed CSV at line {reader.line_num}: {e}") from None
    data = read_json(path)
    if isinstance(data, dict):
        for key in ("data", "examples", "records"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records (or JSONL / CSV)")
    return data


def _first(rec: dict[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        v = rec.get(k)
        if v is not None and str(v).strip():
            return str(v).strip()
    return ""


def load_pairs(
    data_dir: str | Path, split: str | None = None, db: str | None = None, db_root: str | Path | None = None
) -> tuple[list[Example], list[Path], set[str] | None]:
    path = find_pairs_file(data_dir, split)
    records = _read_records(path)
    problems: list[str] = []
    out: list[Example] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.append(f"record {i + 1}: expected an object, got {type(rec).__name__}")
            continue
        question = _first(rec, QUESTION_KEYS)
        sql = _first(rec, SQL_KEYS)
        db_path = _first(rec, DB_KEYS)
        db_id = _first(rec, ("db_id",))
        if not question:
            problems.append(f"record {i + 1}: missing field 'question' (or 'instruction')")
        if not sql:
            problems.append(f"record {i + 1}: missing field 'sql' (or 'query' / 'output')")
        if not db_path:
            if db:
                db_path = db
            elif db_id and db_root:
                db_path = str(Path(db_root) / db_id / f"{db_id}.sqlite")
            elif db_id:
                db_path = str(path.parent / db_id / f"{db_id}.sqlite")
            else:
                problems.append(
                    f"record {i + 1}: missing field 'db_path' (or 'db_id'); or pass --db PATH for all records"
                )
                continue
        if "://" not in db_path and not Path(db_path).is_absolute():
            db_path = str((path.parent / db_path).resolve())
        out.append(
            Example(
                id=_first(rec, ("id", "question_id")) or str(i),
                db_id=db_id or Path(db_path).stem,
                db_path=db_path,
                question=question,
                evidence=_first(rec, ("evidence", "external_knowledge")),
                sql=sql,
                difficulty=_first(rec, ("difficulty", "hardness")),
                source="pairs",
            )
        )
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DataError(
            f"{path}: {len(problems)} bad record(s) (numbered from 1):\n  {shown}{more}\nNothing was written."
        )
    ids = [e.id for e in out]
    if len(set(ids)) != len(ids):
        dup = sorted(k for k, v in Counter(ids).items() if v > 1)[:5]
        raise DataError(f"{path}: duplicate id(s) {', '.join(dup)}; ids must be unique (or leave 'id' out)")
    return out, [path], None
