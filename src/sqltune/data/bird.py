"""BIRD: ``dev.json`` / ``train.json`` (+ ``mini_dev_sqlite.json``), ``<split>_databases/<db_id>/<db_id>.sqlite``
with ``database_description/*.csv``. The ``evidence`` field becomes the prompt's External Knowledge."""

from __future__ import annotations

from pathlib import Path

from sqltune.data.example import Example
from sqltune.errors import DataError
from sqltune.io import read_json
from sqltune.records import require_fields


def _db_root(data_dir: Path, split: str) -> Path:
    for name in (f"{split}_databases", "dev_databases" if split.startswith("mini_dev") else "", "train_databases"):
        if name and (data_dir / name).is_dir():
            return data_dir / name
    return data_dir / f"{split}_databases"


def known_db_ids(data_dir: Path, split: str) -> set[str] | None:
    prefix = "dev" if split.startswith("mini_dev") else split
    tables = data_dir / f"{prefix}_tables.json"
    if not tables.is_file():
        return None
    return {t["db_id"] for t in read_json(tables) if isinstance(t, dict) and "db_id" in t}


def load_bird(data_dir: str | Path, split: str) -> tuple[list[Example], list[Path], set[str] | None]:
    data_dir = Path(data_dir)
    f = data_dir / (split if split.endswith(".json") else f"{split}.json")
    if not f.is_file():
        raise DataError(
            f"{data_dir}: no {f.name} here; --data-dir must be the BIRD folder, --split dev|train|mini_dev_sqlite"
        )
    split = f.stem
    items = read_json(f)
    if not isinstance(items, list):
        raise DataError(f"{f}: expected a JSON list of examples, got {type(items).__name__}")
    sql_key = "SQL" if items and isinstance(items[0], dict) and "SQL" in items[0] else "query"
    require_fields(f, items, ("db_id", "question", sql_key))
    db_root = _db_root(data_dir, split)
    out = []
    for i, it in enumerate(items):
        db_id = str(it["db_id"])
        out.append(
            Example(
                id=str(it.get("question_id", i)),
                db_id=db_id,
                db_path=str(db_root / db_id / f"{db_id}.sqlite"),
                question=str(it["question"]).strip(),
                evidence=str(it.get("evidence") or "").strip(),
                sql=str(it[sql_key]).strip(),
                difficulty=str(it.get("difficulty") or ""),
                source="bird",
            )
        )
    return out, [f], known_db_ids(data_dir, split)
