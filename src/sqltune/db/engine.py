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

Values come back normalised the same way on every engine (:func:`sqltune.db.executor.normalize_value`), so the
judge compares results with one set of rules: exact decimals become ``int`` when integral and
``float`` otherwise; dates and times become SQLite's ISO text (``2024-01-31``,
``2024-01-31 12:00:00``); booleans become 0/1; NULL is ``None`` everywhere.
"""

from __future__ import annotations

from pathlib import Path

from sqltune.db.executor import Executor, fetch, normalize_row, normalize_value, warn_privileged
from sqltune.db.target import ENGINES, resolve
from sqltune.errors import ExecutionError

__all__ = ["Executor", "connect", "fetch", "normalize_row", "normalize_value", "warn_privileged"]


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
