"""Run untrusted SQL on MySQL or MariaDB: read-only, one statement at a time, time-limited, row-limited.

What this protects against, and how (each property has a hostile-input test against a real server):

* **A role that could do harm.** At connect, the account's privileges (``information_schema``'s
  user, schema, table and column privileges) are checked, and an account that holds anything
  beyond SELECT, SHOW VIEW, SHOW DATABASES and USAGE, or any privilege WITH GRANT OPTION (so
  SUPER, FILE, every write, DDL, EXECUTE, LOCK TABLES, CREATE TEMPORARY TABLES ...) is refused,
  with the SQL that creates a read-only account, unless ``allow_privileged_role``; everything
  below still holds then, but ``SELECT ... INTO OUTFILE`` and ``LOAD_FILE`` are up to FILE.
* **Writes.** Before every statement the session is set to ``TRANSACTION READ ONLY`` again (undoing
  a ``SET SESSION TRANSACTION READ WRITE`` that ran before) and the statement runs inside
  ``START TRANSACTION READ ONLY``, then is rolled back: the server refuses writes, DDL (which
  would otherwise commit implicitly), ``FOR UPDATE`` and ``LOCK TABLES``, conditional comments
  (``/*!50000 ... */``) included, since the server, not a filter, reads them.
* **Stacked statements.** The client never asks for CLIENT_MULTI_STATEMENTS: the server parses one
  statement per call and refuses the rest.
* **Runaway queries.** MariaDB's ``max_statement_time`` (MySQL's ``max_execution_time``) stops the
  statement on the server; if it still runs one second after its limit, ``KILL QUERY`` is sent from
  a second connection. User-level locks (``GET_LOCK``) are released after every statement.
* **Huge results.** At most ``max_rows`` rows are fetched; bytes are capped by the judge.

The session also sets ``div_precision_increment = 30``, so that averages and divisions keep the
precision SQLite's floating point has (MySQL rounds them to 4 decimals by default).

A statement may end the account's other sessions (``KILL USER``, allowed on one's own account): a
session that loses its connection while it opens, or while a statement runs, opens again and runs
the statement once more (it is read-only), so a hostile answer costs no other answer its verdict.

What it does not protect against: what the account may read (grant it only what it should see).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from sqltune.db.execute import ROW_CAP, QueryResult
from sqltune.db.executor import REOPEN_SECONDS, fetch, warn_privileged, while_lost
from sqltune.db.target import Target, mysql_password, require_driver
from sqltune.errors import ExecutionError

_READ_PRIVILEGES = {"SELECT", "SHOW VIEW", "SHOW DATABASES", "USAGE"}

READ_ONLY_ACCOUNT_SQL = """CREATE USER 'sqltune_reader'@'%' IDENTIFIED BY '...';
GRANT SELECT, SHOW VIEW ON `{db}`.* TO 'sqltune_reader'@'%';"""
"""The read-only account to create, for the refusal message and the docs."""


def account_problems(conn: Any) -> tuple[list[str], str]:
    """What the connected account may do beyond reading: (problems, account)."""
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        account = cur.fetchone()[0]
        user, _, host = account.rpartition("@")
        grantee = f"'{user}'@'{host}'"
        found: dict[str, list[str]] = {}
        for table, scope in (
            ("USER_PRIVILEGES", "'*.*'"),
            ("SCHEMA_PRIVILEGES", "CONCAT(TABLE_SCHEMA, '.*')"),
            ("TABLE_PRIVILEGES", "CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)"),
            ("COLUMN_PRIVILEGES", "CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', COLUMN_NAME)"),
        ):
            cur.execute(
                f"SELECT PRIVILEGE_TYPE, IS_GRANTABLE, {scope} FROM information_schema.{table} WHERE GRANTEE = %s",
                (grantee,),
            )
            for priv, grantable, where in cur.fetchall():
                if priv.upper() not in _READ_PRIVILEGES:
                    found.setdefault(priv.upper(), []).append(where)
                if grantable == "YES":
                    found.setdefault("GRANT OPTION", []).append(where)
    problems = [f"{p} on {', '.join(sorted(set(w))[:3])}" for p, w in sorted(found.items())]
    return problems, account


def _classify(e: Exception) -> str:
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    msg = str(e).lower()
    if code in (1969, 3024, 1317) or "interrupted" in msg or "max_statement_time" in msg:
        return "timeout"
    if code == 1064:
        return "syntax_error"
    if code == 1146:
        return "unknown_table"
    if code == 1054:
        return "unknown_column"
    if code in (1792, 1142, 1044, 1045, 1227, 1370, 1143) or "read only" in msg or "denied" in msg:
        return "write_attempt"
    return "runtime_error"


class MysqlExecutor:
    """The MySQL/MariaDB implementation of :class:`sqltune.db.engine.Executor`."""

    engine = "mysql"

    def __init__(self, target: Target, allow_privileged_role: bool = False):
        self.pymysql = require_driver("mysql")
        self.target = target
        try:
            self.conn, (problems, account) = while_lost(self._open_checked, _lost)
        except self.pymysql.Error as e:
            raise ExecutionError(
                f"{target.raw}: the connection was lost as it opened, again for {REOPEN_SECONDS:g} s ({_message(e)})"
            ) from None
        self.privileged = problems
        if problems and not allow_privileged_role:
            self.conn.close()
            raise ExecutionError(refusal(target, account, problems))
        if problems:
            warn_privileged(target.raw, account, problems, "server files (SELECT ... INTO OUTFILE, LOAD_FILE)")

    def _open_checked(self) -> tuple[Any, tuple[list[str], str]]:
        conn = self._open()
        try:
            self.mariadb = "mariadb" in conn.get_server_info().lower()
            return conn, account_problems(conn)
        except self.pymysql.Error as e:
            with contextlib.suppress(Exception):
                conn.close()
            if _lost(e):  # another session of this account ended this one (KILL USER) as it opened
                raise
            raise ExecutionError(f"{self.target.raw}: cannot read the account's privileges ({_message(e)})") from None

    def _connect(self) -> Any:
        try:
            return while_lost(self._open, _lost)
        except self.pymysql.Error as e:
            raise ExecutionError(f"{self.target.raw}: cannot connect ({_message(e)})") from None

    def _open(self) -> Any:
        """One connection; a lost one is raised as it is (to open again), a refusal as an ExecutionError."""
        import os

        kw: dict[str, Any] = {
            "host": self.target.host,
            "port": self.target.port or 3306,
            "user": self.target.user or None,
            "database": self.target.database or None,
            "connect_timeout": 10,
            "autocommit": False,
            "charset": "utf8mb4",
            "client_flag": 0,  # never CLIENT_MULTI_STATEMENTS
        }
        pw = mysql_password()
        if pw is not None:
            kw["password"] = pw
        cnf = os.path.expanduser("~/.my.cnf")
        if os.path.exists(cnf):
            kw["read_default_file"] = cnf
        kw.update(dict(self.target.query))
        kw = {k: v for k, v in kw.items() if v is not None}
        conn = None
        try:
            conn = self.pymysql.connect(**kw)
            with conn.cursor() as cur:
                cur.execute("SET SESSION div_precision_increment = 30")
            return conn
        except self.pymysql.Error as e:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            if _lost(e):  # cut off mid-handshake: open again
                raise
            raise ExecutionError(f"{self.target.raw}: cannot connect ({_message(e)})") from None

    def run(self, sql: str, timeout: float = 30.0, max_rows: int | None = ROW_CAP, retry: bool = True) -> QueryResult:
        start = time.monotonic()
        if not self.conn.open:
            try:
                self.conn = self._connect()
            except ExecutionError as e:
                return QueryResult(False, error=str(e), error_type="runtime_error")
        conn = self.conn
        killed = threading.Event()
        thread_id = conn.thread_id()

        def kill() -> None:
            killed.set()
            try:
                other = self._open()
                try:
                    with other.cursor() as c:
                        c.execute(f"KILL QUERY {int(thread_id)}")
                finally:
                    other.close()
            except Exception:  # the query may have ended meanwhile
                pass

        limit = (
            f"SET SESSION max_statement_time = {max(timeout, 0.001):.3f}"
            if self.mariadb
            else f"SET SESSION max_execution_time = {max(1, int(timeout * 1000))}"
        )
        timer = threading.Timer(timeout + 1.0, kill)
        timer.daemon = True
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
                cur.execute(limit)
                cur.execute("START TRANSACTION READ ONLY")
                timer.start()
                cur.execute(sql)
                rows, truncated = fetch(cur, max_rows)
                columns = [d[0] for d in cur.description or []]
            seconds = time.monotonic() - start
            if seconds >= timeout:  # SLEEP() and BENCHMARK() return quietly when the server interrupts them
                return QueryResult(
                    False, error=f"stopped at the {timeout:g} s limit", error_type="timeout", seconds=seconds
                )
            return QueryResult(True, rows, columns, truncated=truncated, seconds=seconds)
        except self.pymysql.Error as e:
            if retry and not killed.is_set() and _lost(e):
                # another session of this account ended ours (KILL USER, KILL CONNECTION): the statement is
                # read-only, so it runs again once, on a new connection
                timer.cancel()
                self._reset()
                with contextlib.suppress(Exception):
                    self.conn.close()
                return self.run(sql, max(0.001, timeout - (time.monotonic() - start)), max_rows, retry=False)
            kind = "timeout" if killed.is_set() else _classify(e)
            return QueryResult(False, error=_message(e), error_type=kind, seconds=time.monotonic() - start)
        finally:
            timer.cancel()
            self._reset()

    def _reset(self) -> None:
        try:
            self.conn.rollback()
            with self.conn.cursor() as cur:
                cur.execute("DO RELEASE_ALL_LOCKS()")
        except self.pymysql.Error:
            self.conn.close()

    def close(self) -> None:
        if self.conn.open:
            self.conn.close()


def refusal(target: Target, account: str, problems: list[str]) -> str:
    return (
        f"{target.raw}: the account {account!r} can do more than read ({'; '.join(problems)}), so model-written "
        "SQL will not run as it. Connect as a read-only account; as an administrator:\n"
        + READ_ONLY_ACCOUNT_SQL.format(db=target.database or "your_db")
        + "\nthen use mysql://sqltune_reader@host/db with MYSQL_PWD or ~/.my.cnf. (--allow-privileged-role runs "
        "anyway: every statement stays in a read-only transaction, but server files are then up to the account.)"
    )


def _lost(e: BaseException) -> bool:
    """The error says the connection is gone (2006, 2013: the client lost it; 1927: the server killed it)."""
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    return code in (2006, 2013, 1927, 4031)


def _message(e: Exception) -> str:
    if len(e.args) >= 2:
        return f"({e.args[0]}) {e.args[1]}"
    return str(e) or type(e).__name__
