"""Run untrusted SQL on PostgreSQL: read-only, one statement at a time, time-limited, row-limited.

What this protects against, and how (each property has a hostile-input test against a real server):

* **A role that could do harm.** At connect, the role is checked and refused (with the SQL that
  creates a read-only role) when it is a superuser, may create roles or databases, replicates,
  bypasses row security, is a member of ``pg_read_server_files``, ``pg_write_server_files``,
  ``pg_execute_server_program`` or ``pg_signal_backend``, or holds INSERT, UPDATE, DELETE,
  TRUNCATE or TRIGGER on any table, or CREATE on the database or any schema. A READ ONLY
  transaction does not stop ``COPY ... TO PROGRAM`` or ``COPY ... TO '/file'`` for a superuser:
  only the role does. ``allow_privileged_role`` skips the refusal (and says so); everything below
  still holds, but server files and programs are then up to the role.
* **Writes.** The session has ``default_transaction_read_only = on`` and every statement runs
  alone in its own ``BEGIN READ ONLY`` transaction that is rolled back afterwards, so
  ``COMMIT; DROP ...``, ``SET SESSION CHARACTERISTICS ... READ WRITE``, ``set_config(...)``,
  writes inside CTEs or ``DO`` blocks, ``nextval`` and ``SELECT ... FOR UPDATE`` are refused by the
  server or undone.
* **Stacked statements.** Every statement goes over the *extended* query protocol (a prepared
  statement), where the server refuses more than one command; psycopg would otherwise send a
  parameterless query over the simple protocol, which runs them all.
* **Runaway queries.** ``statement_timeout`` and ``lock_timeout`` are set for each transaction; if
  the server has not stopped the statement one second after its limit, the client cancels it
  (psycopg's cancel request). ``client_connection_check_interval`` makes the server end a
  backend whose client (a killed worker) went away, and session-level advisory locks are released
  after every statement. No backend is left running a query.
* **Huge results.** At most ``max_rows`` rows are fetched; bytes are capped by the judge.

A statement may end the role's other sessions (``pg_terminate_backend``, allowed on one's own
role): a session that loses its connection while it opens, or while a statement runs, opens again
and runs the statement once more (it is read-only), so a hostile answer costs no other answer its
verdict.

What it does not protect against: what the role may read (grant it only the tables it should
see).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from sqltune.db.execute import ROW_CAP, QueryResult
from sqltune.db.executor import REOPEN_SECONDS, fetch, warn_privileged, while_lost
from sqltune.db.target import Target, require_driver
from sqltune.errors import ExecutionError

_ROLE_FLAGS = """
SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
       pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'),
       pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'),
       pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'),
       pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'),
       has_database_privilege(current_database(), 'CREATE'),
       current_user, current_database()
FROM pg_roles r WHERE r.rolname = current_user
"""
_TABLE_WRITES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), p.priv
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (VALUES ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('TRIGGER')) AS p(priv)
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND has_table_privilege(c.oid, p.priv)
LIMIT 5
"""
_SCHEMA_CREATE = """
SELECT quote_ident(nspname) FROM pg_namespace
WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'
  AND has_schema_privilege(oid, 'CREATE')
"""
_FLAG_NAMES = (
    "is a superuser",
    "may create roles (CREATEROLE)",
    "may create databases (CREATEDB)",
    "may replicate (REPLICATION)",
    "bypasses row-level security (BYPASSRLS)",
    "is a member of pg_read_server_files",
    "is a member of pg_write_server_files",
    "is a member of pg_execute_server_program",
    "is a member of pg_signal_backend",
    "may CREATE in the database",
)

READ_ONLY_ROLE_SQL = """CREATE ROLE sqltune_reader LOGIN;
GRANT CONNECT ON DATABASE {db} TO sqltune_reader;
GRANT USAGE ON SCHEMA public TO sqltune_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO sqltune_reader;
ALTER ROLE sqltune_reader SET default_transaction_read_only = on;"""
"""The read-only role to create (as the database's owner), for the refusal message and the docs."""


def role_problems(conn: Any) -> tuple[list[str], str, str]:
    """What the connected role may do beyond reading: (problems, role, database)."""
    with conn.cursor() as cur:
        cur.execute(_ROLE_FLAGS, prepare=True)
        row = cur.fetchone()
        if row is None:
            return ["its role is not in pg_roles"], "?", "?"
        problems = [name for name, flag in zip(_FLAG_NAMES, row[:10], strict=True) if flag]
        role, database = row[10], row[11]
        cur.execute(_TABLE_WRITES, prepare=True)
        writes = cur.fetchall()
        if writes:
            problems.append("holds " + ", ".join(f"{p} on {t}" for t, p in writes) + ("" if len(writes) < 5 else ", …"))
        cur.execute(_SCHEMA_CREATE, prepare=True)
        schemas = [r[0] for r in cur.fetchall()]
        if schemas:
            problems.append("may CREATE in schema " + ", ".join(schemas))
    conn.rollback()
    return problems, role, database


def _classify(e: Exception) -> str:
    state = getattr(getattr(e, "diag", None), "sqlstate", None) or ""
    msg = str(e).lower()
    if state == "57014" or "statement timeout" in msg or "canceling statement" in msg:
        return "timeout"
    if "multiple commands" in msg:
        return "multiple_statements"
    if state.startswith("42601") or state == "42000":
        return "syntax_error"
    if state == "42P01":
        return "unknown_table"
    if state == "42703":
        return "unknown_column"
    if state in ("25006", "42501", "25001") or "read-only" in msg or "permission denied" in msg:
        return "write_attempt"
    return "runtime_error"


