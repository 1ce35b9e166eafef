"""Read a database schema from the live database: tables, columns, types, keys, sample rows.

SQLite files are read directly (the embedded default). Any other engine SQLAlchemy can reach
(DuckDB, PostgreSQL, ...) is read through its inspector when SQLAlchemy and the driver are
installed. Introspection is cached per database file (path, size and modification time).
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqltune.db.execute import open_readonly
from sqltune.db.target import display, resolve
from sqltune.errors import ExecutionError


@dataclass(frozen=True)
class Column:
    name: str
    type: str = ""
    primary_key: bool = False
    description: str = ""
    value_description: str = ""
    values: tuple[str, ...] = ()
    """Values of this column a question names (set by schema linking's value index, shown in that prompt)."""
    categories: tuple[str, ...] = ()
    """Every value of a column that holds few distinct ones (a status, a segment, a country), shown in prompts
    with ``schema_categories``: a question's words for them ("on their way", "in Germany") meet the
    stored spelling ('shipped', 'Germany')."""


@dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    ddl: str = ""
    sample_columns: tuple[str, ...] = ()
    sample_rows: tuple[tuple[Any, ...], ...] = ()

    @property
    def primary_keys(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]


@dataclass(frozen=True)
class Schema:
    db_id: str
    tables: tuple[Table, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    dialect: str = "sqlite"
    has_descriptions: bool = False

    def table(self, name: str) -> Table | None:
        low = name.lower()
        return next((t for t in self.tables if t.name.lower() == low), None)

    def restrict(self, names: set[str]) -> Schema:
        """The schema limited to the given tables (case-insensitive) and the keys between them."""
        low = {n.lower() for n in names}
        tables = tuple(t for t in self.tables if t.name.lower() in low)
        fks = tuple(f for f in self.foreign_keys if f.table.lower() in low and f.ref_table.lower() in low)
        return replace(self, tables=tables, foreign_keys=fks)

    def without_rows(self) -> Schema:
        return replace(self, tables=tuple(replace(t, sample_rows=(), sample_columns=()) for t in self.tables))

    def without_descriptions(self) -> Schema:
        tables = tuple(
            replace(t, columns=tuple(replace(c, description="", value_description="") for c in t.columns))
            for t in self.tables
        )
        return replace(self, tables=tables, has_descriptions=False)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _introspect_sqlite(path: Path, db_id: str, sample_rows: int) -> Schema:
    conn = open_readonly(path)
    try:
        try:
            master = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            ).fetchall()
        except sqlite3.DatabaseError as e:
            raise ExecutionError(f"{path}: cannot read the schema ({e}); is it a valid SQLite database?") from None
        tables = []
        fks: list[ForeignKey] = []
        for name, ddl in master:
            info = conn.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
            cols = tuple(Column(name=r[1], type=(r[2] or "").upper(), primary_key=r[5] > 0) for r in info)
            sample_cols: tuple[str, ...] = ()
            rows: tuple[tuple[Any, ...], ...] = ()
            if sample_rows > 0:
                cur = conn.execute(f"SELECT * FROM {_quote(name)} LIMIT {int(sample_rows)}")
                sample_cols = tuple(d[0] for d in cur.description)
                rows = tuple(tuple(r) for r in cur.fetchall())
            tables.append(Table(name, cols, ddl=(ddl or "").strip(), sample_columns=sample_cols, sample_rows=rows))
            pk_of = [c.name for c in cols if c.primary_key]
            for r in conn.execute(f"PRAGMA foreign_key_list({_quote(name)})").fetchall():
                ref_table, src, dst = r[2], r[3], r[4]
                if dst is None:  # REFERENCES t without a column means t's primary key
                    dst = _pk_of(conn, ref_table) or (pk_of[0] if pk_of else "")
                fks.append(ForeignKey(name, src, ref_table, dst))
        return Schema(db_id=db_id, tables=tuple(tables), foreign_keys=tuple(fks))
    finally:
        conn.close()


def _pk_of(conn: sqlite3.Connection, table: str) -> str | None:
    try:
        info = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
    except sqlite3.Error:
        return None
    pks = [r[1] for r in info if r[5] > 0]
    return pks[0] if pks else None


def _introspect_sqlalchemy(url: str, db_id: str, sample_rows: int) -> Schema:
    import sqlalchemy as sa

    target = resolve(url)
    try:
        engine = target.sqlalchemy_engine()
        insp = sa.inspect(engine)
        names = insp.get_table_names()
    except ExecutionError:
        raise
    except Exception as e:  # driver missing, connection refused, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ExecutionError(f"{display(url)}: cannot read the schema ({type(e).__name__}: {msg})") from None
    tables, fks = [], []
    dialect = target.engine if target.engine != "other" else engine.dialect.name
    with engine.connect() as conn:
        for name in names:
            pk = set(insp.get_pk_constraint(name).get("constrained_columns") or [])
            cols = tuple(Column(c["name"], str(c["type"]).upper(), c["name"] in pk) for c in insp.get_columns(name))
            sample_cols: tuple[str, ...] = ()
            rows: tuple[tuple[Any, ...], ...] = ()
            if sample_rows > 0:
                tbl = sa.table(name)
                res = conn.execute(sa.select(sa.text("*")).select_from(tbl).limit(sample_rows))
                sample_cols = tuple(res.keys())
                rows = tuple(tuple(r) for r in res.fetchall())
            tables.append(Table(name, cols, sample_columns=sample_cols, sample_rows=rows))
            for fk in insp.get_foreign_keys(name):
                for src, dst in zip(fk["constrained_columns"], fk["referred_columns"], strict=False):
                    fks.append(ForeignKey(name, src, fk["referred_table"], dst))
    engine.dispose()
    return Schema(db_id=db_id, tables=tuple(tables), foreign_keys=tuple(fks), dialect=dialect)


def _introspect_duckdb(path: str, db_id: str, sample_rows: int) -> Schema:
    """DuckDB's own catalog functions, on the sandboxed read-only connection (duckdb-engine's inspector
    queries PostgreSQL catalog types that DuckDB 2 no longer has)."""
    from sqltune.db.duckdb_exec import DuckdbExecutor

    ex = DuckdbExecutor(resolve(f"duckdb:///{path}"))
    try:
        conn = ex.conn
        cols: dict[str, list[tuple[str, str]]] = {}
        for table, column, dtype in conn.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal "
            "AND schema_name = 'main' ORDER BY table_oid, column_index"
        ).fetchall():
            cols.setdefault(table, []).append((column, dtype))
        pks: dict[str, set[str]] = {}
        fks: list[ForeignKey] = []
        for table, kind, names, ref_table, ref_names in conn.execute(
            "SELECT table_name, constraint_type, constraint_column_names, referenced_table, referenced_column_names "
            "FROM duckdb_constraints() WHERE schema_name = 'main'"
        ).fetchall():
            if kind == "PRIMARY KEY":
                pks[table] = set(names)
            elif kind == "FOREIGN KEY":
                fks.extend(ForeignKey(table, a, ref_table, b) for a, b in zip(names, ref_names, strict=False))
        tables = []
        for name, columns in cols.items():
            sample_cols: tuple[str, ...] = ()
            rows: tuple[tuple[Any, ...], ...] = ()
            if sample_rows > 0:
                r = ex.run(f"SELECT * FROM {_quote(name)} LIMIT {int(sample_rows)}")
                sample_cols, rows = tuple(r.columns), tuple(r.rows)
            tcols = tuple(Column(c, t.upper(), c in pks.get(name, set())) for c, t in columns)
            tables.append(Table(name, tcols, sample_columns=sample_cols, sample_rows=rows))
        return Schema(db_id=db_id, tables=tuple(tables), foreign_keys=tuple(fks), dialect="duckdb")
    finally:
        ex.close()


