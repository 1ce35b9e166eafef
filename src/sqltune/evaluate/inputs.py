"""Reading what to score: sqltune's own files, or the official Spider and BIRD formats.

* sqltune: ``--dataset FILE.jsonl`` (the data stage's records) + ``--pred FILE.jsonl``
  (the predict stage's records: ``id``, ``pred_sql`` (or ``sql``), optional ``candidates``,
  ``raw``), joined by ``id``.
* Spider: ``--gold gold.sql`` (``SQL<TAB>db_id`` per line) + ``--pred pred.sql`` (one SQL per
  line), paired by line; the counts must agree.
* BIRD: ``--pred predict_dev.json`` (``{"0": "SQL\\t----- bird -----\\tdb_id", ...}``) + ``--gold``
  (``dev.sql``-style lines or ``dev.json``), paired by the question index in the keys, never
  by file order; ``--diff-json dev.json`` adds the difficulty.

Databases are found at ``<db-root>/<db_id>/<db_id>.sqlite``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqltune.errors import DataError
from sqltune.io import read_json, read_jsonl
from sqltune.records import read_records

BIRD_SEP = "\t----- bird -----\t"


@dataclass
class EvalItem:
    id: str
    db_id: str
    db_path: str
    gold: str
    pred: str
    question: str = ""
    difficulty: str = ""
    candidates: list[str] = field(default_factory=list)
    missing: bool = False
    facts: dict[str, Any] | None = None
    """The gold's ``hardness`` and ``order_by`` when the data stage wrote them (no parse needed)."""
    link: dict[str, Any] | None = None
    """With schema linking: the record's ``schema_filter`` and ``schema_recall`` and its prompt's tokens."""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8") from None


def _count_mismatch(gold: Path, pred: Path, n_gold: int, n_pred: int, what: str = "lines") -> DataError:
    side = "prediction" if n_pred < n_gold else "gold"
    return DataError(
        f"{gold} has {n_gold} {what} but {pred} has {n_pred}: the {side} file is short by {abs(n_gold - n_pred)} "
        f"(first unmatched item: {min(n_gold, n_pred)}); every gold item needs exactly one prediction "
        f"(write an empty line for a question with no prediction)"
    )


def _db_path(db_root: str | Path, db_id: str) -> str:
    return str(Path(db_root) / db_id / f"{db_id}.sqlite")


def read_gold(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """Gold as (sql, db_id, extra) from a ``.sql`` file (SQL<TAB>db_id) or a benchmark ``.json``."""
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of examples")
        out = []
        for i, d in enumerate(data):
            sql = d.get("SQL") or d.get("query") or d.get("sql") if isinstance(d, dict) else None
            if not sql or "db_id" not in d:
                raise DataError(f"{path}: record {i}: missing field 'SQL'/'query' or 'db_id'")
            out.append((str(sql), str(d["db_id"]), d))
        return out
    out = []
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(f"{path}:{lineno}: expected 'SQL<TAB>db_id', found no tab")
        sql, db_id = line.rsplit("\t", 1)
        out.append((sql.strip(), db_id.strip(), {"line": lineno}))
    return out


def load_spider_files(gold: str | Path, pred: str | Path, db_root: str | Path) -> list[EvalItem]:
    gold, pred = Path(gold), Path(pred)
    g = read_gold(gold)
    p = _read_text(pred).split("\n")
    if p and p[-1] == "":
        p = p[:-1]
    if len(p) != len(g):
        raise _count_mismatch(gold, pred, len(g), len(p))
    return [
        EvalItem(
            id=str(i),
            db_id=db_id,
            db_path=_db_path(db_root, db_id),
            gold=sql,
            pred=p[i].strip(),
            question=str(extra.get("question", "")),
            difficulty=str(extra.get("difficulty", "")),
        )
        for i, (sql, db_id, extra) in enumerate(g)
    ]


def load_bird_files(
    pred: str | Path, gold: str | Path, db_root: str | Path, diff_json: str | Path | None = None
) -> list[EvalItem]:
    pred, gold = Path(pred), Path(gold)
    preds = read_json(pred)
    if not isinstance(preds, dict):
        raise DataError(f'{pred}: expected a JSON object {{"0": "SQL\\t----- bird -----\\tdb_id", ...}}')
    g = read_gold(gold)
    diffs: list[Any] = []
    if diff_json:
        diffs = read_json(diff_json)
    elif gold.suffix == ".json":
        diffs = [extra for _, _, extra in g]
    keys = set(preds)
    bad = [k for k in keys if not str(k).isdigit()]
    if bad:
        raise DataError(f'{pred}: keys must be question indexes ("0", "1", ...); found {sorted(bad)[:5]}')
    wanted = {str(i) for i in range(len(g))}
    missing, extra = sorted(wanted - keys, key=int), sorted(keys - wanted, key=int)
    if missing or extra:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} gold question(s) have no prediction (keys {', '.join(missing[:10])}"
                f"{' ...' if len(missing) > 10 else ''})"
            )
        if extra:
            parts.append(f"{len(extra)} prediction(s) match no gold question (keys {', '.join(extra[:10])})")
        raise DataError(f"{pred} vs {gold} ({len(g)} gold questions): " + "; ".join(parts))
    items = []
    for i, (sql, db_id, extra_fields) in enumerate(g):
        value = str(preds[str(i)])
        if BIRD_SEP in value:
            psql, pdb = value.split(BIRD_SEP, 1)
            if pdb.strip() and pdb.strip() != db_id:
                raise DataError(
                    f'{pred}: key "{i}" names database {pdb.strip()!r} but gold question {i} is on {db_id!r}'
                )
        else:
            psql = value
        diff = ""
        if i < len(diffs) and isinstance(diffs[i], dict):
            diff = str(diffs[i].get("difficulty", ""))
        qid = extra_fields.get("question_id", i) if isinstance(extra_fields, dict) else i
        items.append(
            EvalItem(
                id=str(qid),
                db_id=db_id,
                db_path=_db_path(db_root, db_id),
                gold=sql,
                pred=psql.strip(),
                question=str(extra_fields.get("question", "")),
                difficulty=diff,
            )
        )
    return items


