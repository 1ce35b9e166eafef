"""The query shapes' people and dates: a person's name as its two columns, rows ordered by a date, a date's
extremes, a column's commonest value; every drawn query verified on a real SQLite file."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from sqltune.db.execute import execute
from sqltune.judge import Judge
from sqltune.linking.profile import ColumnProfile, TableProfile, profile_database
from sqltune.linking.shapes import SHAPES, col_names, draw_verified, person_name, sel


def staff_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE staff (staff_id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, team TEXT,
            hired DATE, pay INTEGER, boss_id INTEGER REFERENCES staff(staff_id));
        CREATE TABLE ticket (ticket_id INTEGER PRIMARY KEY, opened DATE, kind TEXT,
            staff_id INTEGER REFERENCES staff(staff_id));
        """
    )
    teams = ["Support", "Sales", "Support", "Ops"]
    for i in range(1, 25):
        conn.execute(
            "INSERT INTO staff VALUES (?,?,?,?,?,?,?)",
            (i, f"Ann{i}", f"Lee{i % 7}", teams[i % 4], f"20{10 + i % 12}-0{1 + i % 9}-1{i % 10}", 40 + i, None),
        )
    for i in range(1, 121):
        conn.execute(
            "INSERT INTO ticket VALUES (?,?,?,?)",
            (i, f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", ["bug", "question", "bug"][i % 3], 1 + i % 20),
        )
    conn.commit()
    conn.close()
    return path


def _col(name: str, kind: str = "text") -> ColumnProfile:
    return ColumnProfile(name, "TEXT", kind, False, 5, 0.0, ["a", "b"])


def test_a_person_name_is_its_first_and_last_name_columns():
    for first, last in [
        ("first_name", "last_name"),
        ("Fname", "LName"),
        ("FirstName", "surname"),
        ("given_name", "family_name"),
    ]:
        t = TableProfile("people", 10, [_col("id", "number"), _col(first), _col(last), _col("city")])
        pair = person_name(t)
        assert pair is not None and col_names(pair) == [first, last] and pair.words == "name"
        assert sel(pair, "T2") == f"T2.{first}, T2.{last}"
    assert person_name(TableProfile("singer", 10, [_col("name"), _col("nickname")])) is None
    assert person_name(TableProfile("x", 10, [_col("first_name"), _col("city")])) is None
    assert sel(_col("city")) == "city" and sel(_col("room name"), "T1") == 'T1."room name"'


def test_people_and_dates_shapes_run_and_say_what_they_select(tmp_path):
    db = staff_db(tmp_path / "staff.sqlite")
    prof = profile_database(str(db))
    rng = random.Random(0)
    seen: dict[str, list[str]] = {}
    cands: dict[str, list[Any]] = {}
    for _ in range(60):
        for name in ("order_date", "date_extreme", "group_most", "list", "join_most", "not_in", "filter_text"):
            cand = SHAPES[name](rng, prof)
            if cand is None:
                continue
            res = execute(str(db), cand.sql, timeout=10)
            assert res.ok, (cand.sql, res.error)
            assert cand.shape == name
            assert all(c in {c.name for t in prof.tables for c in t.columns} for c in cand.columns), cand
            seen.setdefault(name, []).append(cand.sql)
            cands.setdefault(name, []).append(cand)
    # a person is selected by both name columns, in one table and across a join
    assert any("SELECT first_name, last_name FROM staff" in s for s in seen["list"])
    assert any("T2.first_name, T2.last_name" in s for s in seen["join_most"])
    # ordered by a date, both ways; a date's extremes; a column's commonest value
    assert any(s.endswith("ASC LIMIT 1") for s in seen["order_date"])
    assert any("DESC LIMIT" in s for s in seen["order_date"])
    assert {"min(", "max("} <= {s[7:11] for s in seen["date_extreme"]}
    assert any("ORDER BY count(*) DESC LIMIT 1" in s for s in seen["group_most"])
    # what the question asks for (the most or the fewest rows) is what the query returns, counted here from
    # the rows themselves
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    asked = Counter()
    for cand in cands["group_most"]:
        counts = Counter(v for (v,) in conn.execute(f'SELECT "{cand.columns[0]}" FROM "{cand.tables[0]}"'))
        (got,) = execute(str(db), cand.sql, timeout=10).rows
        most = " most " in cand.questions[0]
        assert most != (" fewest " in cand.questions[0]), cand.questions[0]
        want = max(counts.values()) if most else min(counts.values())
        assert counts[got[0]] == want, (cand.questions[0], cand.sql, got, counts)
        asked[most] += 1
    assert asked[True] and asked[False]


def test_the_new_shapes_are_drawn_and_verified_with_the_rest(tmp_path):
    db = staff_db(tmp_path / "staff.sqlite")
    prof = profile_database(str(db))
    with Judge(workers=1, timeout=10.0) as judge:
        drawn = list(draw_verified(prof, 400, random.Random(0), judge, distinct_results=False))
    shapes = {d.cand.shape for d in drawn}
    assert {"order_date", "date_extreme", "group_most"} <= shapes
    assert any(d.cand.sql.startswith("SELECT first_name, last_name FROM staff ORDER BY hired") for d in drawn)