def _read_csv_text(path: Path) -> str:
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace")


def load_descriptions(desc_dir: str | Path) -> dict[str, dict[str, tuple[str, str]]]:
    """Read BIRD's ``database_description/<table>.csv`` files.

    Returns ``{table_lower: {column_lower: (column_description, value_description)}}``.
    """
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for csv_path in sorted(Path(desc_dir).glob("*.csv")):
        cols: dict[str, tuple[str, str]] = {}
        for row in csv.DictReader(io.StringIO(_read_csv_text(csv_path))):
            row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
            name = row.get("original_column_name", "").strip()
            if not name:
                continue
            desc = " ".join(row.get("column_description", "").split())
            values = " ".join(row.get("value_description", "").split())
            cols[name.lower()] = (desc, values)
        out[csv_path.stem.strip().lower()] = cols
    return out


def _with_descriptions(schema: Schema, desc: dict[str, dict[str, tuple[str, str]]]) -> Schema:
    tables = []
    for t in schema.tables:
        td = desc.get(t.name.lower(), {})
        cols = []
        for c in t.columns:
            d, v = td.get(c.name.lower(), ("", ""))
            cols.append(replace(c, description=d, value_description=v))
        tables.append(replace(t, columns=tuple(cols)))
    return replace(schema, tables=tuple(tables), has_descriptions=bool(desc))


