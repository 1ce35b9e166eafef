"""The held-out split: whole databases, whole query structures, or records at random."""

from __future__ import annotations

import json

import pytest

from sqltune.data.build import BuildConfig, build
from sqltune.splits import holdout
from sqltune.sqlutil import skeleton


def _records(db="shop", n_values=6):
    shapes = [
        "SELECT name FROM customers WHERE city = '{v}'",
        "SELECT count(*) FROM orders WHERE total > {n}",
        "SELECT name FROM products ORDER BY price DESC LIMIT {k}",
        "SELECT city, count(*) FROM customers GROUP BY city HAVING count(*) > {k}",
        "SELECT name FROM customers WHERE country != '{v}'",
    ]
    out = []
    for s, shape in enumerate(shapes):
        for i in range(n_values):
            sql = shape.format(v=f"Town{i}", n=10 * i + 1, k=i + 1)
            out.append({"id": f"{db}-{s}-{i}", "db_id": db, "question": f"q {s} {i}", "sql": sql})
    return out


def test_skeleton_masks_literals_only():
    assert skeleton("SELECT a FROM t WHERE x = 'Tokyo' LIMIT 3") == skeleton(
        "select a from t where x = 'Oslo' limit 10"
    )
    assert skeleton("SELECT a FROM t WHERE x = 1") != skeleton("SELECT a FROM t WHERE x > 1")
    assert skeleton("SELECT a FROM t WHERE y = 1") != skeleton("SELECT a FROM t WHERE x = 1")
    assert skeleton("not sql ((") == "not sql (("


def test_one_database_holds_out_whole_structures():
    recs = _records()
    train, val, how = holdout(recs, 0.2, seed=1)
    assert how == "by_structure" and val and train and len(train) + len(val) == len(recs)
    shapes_train = {skeleton(r["sql"]) for r in train}
    shapes_val = {skeleton(r["sql"]) for r in val}
    assert not shapes_train & shapes_val  # no template straddles the split
    assert len(val) == 6  # one whole structure of five: 20% of the records
    assert holdout(recs, 0.2, seed=1) == (train, val, how)  # seeded
    assert holdout(recs, 0.2, seed=2)[1] != val or holdout(recs, 0.2, seed=3)[1] != val


def test_random_and_database_splits():
    recs = _records()
    train, val, how = holdout(recs, 0.2, seed=0, by="random")
    assert how == "random" and len(val) == 6
    assert {skeleton(r["sql"]) for r in train} & {skeleton(r["sql"]) for r in val}  # random: shapes straddle
    two = _records("a") + _records("b") + _records("c")
    train, val, how = holdout(two, 0.3, seed=0)
    assert how == "by_database" and not {r["db_id"] for r in train} & {r["db_id"] for r in val}
    train, val, how = holdout(two, 0.2, seed=0, by="structure")
    assert how == "by_structure"
    key = lambda r: (r["db_id"], skeleton(r["sql"]))  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in val}
    with pytest.raises(ValueError, match="not one of auto, database, structure, random"):
        holdout(recs, 0.2, by="template")


def test_pairs_on_one_database_get_a_validation_file_or_a_warning(tmp_path, school_db, capsys):
    rows = [
        {
            "question": f"Teachers older than {a}?",
            "sql": f"SELECT name FROM teacher WHERE age > {a}",
            "db_path": str(school_db),
        }
        for a in (20, 30, 40, 50)
    ] + [
        {
            "question": f"Students in room {r}?",
            "sql": f"SELECT name FROM student WHERE room_id = {r}",
            "db_path": str(school_db),
        }
        for r in (1, 2, 3, 4)
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = BuildConfig(
        benchmark="pairs", data_dir=str(pairs), split="", out=str(tmp_path / "out.jsonl"), val_fraction=0.4
    )
    rep = build(cfg)
    val = rep["outputs"]["validation"]
    assert val["split"] == "by_structure" and val["n"] == 4 and rep["outputs"]["train"]["n"] == 4
    assert rep["warnings"] == []
    # one structure only: nothing can be held out whole; records go at random, and the report says so
    same = tmp_path / "same.jsonl"
    same.write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    rep = build(
        BuildConfig(benchmark="pairs", data_dir=str(same), split="", out=str(tmp_path / "o2.jsonl"), val_fraction=0.4)
    )
    assert rep["outputs"]["validation"]["split"] == "random"
    assert len(rep["warnings"]) == 1 and "held out at random, not by auto" in rep["warnings"][0]
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(rows[0]) + "\n")
    rep = build(
        BuildConfig(benchmark="pairs", data_dir=str(one), split="", out=str(tmp_path / "o1.jsonl"), val_fraction=0.4)
    )
    assert "validation" not in rep["outputs"] and "was not honoured: 1 record(s)" in rep["warnings"][0]
    # asked for random: no warning
    rep = build(
        BuildConfig(
            benchmark="pairs",
            data_dir=str(same),
            split="",
            out=str(tmp_path / "o3.jsonl"),
            val_fraction=0.4,
            val_split="random",
        )
    )
    assert rep["outputs"]["validation"]["split"] == "random" and rep["warnings"] == []