class PostgresExecutor:
    """The PostgreSQL implementation of :class:`sqltune.db.engine.Executor`."""

    engine = "postgresql"

    def __init__(self, target: Target, allow_privileged_role: bool = False):
        self.psycopg = require_driver("postgresql")
        self.target = target
        try:
            self.conn, (problems, role, database) = while_lost(self._open_checked, self._lost)
        except self.psycopg.Error as e:
            raise ExecutionError(
                f"{target.raw}: the connection was lost as it opened, again for {REOPEN_SECONDS:g} s ({_first_line(e)})"
            ) from None
        self.privileged = problems
        if problems and not allow_privileged_role:
            self.conn.close()
            raise ExecutionError(refusal(target, role, database, problems))
        if problems:
            warn_privileged(
                target.raw, role, problems, "server files and programs (COPY ... TO PROGRAM, COPY ... TO '/file')"
            )

    def _open_checked(self) -> tuple[Any, tuple[list[str], str, str]]:
        conn = self._open()
        try:
            return conn, role_problems(conn)
        except self.psycopg.Error as e:
            conn.close()
            if self._lost(e):  # another session of this role ended this one (pg_terminate_backend) as it opened
                raise
            raise ExecutionError(f"{self.target.raw}: cannot read the role's privileges ({_first_line(e)})") from None

    def _lost(self, e: BaseException) -> bool:
        """The error says the server ended the session or the connection went (not a refusal)."""
        if not isinstance(e, self.psycopg.OperationalError):
            return False
        state = getattr(getattr(e, "diag", None), "sqlstate", None) or ""
        msg = str(e)
        return state in ("57P01", "08000", "08003", "08006") or any(
            m in msg
            for m in ("terminating connection", "closed the connection", "connection is lost", "consuming input")
        )

    def _open(self) -> Any:
        """One connection; a lost one is raised as it is (to open again), a refusal as an ExecutionError."""
        kw: dict[str, Any] = {
            "host": self.target.host,
            "dbname": self.target.database or None,
            "user": self.target.user or None,
            "port": self.target.port,
            "connect_timeout": 10,
            "application_name": "sqltune",
            "options": "-c default_transaction_read_only=on -c client_connection_check_interval=1000",
            "autocommit": False,
        }
        kw.update(dict(self.target.query))
        kw = {k: v for k, v in kw.items() if v is not None}
        try:
            conn = self.psycopg.connect(**kw)
        except self.psycopg.Error as e:
            if self._lost(e):  # cut off mid-handshake: open again
                raise
            raise ExecutionError(f"{self.target.raw}: cannot connect ({_first_line(e)})") from None
        conn.read_only = True  # every transaction psycopg opens is BEGIN READ ONLY
        return conn

    def _connect(self) -> Any:
        try:
            return while_lost(self._open, self._lost)
        except self.psycopg.Error as e:
            raise ExecutionError(f"{self.target.raw}: cannot connect ({_first_line(e)})") from None

    def run(self, sql: str, timeout: float = 30.0, max_rows: int | None = ROW_CAP, retry: bool = True) -> QueryResult:
        start = time.monotonic()
        if self.conn.closed:
            try:
                self.conn = self._connect()
            except ExecutionError as e:
                return QueryResult(False, error=str(e), error_type="runtime_error")
        conn = self.conn
        cancelled = threading.Event()

        def cancel() -> None:
            cancelled.set()
            with contextlib.suppress(Exception):  # the connection may be gone: nothing left to cancel
                self.conn.cancel_safe(timeout=2.0)

        ms = f"{max(1, int(timeout * 1000))}ms"
        timer = threading.Timer(timeout + 1.0, cancel)
        timer.daemon = True
        setup = "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"
        try:
            conn.execute(setup, (ms, ms))
        except self.psycopg.OperationalError:  # the connection was lost (a server restart, a terminated backend)
            try:
                self.conn.close()
                self.conn = conn = self._connect()
                conn.execute(setup, (ms, ms))
            except (ExecutionError, self.psycopg.Error) as e:
                return QueryResult(False, error=_first_line(e), error_type="runtime_error")
        try:
            with conn.cursor() as cur:
                timer.start()
                cur.execute(sql, prepare=True)
                rows, truncated = fetch(cur, max_rows)
                columns = [d.name for d in cur.description or []]
            return QueryResult(True, rows, columns, truncated=truncated, seconds=time.monotonic() - start)
        except self.psycopg.Error as e:
            state = getattr(getattr(e, "diag", None), "sqlstate", None)
            if retry and not cancelled.is_set() and (state == "57P01" or conn.closed or conn.broken):
                # another session of this role ended ours (pg_terminate_backend): the statement is read-only,
                # so it runs again once, on a new connection
                timer.cancel()
                self._reset()
                return self.run(sql, max(0.001, timeout - (time.monotonic() - start)), max_rows, retry=False)
            kind = "timeout" if cancelled.is_set() else _classify(e)
            return QueryResult(False, error=_first_line(e), error_type=kind, seconds=time.monotonic() - start)
        finally:
            timer.cancel()
            self._reset()

    def _reset(self) -> None:
        """End the statement's transaction and release what a session keeps past it (advisory locks)."""
        conn = self.conn
        try:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock_all()")
            conn.rollback()
        except self.psycopg.Error:
            conn.close()  # reconnect on the next statement

    def close(self) -> None:
        self.conn.close()


def refusal(target: Target, role: str, database: str, problems: list[str]) -> str:
    return (
        f"{target.raw}: the role {role!r} can do more than read ({'; '.join(problems)}), so model-written SQL "
        "will not run as it. Connect as a read-only role; as the database's owner:\n"
        + READ_ONLY_ROLE_SQL.format(db=database)
        + "\nthen use postgresql://sqltune_reader@host/db. (--allow-privileged-role runs anyway: every statement "
        "stays in a read-only transaction, but server files and programs are then up to the role.)"
    )


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