class PerSchema:
    """Values computed once per :class:`Schema` object (a ranker's models, a schema's column vectors), the
    least recently used dropped past ``size``. Keyed by the object's id, not its contents (hashing a large schema on
    every question would cost more than the value saves); the schema is kept alive beside its value, so an
    id is never reused while cached."""

    def __init__(self, size: int):
        self.size = size
        self._values: dict[tuple[int, str], tuple[Schema, Any]] = {}

    def get(self, schema: Schema, build: Callable[[], Any], key: str = "") -> Any:
        """The value of ``schema`` (and ``key``), built by ``build()`` the first time."""
        hit = self._values.get((id(schema), key))
        if hit is not None and hit[0] is schema:
            self._values[(id(schema), key)] = self._values.pop((id(schema), key))  # the least recently used goes
            return hit[1]
        value = build()
        if len(self._values) >= self.size:
            self._values.pop(next(iter(self._values)))
        self._values[(id(schema), key)] = (schema, value)
        return value


_CACHE: dict[tuple[Any, ...], Schema] = {}


def introspect(
    db: str | Path,
    db_id: str | None = None,
    sample_rows: int = 0,
    descriptions_dir: str | Path | None = None,
) -> Schema:
    """Read the schema of ``db`` (a SQLite path or a SQLAlchemy URL), cached per file version.

    ``descriptions_dir`` defaults to ``<db dir>/database_description`` when that folder
    exists (BIRD's layout); the descriptions are attached to the columns.
    """
    db_str = str(db)
    target = resolve(db_str)
    if target.engine == "duckdb":
        return _introspect_duckdb(target.path, db_id or target.name, sample_rows)
    if target.engine != "sqlite":
        key: tuple[Any, ...] = (db_str, sample_rows)
        if key not in _CACHE:
            _CACHE[key] = _introspect_sqlalchemy(db_str, db_id or target.name, sample_rows)
        return _CACHE[key]
    path = Path(target.path)
    try:
        st = os.stat(path)
    except OSError:
        raise ExecutionError(f"{path}: database file not found") from None
    if descriptions_dir is None and (path.parent / "database_description").is_dir():
        descriptions_dir = path.parent / "database_description"
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, sample_rows, str(descriptions_dir))
    schema = _CACHE.get(key)
    if schema is None:
        schema = _introspect_sqlite(path, db_id or path.stem, sample_rows)
        if descriptions_dir is not None:
            schema = _with_descriptions(schema, load_descriptions(descriptions_dir))
        _CACHE[key] = schema
    if db_id and schema.db_id != db_id:
        schema = replace(schema, db_id=db_id)
    return schema
