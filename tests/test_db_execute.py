"""The read-only sandbox: one hostile input per property."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from sqltune.db.execute import execute, open_readonly, run_query
from sqltune.errors import ExecutionError


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_select_returns_rows_and_columns(school_db):
    r = execute(school_db, "SELECT name, age FROM teacher ORDER BY age")
    assert r.ok and r.columns == ["name", "age"]
    assert r.rows == [("Bob", 35), ("Ann", 40), ("Cy", 50)]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO teacher VALUES (9, 'X', 1)",
        "UPDATE teacher SET age = 0",
        "DELETE FROM student",
        "DROP TABLE student",
        "CREATE TABLE t (x)",
        "PRAGMA journal_mode = WAL",
        "PRAGMA user_version = 7",
        "VACUUM",
    ],
)
def test_write_attempts_fail_and_bytes_never_change(school_db, sql):
    before = _digest(school_db)
    r = execute(school_db, sql)
    assert not r.ok
    assert r.error_type in {"write_attempt", "runtime_error"}
    assert _digest(school_db) == before


def test_attach_cannot_create_files(school_db, tmp_path):
    target = tmp_path / "created.sqlite"
    r = execute(school_db, f"ATTACH DATABASE '{target}' AS x")
    assert not r.ok
    assert not target.exists()


def test_runaway_recursive_cte_stops_within_timeout(school_db):
    threads_before = threading.active_count()
    conn = open_readonly(school_db)
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    t0 = time.monotonic()
    r = run_query(conn, sql, timeout=0.5)
    elapsed = time.monotonic() - t0
    assert not r.ok and r.error_type == "timeout"
    assert elapsed < 0.5 + 1.0
    # the connection is usable afterwards and nothing keeps running
    assert run_query(conn, "SELECT count(*) FROM student").rows == [(10,)]
    assert threading.active_count() == threads_before
    cpu = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - cpu < 0.1  # no CPU left burning
    conn.close()


def test_runaway_cross_join_stops(school_db):
    sql = "SELECT count(*) FROM student a, student b, student c, student d, student e, student f, student g, student h"
    t0 = time.monotonic()
    r = execute(school_db, sql, timeout=0.3)
    assert r.error_type == "timeout"
    assert time.monotonic() - t0 < 1.3


def test_huge_result_is_capped(school_db):
    r = execute(
        school_db,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) SELECT x FROM c",
        max_rows=50,
    )
    assert r.ok and r.truncated and len(r.rows) == 50


def test_huge_value_is_refused(school_db):
    r = execute(school_db, "SELECT length(zeroblob(200000000))")
    assert not r.ok and "too big" in r.error.lower()


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELEC name FROM teacher", "syntax_error"),
        ("SELECT name FROM nope", "unknown_table"),
        ("SELECT nope FROM teacher", "unknown_column"),
        ("SELECT abs(-9223372036854775808)", "runtime_error"),
    ],
)
def test_errors_are_classified(school_db, sql, kind):
    r = execute(school_db, sql)
    assert not r.ok and r.error_type == kind


def test_not_a_sqlite_file(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("hello, I am text")
    with pytest.raises(ExecutionError, match="not a SQLite database"):
        open_readonly(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ExecutionError, match="not found"):
        open_readonly(tmp_path / "nope.sqlite")
