"""Synthesis from a database alone, on real SQLite files of several shapes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sqltune.data.build import BuildConfig, build
from sqltune.data.synth import SynthConfig, report_path, synthesize
from sqltune.db.execute import execute
from sqltune.errors import DataError
from sqltune.io import read_jsonl
from sqltune.judge.hardness import spider_hardness
from sqltune.judge.score import result_key
from sqltune.linking.profile import profile_database, singular, words


def star_db(path: Path) -> Path:
    """A star schema: a sales fact table with declared foreign keys to three dimensions."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE product (product_id INTEGER PRIMARY KEY, product_name TEXT, category TEXT, price REAL);
        CREATE TABLE store (store_id INTEGER PRIMARY KEY, city TEXT, country TEXT, opened DATE);
        CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, customerName TEXT, country TEXT, email TEXT);
        CREATE TABLE sales (sale_id INTEGER PRIMARY KEY, sale_date DATE,
            product_id INTEGER REFERENCES product(product_id), store_id INTEGER REFERENCES store(store_id),
            customer_id INTEGER REFERENCES customer(customer_id), quantity INTEGER, amount REAL);
        """
    )
    cats = ["Books", "Garden", "Toys", "Music"]
    for i in range(1, 41):
        conn.execute("INSERT INTO product VALUES (?,?,?,?)", (i, f"Item {i} deluxe", cats[i % 4], 5.0 + i * 1.5))
    cities = [("Lyon", "France"), ("Osaka", "Japan"), ("Leeds", "UK"), ("Porto", "Portugal"), ("Kyoto", "Japan")]
    for i, (c, k) in enumerate(cities, 1):
        conn.execute("INSERT INTO store VALUES (?,?,?,?)", (i, c, k, f"201{i}-0{i}-1{i}"))
    for i in range(1, 31):
        email = None if i % 4 == 0 else f"c{i}@example.com"
        conn.execute("INSERT INTO customer VALUES (?,?,?,?)", (i, f"Customer {i}", cities[i % 5][1], email))
    for i in range(1, 301):
        conn.execute(
            "INSERT INTO sales VALUES (?,?,?,?,?,?,?)",
            (i, f"202{i % 4}-{1 + i % 12:02d}-{1 + i % 27:02d}", 1 + i % 37, 1 + i % 5, 1 + i % 29, 1 + i % 7, i * 2.5),
        )
    conn.commit()
    conn.close()
    return path


def odd_db(path: Path, big: int = 0) -> Path:
    """No declared foreign keys, quoted identifiers with spaces, an empty table, an all-NULL column,
    and (``big``) a table of that many rows."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER, nickname TEXT);
        CREATE TABLE song (song_id INTEGER PRIMARY KEY, singer_id INTEGER, title TEXT, Song_release_year INTEGER);
        CREATE TABLE "class room" ("room id" INTEGER PRIMARY KEY, "room name" TEXT, "seat count" INTEGER);
        CREATE TABLE archive (id INTEGER PRIMARY KEY, note TEXT);
        """
    )
    countries = ["France", "USA", "Japan", "Brazil"]
    for i in range(1, 21):
        conn.execute("INSERT INTO singer VALUES (?,?,?,?,NULL)", (i, f"Singer {i}", countries[i % 4], 20 + i))
    for i in range(1, 61):
        conn.execute("INSERT INTO song VALUES (?,?,?,?)", (i, 1 + i % 15, f"Song number {i}", 1990 + i % 25))
    for i in range(1, 9):
        conn.execute('INSERT INTO "class room" VALUES (?,?,?)', (i, f"Room {'AB'[i % 2]}{i}", 10 + 5 * i))
    if big:
        conn.executescript(
            f"""
            CREATE TABLE events (event_id INTEGER PRIMARY KEY, kind TEXT, score INTEGER);
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {big})
            INSERT INTO events SELECT i, CASE i % 3 WHEN 0 THEN 'click' WHEN 1 THEN 'view' ELSE 'buy' END, i % 1000 FROM n;
            """
        )
    conn.commit()
    conn.close()
    return path


def _check_pairs(pairs: list[dict]) -> None:
    seen: dict[str, set[str]] = {}
    for p in pairs:
        res = execute(p["db_path"], p["sql"], timeout=30)
        assert res.ok, (p["sql"], res.error)
        assert p["difficulty"] == spider_hardness(p["sql"]) and p["difficulty"] in ("easy", "medium", "hard", "extra")
        if p["shape"] not in ("not_in", "set_except"):
            assert res.rows, p["sql"]
        assert not res.rows or any(v is not None for r in res.rows for v in r)
        key = result_key(res.rows)
        assert key not in seen.setdefault(p["db_id"], set()), f"two pairs with one result: {p['sql']}"
        seen[p["db_id"]].add(key)
        assert p["question"].strip() and "{" not in p["question"]


def test_names_read_as_words():
    assert words("Song_release_year") == "song release year"
    assert words("customerName") == "customer name"
    assert words("room id") == "room id"
    got = [singular(w) for w in ("order items", "categories", "addresses", "boxes", "singer", "status", "bus")]
    assert got == ["order item", "category", "address", "box", "singer", "status", "bus"]


def test_profile_reads_keys_values_and_infers_undeclared_joins(tmp_path):
    prof = profile_database(odd_db(tmp_path / "odd.sqlite"))
    assert {(f.table, f.column, f.ref_table, f.ref_column) for f in prof.inferred_keys} == {
        ("song", "singer_id", "singer", "singer_id")
    }
    singer = prof.table("singer")
    assert singer.column("age").kind == "number" and singer.column("country").kind == "text"
    assert singer.column("nickname").null_share == 1.0 and singer.column("country").distinct == 4
    assert prof.table("archive").rows == 0
    star = profile_database(star_db(tmp_path / "star.sqlite"))
    assert len(star.foreign_keys) == 3 and star.table("store").column("opened").kind == "date"


def test_star_schema_pairs_cover_every_hardness_and_are_verified(tmp_path):
    out = tmp_path / "pairs.jsonl"
    rep = synthesize(SynthConfig(db=[str(star_db(tmp_path / "star.sqlite"))], out=str(out), n=150, seed=0))
    pairs = read_jsonl(out)
    assert len(pairs) == rep["written"] >= 120
    _check_pairs(pairs)
    assert set(rep["by_difficulty"]) == {"easy", "medium", "hard", "extra"}
    shapes = {p["shape"] for p in pairs}
    assert {"join_filter", "join_most", "group_having", "nested_avg", "like", "null_check"} <= shapes
    assert {"filter_between", "filter_or", "filtered_aggregate", "count_distinct", "join_project"} <= shapes
    assert shapes & {"join_aggregate", "join_count"}
    assert any(p["shape"].startswith("filter_") and "date" in p["sql"] for p in pairs)
    part = rep["databases"][0]
    assert part["tables_covered"] == "4/4" and part["rejected"]
    assert json.loads(report_path(out).read_text())["written"] == len(pairs)
    # questions vary within a shape: not one sentence pattern per shape
    by_shape: dict[str, set[str]] = {}
    for p in pairs:
        by_shape.setdefault(p["shape"], set()).add(p["question"].split()[0])
    assert sum(len(v) > 1 for v in by_shape.values()) >= 5


def test_odd_schema_quoted_names_empty_table_null_column(tmp_path):
    out = tmp_path / "pairs.jsonl"
    rep = synthesize(SynthConfig(db=[str(odd_db(tmp_path / "odd.sqlite"))], out=str(out), n=120, seed=0))
    pairs = read_jsonl(out)
    _check_pairs(pairs)
    assert any('"class room"' in p["sql"] for p in pairs)
    assert any("JOIN" in p["sql"] and "song" in p["sql"] for p in pairs)  # along the inferred key
    assert not any("archive" in p["sql"] for p in pairs)  # the empty table gives nothing
    assert not any("nickname" in p["sql"] and "IS NULL" not in p["sql"] for p in pairs)  # all-NULL column
    assert "archive" in rep["databases"][0]["tables_uncovered"]


def test_seed_reproduces_the_file_and_another_seed_does_not(tmp_path):
    db = str(star_db(tmp_path / "star.sqlite"))
    a, b, c = (tmp_path / f"{x}.jsonl" for x in "abc")
    synthesize(SynthConfig(db=[db], out=str(a), n=60, seed=7))
    synthesize(SynthConfig(db=[db], out=str(b), n=60, seed=7))
    synthesize(SynthConfig(db=[db], out=str(c), n=60, seed=8))
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()


def test_a_million_row_table_stays_fast_and_pairs_feed_data_build(tmp_path):
    db = odd_db(tmp_path / "big.sqlite", big=1_000_000)
    out = tmp_path / "pairs.jsonl"
    rep = synthesize(SynthConfig(db=[str(db)], out=str(out), n=80, seed=0, timeout=1.0))
    pairs = read_jsonl(out)
    assert rep["written"] == len(pairs) >= 60 and any("events" in p["sql"] for p in pairs)
    _check_pairs(pairs)
    built = build(
        BuildConfig(benchmark="pairs", data_dir=str(out), split="", out=str(tmp_path / "train.jsonl"), val_fraction=0.2)
    )
    assert built["written"] == len(pairs) and built["outputs"]["validation"]["split"] == "by_structure"
    assert set(built["difficulty"]) <= {"easy", "medium", "hard", "extra"}


@pytest.mark.parametrize("kind", ["not_sqlite", "no_tables", "missing", "unreadable"])
def test_bad_databases_fail_clearly_and_write_nothing(tmp_path, kind):
    good = star_db(tmp_path / "good.sqlite")
    bad = tmp_path / "bad.sqlite"
    if kind == "not_sqlite":
        bad.write_text("id,name\n1,Ann\n")
    elif kind == "no_tables":
        conn = sqlite3.connect(bad)
        conn.execute("CREATE TABLE t (x)")
        conn.execute("DROP TABLE t")
        conn.close()
    elif kind == "unreadable":
        if os.geteuid() == 0:
            bad = tmp_path / "dir.sqlite"
            bad.mkdir()  # root reads every file: a folder is what cannot be read as a database
        else:
            bad.write_bytes(good.read_bytes())
            bad.chmod(0)
    out = tmp_path / "pairs.jsonl"
    with pytest.raises(DataError, match=r"bad\.sqlite|dir\.sqlite") as e:
        synthesize(SynthConfig(db=[str(good), str(bad)], out=str(out), n=10))
    assert "--db" in str(e.value) or "no tables" in str(e.value)
    assert not out.exists() and not report_path(out).exists()


def test_cli_synth_and_its_errors(tmp_path):
    db = star_db(tmp_path / "star.sqlite")
    out = tmp_path / "p.jsonl"
    cmd = [sys.executable, "-m", "sqltune", "data", "synth", "--db", str(db), "--out", str(out), "--n", "40"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "written 40 pairs" in r.stdout and "by difficulty" in r.stdout and len(read_jsonl(out)) == 40
    (tmp_path / "x.sqlite").write_text("not a database")
    r = subprocess.run(
        [*cmd[:6], str(tmp_path / "x.sqlite"), "--out", str(tmp_path / "q.jsonl")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "x.sqlite" in r.stderr and "Traceback" not in r.stderr
