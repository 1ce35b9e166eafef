"""What a ``--db`` value names: a SQLite file, or a database server or file reached by URL.

Accepted everywhere a database is named (data, predict, eval, ask, serve, mcp, LangChain):

* a SQLite path (``shop.sqlite``) or ``sqlite:///shop.sqlite``;
* ``postgresql://user@host:5432/db`` (also ``postgres://`` and ``postgresql+psycopg://``): psycopg 3;
* ``mysql://user@host:3306/db`` (also ``mariadb://`` and ``mysql+pymysql://``): PyMySQL, MySQL or MariaDB;
* ``duckdb:///file.duckdb`` (``duckdb:////abs/path.duckdb``): the duckdb package;
* any other SQLAlchemy URL: its schema can be read, but sqltune runs no SQL there.

**Passwords never travel in a URL.** A URL is written into records, manifests, reports and logs,
so one that carries a password is refused (without repeating it). Passwords come from where each
driver looks for them: ``PGPASSWORD`` or ``~/.pgpass`` for PostgreSQL (libpq reads them),
``MYSQL_PWD`` or the option file ``~/.my.cnf`` (``[client]`` section) for MySQL/MariaDB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqltune.errors import ExecutionError

ENGINES = ("sqlite", "postgresql", "mysql", "duckdb")
"""The engines sqltune runs SQL on."""

SQLGLOT_DIALECT = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "duckdb": "duckdb"}
"""The sqlglot dialect of each engine."""

EXTRA = {"postgresql": "postgres", "mysql": "mysql", "duckdb": "duckdb"}
"""The pip extra that brings each engine's driver: ``pip install 'sqltune[postgres]'``."""

_SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
    "duckdb": "duckdb",
}


@dataclass(frozen=True)
class Target:
    """A parsed ``--db`` value. ``engine`` is one of :data:`ENGINES`, or ``other``."""

    engine: str
    raw: str
    """The value as given (never holds a password: see :func:`resolve`)."""
    path: str = ""
    """The file, for sqlite and duckdb."""
    host: str = ""
    port: int | None = None
    user: str = ""
    database: str = ""
    query: tuple[tuple[str, str], ...] = ()

    @property
    def dialect(self) -> str:
        """The sqlglot dialect name (``sqlite``, ``postgres``, ``mysql``, ``duckdb``)."""
        return SQLGLOT_DIALECT.get(self.engine, self.engine)

    @property
    def name(self) -> str:
        """A short name: the file's stem, or the database's name."""
        if self.path:
            return Path(self.path).stem
        return self.database or self.host or self.engine

    def sqlalchemy_url(self) -> str:
        """The URL with SQLAlchemy's explicit driver (the password, if any, comes from the driver's own sources)."""
        if self.engine == "sqlite":
            return f"sqlite:///{Path(self.path).resolve()}"
        if self.engine == "duckdb":
            return f"duckdb:///{Path(self.path).resolve()}"
        if self.engine == "other":
            return self.raw
        driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}[self.engine]
        auth = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        q = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{driver}://{auth}{self.host}{port}/{self.database}" + (f"?{q}" if q else "")

    def connect_args(self) -> dict[str, Any]:
        """What SQLAlchemy's driver needs beyond the URL: MySQL's password from MYSQL_PWD or ~/.my.cnf."""
        if self.engine != "mysql":
            return {}
        args: dict[str, Any] = {}
        if mysql_password() is not None:
            args["password"] = mysql_password()
        cnf = os.path.expanduser("~/.my.cnf")
        if os.path.exists(cnf):
            args["read_default_file"] = cnf
        return args

    def sqlalchemy_engine(self, **kw: Any) -> Any:
        """A SQLAlchemy engine for this database (schema reading, loading, roles): the driver sqltune names."""
        import sqlalchemy as sa

        if self.engine in EXTRA:
            require_driver(self.engine)
        return sa.create_engine(self.sqlalchemy_url(), connect_args=self.connect_args(), **kw)

    def __str__(self) -> str:
        return self.raw


def is_url(db: str | Path) -> bool:
    return "://" in str(db)


def resolve(db: str | Path) -> Target:
    """Parse ``db`` (a path or a URL); refuse a URL that carries a password."""
    raw = str(db)
    if not is_url(raw):
        return Target("sqlite", raw, path=raw)
    scheme, _, rest = raw.partition("://")
    engine = _SCHEMES.get(scheme.lower())
    # SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute/path.db (the same for duckdb)
    path = rest[1:] if rest.startswith("/") else rest
    if engine == "sqlite":
        return Target("sqlite", raw, path=path)
    if engine == "duckdb":
        if not path or path == ":memory:":
            raise ExecutionError(
                f"{raw}: name a DuckDB file (duckdb:///path/to/file.duckdb); an in-memory DuckDB has no tables"
            )
        return Target("duckdb", raw, path=path)
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
    except ImportError:  # pragma: no cover - SQLAlchemy is a base requirement
        raise ExecutionError("reading database URLs needs SQLAlchemy: pip install sqlalchemy") from None
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ExecutionError(
            f"{_redact(raw)}: not a database URL; use postgresql://user@host/db, mysql://user@host/db, "
            "duckdb:///file.duckdb or a SQLite path"
        ) from None
    if url.password:
        raise ExecutionError(
            f"{url.render_as_string(hide_password=True)}: the URL carries a password, and URLs are written into "
            "records, manifests and logs; remove it and give the password the driver's own way: "
            "PGPASSWORD or ~/.pgpass (PostgreSQL), MYSQL_PWD or ~/.my.cnf (MySQL/MariaDB)"
        )
    if engine is None:
        return Target("other", raw, host=url.host or "", database=url.database or "")
    query = tuple(sorted((k, str(v)) for k, v in url.query.items()))
    return Target(
        engine,
        raw,
        host=url.host or "localhost",
        port=url.port,
        user=url.username or "",
        database=url.database or "",
        query=query,
    )


def _redact(raw: str) -> str:
    """``raw`` with anything between ``:`` and ``@`` of its authority replaced (for messages about a bad URL)."""
    scheme, sep, rest = raw.partition("://")
    auth, at, tail = rest.partition("@")
    if at and ":" in auth:
        auth = auth.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{auth}{at}{tail}"


def display(db: str | Path) -> str:
    """How to name ``db`` in a message, a log or a report: never with a password."""
    return _redact(str(db)) if is_url(db) else str(db)


def engine_of(db: str | Path) -> str:
    """The engine ``db`` names, without connecting (``other`` for an unknown URL scheme)."""
    if not is_url(db):
        return "sqlite"
    return _SCHEMES.get(str(db).partition("://")[0].lower(), "other")


def require_driver(engine: str) -> Any:
    """Import and return the driver module of ``engine``; a missing one is a one-line error naming the extra."""
    module = {"postgresql": "psycopg", "mysql": "pymysql", "duckdb": "duckdb"}.get(engine)
    if module is None:
        raise ExecutionError(f"sqltune runs SQL on {', '.join(ENGINES)}; not on {engine}")
    try:
        return __import__(module)
    except ImportError:
        raise ExecutionError(
            f"the {engine} driver ({module}) is not installed: pip install 'sqltune[{EXTRA[engine]}]'"
        ) from None


def mysql_password() -> str | None:
    """``MYSQL_PWD`` when set (PyMySQL does not read it itself); else None (then ``~/.my.cnf``)."""
    return os.environ.get("MYSQL_PWD")
