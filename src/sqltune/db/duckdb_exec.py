"""Run untrusted SQL on a DuckDB file: read-only, one statement at a time, time-limited, row-limited.

What this protects against, and how (each property has a hostile-input test):

* **Writes to the database.** The file is opened with ``read_only=True``: DuckDB refuses every
  write and DDL on it, and ``ATTACH ':memory:'`` too. Each statement runs in a transaction that is
  rolled back, so a temporary table does not outlive it.
* **Files and the network.** A read-only DuckDB still reads ``read_csv('/etc/passwd')`` and
  writes ``COPY t TO 'file'``: the connection is opened with ``enable_external_access = false``
  (no file or network access outside the database: COPY, read_*, ATTACH of files, INSTALL and
  LOAD of extensions all refused), extension autoloading off, and ``lock_configuration = true``,
  so a statement cannot turn any of it back on.
* **Stacked statements.** The statement is split by DuckDB's own parser
  (``extract_statements``), and more than one is refused before anything runs.
* **Runaway queries.** The connection is interrupted (``interrupt()``) at the time limit; DuckDB
  stops the query and the connection stays usable.
* **Huge results.** At most ``max_rows`` rows are fetched; bytes are capped by the judge.

What it does not protect against: a malicious DuckDB *file* (open only files you trust).
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from sqltune.db.execute import ROW_CAP, QueryResult
from sqltune.db.executor import fetch
from sqltune.db.target import Target, require_driver
from sqltune.errors import ExecutionError

SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


def _classify(e: Exception) -> str:
    name = type(e).__name__
    msg = str(e).lower()
    if name == "InterruptException" or "interrupted" in msg:
        return "timeout"
    if name == "ParserException":
        return "syntax_error"
    if name == "CatalogException" and "table with name" in msg:
        return "unknown_table"
    if name == "BinderException" and "column" in msg:
        return "unknown_column"
    if name == "PermissionException" or "read-only" in msg or "read only" in msg:
        return "write_attempt"
    return "runtime_error"


class DuckdbExecutor:
    """The DuckDB implementation of :class:`sqltune.db.engine.Executor`."""

    engine = "duckdb"

    def __init__(self, target: Target):
        self.duckdb = require_driver("duckdb")
        path = Path(target.path)
        if not path.is_file():
            raise ExecutionError(f"{path}: DuckDB file not found")
        try:
            self.conn: Any = self.duckdb.connect(str(path), read_only=True, config=dict(SANDBOX))
        except self.duckdb.Error as e:
            raise ExecutionError(f"{path}: cannot open DuckDB database ({e})") from None

    def run(self, sql: str, timeout: float = 30.0, max_rows: int | None = ROW_CAP) -> QueryResult:
        start = time.monotonic()
        interrupted = threading.Event()

        def interrupt() -> None:
            interrupted.set()
            self.conn.interrupt()

        try:
            statements = self.conn.extract_statements(sql)
        except self.duckdb.Error as e:
            return QueryResult(False, error=str(e).splitlines()[0], error_type=_classify(e))
        if len(statements) != 1:
            msg = f"one statement at a time ({len(statements)} given)"
            return QueryResult(False, error=msg, error_type="multiple_statements" if statements else "empty_prediction")
        timer = threading.Timer(timeout, interrupt)
        timer.daemon = True
        try:
            self.conn.begin()
            timer.start()
            cur = self.conn.execute(statements[0])
            rows, truncated = fetch(cur, max_rows)
            columns = [d[0] for d in cur.description or []]
            return QueryResult(True, rows, columns, truncated=truncated, seconds=time.monotonic() - start)
        except self.duckdb.Error as e:
            kind = "timeout" if interrupted.is_set() else _classify(e)
            return QueryResult(False, error=str(e).splitlines()[0], error_type=kind, seconds=time.monotonic() - start)
        finally:
            timer.cancel()
            with contextlib.suppress(self.duckdb.Error):
                self.conn.rollback()

    def close(self) -> None:
        self.conn.close()
