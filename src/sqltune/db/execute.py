"""Run untrusted SQL against a SQLite file: read-only, time-limited, row-limited.

What this protects against, and how (each property has a hostile-input test):

* **Writes.** The file is opened with ``mode=ro`` (SQLite refuses every write at the pager
  level), ``PRAGMA query_only`` is on, and an authorizer denies ``ATTACH``/``DETACH``
  (which could otherwise create files) and every pragma except harmless reads.
  The database file's bytes never change.
* **Runaway queries.** A progress handler checks a monotonic deadline every
  ``_PROGRESS_STEPS`` virtual-machine instructions and aborts the statement; SQLite
  unwinds and the connection stays usable. A recursive CTE that never ends, or a
  cross join of large tables, stops within the timeout plus a few milliseconds, and no
  thread is left running (unlike a thread-based ``func_timeout``).
* **Huge results and values.** At most ``max_rows`` rows are fetched (the result says it was
  truncated); a single string or blob is capped by ``SQLITE_LIMIT_LENGTH``.

What it does not protect against: a malicious SQLite *file* (open only files you trust), and
CPU spent by the database engine inside a single virtual-machine instruction (bounded by
the length limit). The other engines' executors are in :mod:`sqltune.db.engine`.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqltune.errors import ExecutionError

ROW_CAP = 100_000
"""Rows fetched per judged query at most: the one row-cap policy (eval, voting, verification, serving)."""
_PROGRESS_STEPS = 10_000
_MAX_VALUE_BYTES = 50_000_000
_SQLITE_MAGIC = b"SQLite format 3\x00"

# Authorizer action codes (sqlite3 module exposes them as constants).
_DENIED_ACTIONS = {
    sqlite3.SQLITE_ATTACH,
    sqlite3.SQLITE_DETACH,
}
_ALLOWED_PRAGMAS = {"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info", "database_list"}


def _authorizer(action: int, arg1: Any, arg2: Any, dbname: Any, source: Any) -> int:
    if action in _DENIED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and str(arg1).lower() not in _ALLOWED_PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _decode(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def check_sqlite_file(path: str | Path) -> Path:
    """Return the path if it is a readable SQLite file; else raise ExecutionError saying why."""
    path = Path(path)
    if not path.exists():
        raise ExecutionError(f"{path}: database file not found")
    if not path.is_file():
        raise ExecutionError(f"{path}: not a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as e:
        raise ExecutionError(f"{path}: cannot read database file ({e.strerror})") from None
    if head != _SQLITE_MAGIC:
        raise ExecutionError(f"{path}: not a SQLite database (bad header); point to a .sqlite/.db file")
    return path


def open_readonly(path: str | Path, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open a SQLite file read-only with the sandbox described in this module's docstring."""
    path = check_sqlite_file(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=check_same_thread)
    except sqlite3.Error as e:
        raise ExecutionError(f"{path}: cannot open database ({e})") from None
    conn.text_factory = _decode
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)
    conn.execute("PRAGMA query_only = ON")
    conn.set_authorizer(_authorizer)
    return conn


@dataclass
class QueryResult:
    """The outcome of one query. ``error_type`` is None when ``ok``."""

    ok: bool
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    truncated: bool = False
    seconds: float = 0.0


def classify_error(message: str) -> str:
    """Map a SQLite error message to sqltune's error types."""
    m = message.lower()
    if "interrupted" in m or "timeout" in m:
        return "timeout"
    if "syntax error" in m or "incomplete input" in m or "unrecognized token" in m:
        return "syntax_error"
    if "no such table" in m:
        return "unknown_table"
    if "no such column" in m:
        return "unknown_column"
    if "readonly" in m or "not authorized" in m or "read-only" in m or "authorization denied" in m:
        return "write_attempt"
    return "runtime_error"


def run_query(conn: sqlite3.Connection, sql: str, timeout: float = 30.0, max_rows: int | None = ROW_CAP) -> QueryResult:
    """Run ``sql`` on an open read-only connection, stopping it after ``timeout`` seconds."""
    start = time.monotonic()
    deadline = start + timeout
    timed_out = False

    def progress() -> int:
        nonlocal timed_out
        if time.monotonic() > deadline:
            timed_out = True
            return 1
        return 0

    conn.set_progress_handler(progress, _PROGRESS_STEPS)
    try:
        cur = conn.execute(sql)
        columns = [d[0] for d in cur.description or []]
        if max_rows is None:
            rows = cur.fetchall()
            truncated = False
        else:
            rows = cur.fetchmany(max_rows + 1)
            truncated = len(rows) > max_rows
            rows = rows[:max_rows]
        cur.close()
        return QueryResult(True, rows, columns, truncated=truncated, seconds=time.monotonic() - start)
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, MemoryError) as e:
        msg = str(e) or type(e).__name__
        kind = "timeout" if timed_out else classify_error(msg)
        if isinstance(e, sqlite3.Warning) and "one statement" in msg:
            kind = "multiple_statements"
        return QueryResult(False, error=msg, error_type=kind, seconds=time.monotonic() - start)
    finally:
        conn.set_progress_handler(None, 0)


def execute(path: str | Path, sql: str, timeout: float = 30.0, max_rows: int | None = ROW_CAP) -> QueryResult:
    """Open ``path`` read-only, run one query with a timeout and a row cap, close."""
    conn = open_readonly(path)
    try:
        return run_query(conn, sql, timeout=timeout, max_rows=max_rows)
    finally:
        conn.close()


class SqliteExecutor:
    """The SQLite implementation of :class:`sqltune.db.engine.Executor`."""

    engine = "sqlite"

    def __init__(self, path: str | Path):
        self.conn = open_readonly(path)

    def run(self, sql: str, timeout: float = 30.0, max_rows: int | None = ROW_CAP) -> QueryResult:
        return run_query(self.conn, sql, timeout=timeout, max_rows=max_rows)

    def close(self) -> None:
        self.conn.close()
