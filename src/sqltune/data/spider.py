"""Spider 1.0: ``dev.json`` / ``train_spider.json`` (+ ``train_others.json``), ``tables.json``,
``database/<db_id>/<db_id>.sqlite``."""

from __future__ import annotations

from pathlib import Path

from sqltune.data.example import Example
from sqltune.errors import DataError
from sqltune.io import read_json
from sqltune.records import require_fields

SPLIT_FILES = {
    "dev": ["dev.json"],
    "train": ["train_spider.json", "train_others.json"],
    "train_spider": ["train_spider.json"],
    "train_others": ["train_others.json"],
}


def split_files(data_dir: Path, split: str) -> list[Path]:
    names = SPLIT_FILES.get(split)
    if names is None:
        candidate = data_dir / (split if split.endswith(".json") else f"{split}.json")
        if candidate.is_file():
            return [candidate]
        raise DataError(
            f"{data_dir}: unknown Spider split {split!r}; choose one of {', '.join(SPLIT_FILES)} "
            f"or name a JSON file in that folder"
        )
    files = [data_dir / n for n in names if (data_dir / n).is_file()]
    if not files:
        raise DataError(f"{data_dir}: no {names[0]} here; --data-dir must be the Spider folder (with tables.json)")
    return files


def known_db_ids(data_dir: Path) -> set[str] | None:
    tables = data_dir / "tables.json"
    if not tables.is_file():
        return None
    return {t["db_id"] for t in read_json(tables) if isinstance(t, dict) and "db_id" in t}


def load_spider(data_dir: str | Path, split: str) -> tuple[list[Example], list[Path], set[str] | None]:
    """Return the examples, the files read, and the db_ids declared in tables.json."""
    data_dir = Path(data_dir)
    db_root = data_dir / "database"
    files = split_files(data_dir, split)
    out: list[Example] = []
    for f in files:
        items = read_json(f)
        if not isinstance(items, list):
            raise DataError(f"{f}: expected a JSON list of examples, got {type(items).__name__}")
        require_fields(f, items, ("db_id", "question", "query"))
        prefix = f.stem
        for i, it in enumerate(items):
            db_id = str(it["db_id"])
            out.append(
                Example(
                    id=f"{prefix}-{i}",
                    db_id=db_id,
                    db_path=str(db_root / db_id / f"{db_id}.sqlite"),
                    question=str(it["question"]).strip(),
                    evidence="",
                    sql=str(it["query"]).strip(),
                    difficulty=str(it.get("difficulty") or it.get("hardness") or ""),
                    source="spider",
                )
            )
    return out, files, known_db_ids(data_dir)