PRED_KEYS = ("pred_sql", "sql", "prediction", "predicted_sql")


def load_sqltune_files(
    dataset: str | Path, pred: str | Path, db_root: str | Path | None = None, allow_missing: bool = False
) -> list[EvalItem]:
    dataset, pred = Path(dataset), Path(pred)
    data = read_records(dataset, ("id", "db_id", "sql"), unique="id", hint="Use a dataset from 'sqltune data build'")
    preds = read_records(pred, ("id",), unique="id", hint="Keep one prediction per dataset id")
    ids = [str(d["id"]) for d in data]
    pmap: dict[str, dict[str, Any]] = {str(p["id"]): p for p in preds}
    unknown = [k for k in pmap if k not in set(ids)]
    if unknown:
        raise DataError(f"{pred}: {len(unknown)} prediction(s) for ids not in {dataset}: {', '.join(unknown[:10])}")
    missing = [k for k in ids if k not in pmap]
    if missing and not allow_missing:
        raise DataError(
            f"{pred}: no prediction for {len(missing)} of {len(ids)} dataset ids (first: {', '.join(missing[:10])}); "
            f"finish the predictions, or pass --allow-missing to count them as misses"
        )
    items = []
    for d in data:
        p = pmap.get(str(d["id"]), {})
        psql = next((str(p[k]) for k in PRED_KEYS if p.get(k) is not None), "")
        cands = p.get("candidates") or []
        db_path = str(d.get("db_path") or "")
        if db_root and not db_path:
            db_path = _db_path(db_root, d["db_id"])
        items.append(
            EvalItem(
                id=str(d["id"]),
                db_id=str(d["db_id"]),
                db_path=db_path,
                gold=str(d["sql"]),
                pred=psql,
                question=str(d.get("question", "")),
                difficulty=str(d.get("difficulty", "")),
                candidates=[str(c) for c in cands],
                link=(
                    {
                        "settings": d["schema_filter"],
                        "recall": d["schema_recall"],
                        "prompt_tokens": d.get("prompt_tokens"),
                    }
                    if d.get("schema_filter") and d.get("schema_recall")
                    else None
                ),
                facts=(
                    {
                        "hardness": d["gold_hardness"],
                        "order_by": bool(d["gold_ordered"]),
                        "normalized": d.get("gold_normalized"),
                    }
                    if "gold_hardness" in d and "gold_ordered" in d
                    else None
                ),
            )
        )
        items[-1].missing = str(d["id"]) not in pmap
    return items


def detect_and_load(
    gold: str | None, pred: str, db_root: str | None, dataset: str | None, diff_json: str | None, allow_missing: bool
) -> tuple[list[EvalItem], str]:
    """Pick the input format from the files; returns the items and the benchmark family."""
    if dataset:
        items = load_sqltune_files(dataset, pred, db_root, allow_missing)
        sources = {str(r.get("source", "")) for r in read_jsonl(dataset)}
        return items, ("bird" if sources == {"bird"} else "sqltune")
    if not gold or not db_root:
        raise DataError("give either --dataset FILE.jsonl --pred FILE.jsonl, or --gold FILE --pred FILE --db-root DIR")
    p = Path(pred)
    if p.suffix == ".json":
        return load_bird_files(pred, gold, db_root, diff_json), "bird"
    if p.suffix in (".sql", ".txt"):
        return load_spider_files(gold, pred, db_root), "spider"
    raise DataError(
        f"{p}: unknown prediction format; use .sql (Spider: one SQL per line) or .json (BIRD predict_dev.json)"
    )
