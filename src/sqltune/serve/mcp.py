"""``sqltune mcp``: the served databases as an MCP server (``pip install 'sqltune[mcp]'``, the official SDK 2.x).

Four tools, all marked read-only (``readOnlyHint``), all through the same engine-enforced
read-only executor as ``sqltune serve`` (a ``mode=ro`` connection with ``query_only`` and an
authorizer, a hard timeout, row and byte caps; the SQL text is never inspected for this):

* ``list_tables(db?)``: the tables, with their columns' names;
* ``describe_table(table, db?)``: columns, types, primary and foreign keys, the CREATE statement
  and a few rows;
* ``ask(question, db?, evidence?)``: the ask engine, SQL and rows or "I don't know" with the reason;
* ``run_sql(sql, db?)``: a query of the client's own.

``db`` is a database's name (its file's stem) and may be left out when one database is served.
The model is loaded on the first ``ask``, so that the server answers ``initialize`` at once.
Transports: stdio (the default, what desktop clients spawn) or streamable HTTP.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlglot import exp

from sqltune.db.target import SQLGLOT_DIALECT
from sqltune.errors import ConfigError, SqltuneError
from sqltune.serve.ask import AskConfig, Database, ask, run_sql

try:
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError("sqltune's MCP server needs the MCP SDK 2.x: pip install 'sqltune[mcp]'") from None

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class Tools:
    """What the tools do, apart from the protocol (tested directly and through a real MCP client)."""

    def __init__(self, databases: list[Database], load_backend: Any, cfg: AskConfig, style: str | None = None):
        from sqltune.judge import Judge

        cfg.validate()
        if not databases:
            raise ConfigError("give at least one database (--db FILE)")
        self.databases = {d.name: d for d in databases}
        self.cfg, self.style = cfg, style
        self.judge = Judge(workers=1, timeout=cfg.timeout, allow_privileged_role=cfg.allow_privileged_role)
        self._load_backend = load_backend
        self._backend: Any = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.judge.close()

    def db(self, name: str | None) -> Database:
        if name is None or name == "":
            if len(self.databases) == 1:
                return next(iter(self.databases.values()))
            raise ConfigError(f"several databases are served; pass db= one of: {', '.join(self.databases)}")
        if name not in self.databases:
            raise ConfigError(f"no database {name!r}; served: {', '.join(self.databases)}")
        return self.databases[name]

    def list_tables(self, db: str | None = None) -> dict[str, Any]:
        d = self.db(db)
        return {
            "db": d.name,
            "tables": [{"name": t.name, "columns": [c.name for c in t.columns]} for t in d.schema.tables],
        }

    def describe_table(self, table: str, db: str | None = None, sample_rows: int = 3) -> dict[str, Any]:
        d = self.db(db)
        t = next((t for t in d.schema.tables if t.name.lower() == table.lower()), None)
        if t is None:
            names = ", ".join(x.name for x in d.schema.tables)
            raise ConfigError(f"no table {table!r} in {d.name}; its tables: {names}")
        fks = [
            {"column": f.column, "references": f"{f.ref_table}.{f.ref_column}"}
            for f in d.schema.foreign_keys
            if f.table == t.name
        ]
        n = max(0, min(sample_rows, 20))
        rows = run_sql(
            self.judge,
            d,
            exp.select("*").from_(exp.to_table(t.name, quoted=True)).limit(n).sql(dialect=SQLGLOT_DIALECT[d.dialect]),
            self.cfg,
        )
        return {
            "db": d.name,
            "table": t.name,
            "columns": [{"name": c.name, "type": c.type, "primary_key": c.primary_key} for c in t.columns],
            "foreign_keys": fks,
            "ddl": t.ddl,
            "sample": {"columns": rows["columns"], "rows": rows["rows"]},
        }

    def run_sql(self, sql: str, db: str | None = None) -> dict[str, Any]:
        return run_sql(self.judge, self.db(db), sql, self.cfg)

    def ask(self, question: str, db: str | None = None, evidence: str = "") -> dict[str, Any]:
        d = self.db(db)
        with self._lock:
            if self._backend is None:
                self._backend, style = self._load_backend()
                self.style = self.style or style
            a = ask(question, d, self._backend, self.judge, self.cfg, evidence, self.style or "ddl")
        return a.to_dict()


def create_server(tools: Tools) -> MCPServer:
    names = ", ".join(tools.databases)
    server = MCPServer(
        name="sqltune",
        instructions=(
            f"Read-only access to the database(s) {names}. Use list_tables and describe_table to see the "
            "schema, ask to have sqltune's model write and run the SQL for a question, run_sql to run your own "
            "query. Nothing can write: the database engine refuses it."
        ),
    )

    def guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SqltuneError as e:  # a user's mistake: the message, not a traceback
            raise ToolError(str(e)) from None

    @server.tool(annotations=READ_ONLY)
    def list_tables(db: str | None = None) -> dict[str, Any]:
        """List the tables of a served database, with their columns."""
        return guard(tools.list_tables, db)

    @server.tool(annotations=READ_ONLY)
    def describe_table(table: str, db: str | None = None) -> dict[str, Any]:
        """One table: columns and types, primary and foreign keys, its CREATE statement and three rows."""
        return guard(tools.describe_table, table, db)

    @server.tool(annotations=READ_ONLY)
    def ask(question: str, db: str | None = None, evidence: str = "") -> dict[str, Any]:
        """Answer a question in plain words: the SQL sqltune's model wrote, its rows, or "I don't know" and why."""
        return guard(tools.ask, question, db, evidence)

    @server.tool(annotations=READ_ONLY)
    def run_sql(sql: str, db: str | None = None) -> dict[str, Any]:
        """Run a SQL query read-only (the engine refuses writes), with a timeout and row and byte caps."""
        return guard(tools.run_sql, sql, db)

    return server
