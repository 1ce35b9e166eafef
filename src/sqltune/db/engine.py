"""One executor interface, one implementation per engine.

Every piece of untrusted SQL (model-written or user-written) runs through :func:`connect`'s
executor: ``run(sql, timeout, max_rows) -> QueryResult``. Each engine's module opens with what it
guards and how; none of them decides anything from the SQL text: the engine (read-only
connections and transactions, one statement per call, server-side time limits) and the database
role (checked at connect) hold.

========== ================================ ========================================
engine      module                            read-only held by
========== ================================ ========================================
sqlite      :mod:`sqltune.db.execute`         ``mode=ro`` file, ``query_only``, authorizer
postgresql  :mod:`sqltune.db.postgres`        role checked, READ ONLY transactions, extended protocol
mysql       :mod:`sqltune.db.mysql`           role checked, READ ONLY transactions, no multi-statements
duckdb      :mod:`sqltune.db.duckdb_exec`     ``read_only`` file, external access off and locked
========== ================================ ========================================

Values come back normalised the same way on every engine (:func:`normalize_value`), so the
judge compares results with one set of rules: exact decimals become ``int`` when integral and
``float`` otherwise; dates and times become SQLite's ISO text (``2024-01-31``,
``2024-01-31 12:00:00``); booleans become 0/1; NULL is ``None`` everywhere.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import logging
import uuid
from pathlib import Path
from typing import Any, Protocol

from sqltune.db.execute import QueryResult
from sqltune.db.target import ENGINES, resolve
from sqltune.errors import ExecutionError


class Executor(Protocol):
    """An open, read-only connection to one database."""

    engine: str

    def run(self, sql: str, timeout: float = 30.0, max_rows: int | None = None) -> QueryResult: ...

    def close(self) -> None: ...


def connect(db: str | Path, allow_privileged_role: bool = False) -> Executor:
    """Open ``db`` (a SQLite path or a URL) for untrusted SQL.

    On PostgreSQL and MySQL/MariaDB the role is checked first: one that can write, create, run
    programs or read server files is refused with the SQL that creates a read-only role, unless
    ``allow_privileged_role`` (then every other guard still holds; see the engines' modules)."""
    t = resolve(db)
    if t.engine == "sqlite":
        from sqltune.db.execute import SqliteExecutor

        return SqliteExecutor(t.path)
    if t.engine == "postgresql":
        from sqltune.db.postgres import PostgresExecutor

        return PostgresExecutor(t, allow_privileged_role)
    if t.engine == "mysql":
        from sqltune.db.mysql import MysqlExecutor

        return MysqlExecutor(t, allow_privileged_role)
    if t.engine == "duckdb":
        from sqltune.db.duckdb_exec import DuckdbExecutor

        return DuckdbExecutor(t)
    raise ExecutionError(
        f"{t.engine} URL: sqltune reads this database's schema but runs SQL only on {', '.join(ENGINES)}"
    )


_WARNED: set[str] = set()


def warn_privileged(target: str, role: str, problems: list[str], unguarded: str) -> None:
    """Say loudly, once per process and database, that a privileged role runs model SQL
    (``--allow-privileged-role``) and what is then no longer guaranteed."""
    if target in _WARNED:
        return
    _WARNED.add(target)
    logging.getLogger("sqltune.db").warning(
        "%s: running as %r, which can do more than read (%s), because --allow-privileged-role is set. Every "
        "statement still runs alone in a read-only transaction with its time limit; NOT guaranteed: %s.",
        target,
        role,
        "; ".join(problems),
        unguarded,
    )


def normalize_value(v: Any) -> Any:
    """One value as the judge compares it (see the module docstring)."""
    if v is None or isinstance(v, int | float | str):
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            return float(v)
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, _dt.date | _dt.time):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    return str(v)


def normalize_row(row: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    return tuple(normalize_value(v) for v in row)


def fetch(cursor: Any, max_rows: int | None) -> tuple[list[tuple[Any, ...]], bool]:
    """Up to ``max_rows`` rows of an executed DB-API cursor (normalised) and whether there were more."""
    if cursor.description is None:
        return [], False
    if max_rows is None:
        return [normalize_row(r) for r in cursor.fetchall()], False
    rows = cursor.fetchmany(max_rows + 1)
    return [normalize_row(r) for r in rows[:max_rows]], len(rows) > max_rows
