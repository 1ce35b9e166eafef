"""Copy a SQLite database (Spider, BIRD, the demo, your own) into PostgreSQL, MySQL/MariaDB or DuckDB.

Through SQLAlchemy: the tables are described as SQLAlchemy ``Table`` objects and created by the
target dialect's own DDL compiler; rows go in with the driver's batched inserts. Needs a role
that may create the database and its tables (the loading role, never the one that runs models' SQL).

* **Names** are lower-cased, so that unquoted SQL finds them on every engine (PostgreSQL folds
  unquoted names to lower case; SQLite compares names without case).
  :func:`sqltune.db.dialect.transpile` lower-cases the names in transpiled queries the same way.
* **Types follow the values the column holds** (SQLite stores any value in any column): a column
  of integers becomes BIGINT, of numbers DOUBLE PRECISION (numbers stored as text count as numbers,
  so that ``horsepower > 150`` and joins on them work), of text TEXT (VARCHAR on MySQL where
  it is short enough to index), of blobs a binary type; a column with no values keeps its declared
  type's generic form. Dates stay text, as SQLite keeps them, so results compare equal.
* **Primary keys** are kept unless the data breaks them (duplicates or NULLs), and **foreign keys**
  unless their columns are not the referenced table's key or rows point nowhere: each key
  dropped is reported with its reason.
* **Text compares by code point** on MySQL/MariaDB (``utf8mb4_bin`` / no-pad), as on SQLite and
  PostgreSQL, not case-insensitively as MySQL does by default.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqltune.db.execute import check_sqlite_file
from sqltune.db.target import Target, require_driver, resolve
from sqltune.errors import ExecutionError


@dataclass
class LoadReport:
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    """Rows per table, as loaded."""
    dropped_keys: list[str] = field(default_factory=list)
    """Keys not created, each with its reason."""
    seconds: float = 0.0


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_kind(conn: sqlite3.Connection, table: str, column: str) -> tuple[str, int]:
    """The storage classes in a SQLite column, as one kind (integer, real, text, blob, null), and the
    longest text's length."""
    rows = conn.execute(
        f"SELECT typeof({_quote(column)}) AS k, MAX(length({_quote(column)})) FROM {_quote(table)} GROUP BY k"
    ).fetchall()
    kinds = {k for k, _ in rows if k != "null"}
    longest = max((n or 0 for k, n in rows if k == "text"), default=0)
    if not kinds:
        return "null", 0
    if "text" in kinds and kinds <= {"integer", "real", "text"}:
        numbers = [
            _number(v)
            for (v,) in conn.execute(
                f"SELECT DISTINCT {_quote(column)} FROM {_quote(table)} WHERE typeof({_quote(column)}) = 'text'"
            )
        ]
        if all(n is not None for n in numbers):  # numbers written as text: numbers on the target
            kinds = (kinds - {"text"}) | {"integer" if isinstance(n, int) else "real" for n in numbers}
    if kinds == {"integer"}:
        return "integer", 0
    if kinds <= {"integer", "real"}:
        return "real", 0
    if kinds == {"blob"}:
        return "blob", 0
    return "text", longest


def _number(v: object) -> int | float | None:
    """``v`` as a number when it is the text of one (``"18"``, ``" 3.5"``), else None."""
    if not isinstance(v, str) or not v.strip():
        return None
    try:
        return int(v)
    except ValueError:
        pass
    try:
        f = float(v)
    except ValueError:
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _sa_type(sa: Any, kind: str, longest: int, declared: str, engine: str, key: bool) -> Any:
    if kind == "integer":
        return sa.BigInteger()
    if kind == "real":
        return sa.Double()
    if kind == "blob":
        return sa.LargeBinary()
    if kind == "null":
        d = declared.upper()
        if "INT" in d:
            return sa.BigInteger()
        if any(x in d for x in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
            return sa.Double()
    if engine == "mysql" and (key or longest <= 700):
        return sa.String(max(32, min(768, 2 * longest)))
    return sa.Text()


def _create_database(t: Target, replace: bool) -> None:
    """Create the target database (PostgreSQL/MySQL) when missing; drop it first when ``replace``."""
    import sqlalchemy as sa

    if t.engine == "duckdb":
        p = Path(t.path)
        if replace and p.exists():
            p.unlink()
        p.parent.mkdir(parents=True, exist_ok=True)
        return
    name = t.database
    if not name:
        raise ExecutionError(f"{t.raw}: name the database to load into (…/dbname)")
    admin = resolve(t.raw.rsplit("/", 1)[0] + "/" + ("postgres" if t.engine == "postgresql" else ""))
    engine = admin.sqlalchemy_engine(isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        if t.engine == "postgresql":
            exists = c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            q = '"' + name.replace('"', '""') + '"'
            if exists and replace:
                c.execute(sa.text(f"DROP DATABASE {q} WITH (FORCE)"))
                exists = None
            if not exists:
                c.execute(sa.text(f"CREATE DATABASE {q}"))
        else:
            q = "`" + name.replace("`", "``") + "`"
            if replace:
                c.execute(sa.text(f"DROP DATABASE IF EXISTS {q}"))
            version = c.execute(sa.text("SELECT VERSION()")).scalar() or ""
            collation = "utf8mb4_nopad_bin" if "mariadb" in version.lower() else "utf8mb4_0900_bin"
            c.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {q} CHARACTER SET utf8mb4 COLLATE {collation}"))
    engine.dispose()


def load_sqlite(source: str | Path, target: str, replace: bool = False) -> LoadReport:
    """Copy the SQLite file ``source`` into ``target`` (a postgresql://, mysql:// or duckdb:/// URL)."""
    import sqlalchemy as sa

    t = resolve(target)
    if t.engine not in ("postgresql", "mysql", "duckdb"):
        raise ExecutionError(f"{target}: load into a postgresql://, mysql:// or duckdb:/// URL")
    require_driver(t.engine)
    path = check_sqlite_file(source)
    start = time.monotonic()
    report = LoadReport(target=t.raw)
    _create_database(t, replace)
    src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    src.text_factory = lambda b: b.decode("utf-8", errors="replace")
    engine = t.sqlalchemy_engine()
    meta = sa.MetaData()
    tables: dict[str, tuple[str, sa.Table, list[str]]] = {}
    fks: list[tuple[str, list[str], str, list[str]]] = []
    try:
        names = [
            r[0]
            for r in src.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        for name in names:
            info = src.execute(f"PRAGMA table_info({_quote(name)})").fetchall()
            pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
            if (
                pk
                and src.execute(
                    f"SELECT 1 FROM {_quote(name)} GROUP BY {', '.join(map(_quote, pk))} HAVING COUNT(*) > 1 LIMIT 1"
                ).fetchone()
            ):
                report.dropped_keys.append(f"{name}: primary key ({', '.join(pk)}) dropped: duplicate values")
                pk = []
            if (
                pk
                and src.execute(
                    f"SELECT 1 FROM {_quote(name)} WHERE {' OR '.join(f'{_quote(c)} IS NULL' for c in pk)} LIMIT 1"
                ).fetchone()
            ):
                report.dropped_keys.append(f"{name}: primary key ({', '.join(pk)}) dropped: NULL values")
                pk = []
            cols = []
            for r in info:
                kind, longest = _column_kind(src, name, r[1])
                cols.append(
                    sa.Column(
                        r[1].lower(),
                        _sa_type(sa, kind, longest, r[2] or "", t.engine, r[1] in pk),
                        primary_key=r[1] in pk,
                        autoincrement=False,
                        nullable=r[1] not in pk,
                    )
                )
            table = sa.Table(name.lower(), meta, *cols)
            tables[name.lower()] = (name, table, [r[1] for r in info])
            for fk in src.execute(f"PRAGMA foreign_key_list({_quote(name)})").fetchall():
                fks.append((name, [fk[3]], fk[2], [fk[4]] if fk[4] else []))
        meta.drop_all(engine)
        meta.create_all(engine)
        for low, (name, table, names_in_order) in tables.items():
            rows = src.execute(f"SELECT {', '.join(map(_quote, names_in_order))} FROM {_quote(name)}").fetchall()
            _insert(engine, t, table, rows)
            report.rows[low] = len(rows)
        _add_foreign_keys(src, engine, t, tables, fks, report)
    except sa.exc.SQLAlchemyError as e:
        raise ExecutionError(f"{t.raw}: loading {path.name} failed ({str(e).splitlines()[0]})") from None
    finally:
        src.close()
        engine.dispose()
    report.seconds = time.monotonic() - start
    return report


def _insert(engine: Any, t: Target, table: Any, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    cols = [c.name for c in table.columns]
    kinds = [c.type for c in table.columns]
    import sqlalchemy as sa

    def cast(v: Any, ty: Any) -> Any:
        if v is None:
            return None
        if isinstance(ty, sa.Text | sa.String) and not isinstance(v, str):
            return str(v)
        if isinstance(ty, sa.BigInteger) and isinstance(v, str):
            return int(v)
        if isinstance(ty, sa.Double) and isinstance(v, str):
            return float(v)
        return v

    data = [tuple(cast(v, k) for v, k in zip(r, kinds, strict=True)) for r in rows]
    if t.engine == "duckdb":
        raw = engine.raw_connection()
        try:
            import pyarrow as pa

            duck = raw.driver_connection
            duck.register("sqltune_batch", pa.table({c: [r[i] for r in data] for i, c in enumerate(cols)}))
            duck.execute(f"INSERT INTO {_quote(table.name)} SELECT * FROM sqltune_batch")
            duck.unregister("sqltune_batch")
            raw.commit()
        finally:
            raw.close()
        return
    with engine.begin() as c:
        for i in range(0, len(data), 5000):
            c.execute(table.insert(), [dict(zip(cols, r, strict=True)) for r in data[i : i + 5000]])


def _add_foreign_keys(
    src: sqlite3.Connection, engine: Any, t: Target, tables: dict[str, Any], fks: list[Any], report: LoadReport
) -> None:
    import sqlalchemy as sa

    for n, (child, cols, parent, refs) in enumerate(fks):
        what = f"{child}({', '.join(cols)}) -> {parent}({', '.join(refs)})"
        ptable = tables.get(parent.lower())
        if ptable is None:
            report.dropped_keys.append(f"foreign key {what} dropped: no table {parent}")
            continue
        pk = [c.name for c in ptable[1].primary_key.columns]
        refs = [r.lower() for r in refs] or pk
        if not pk or refs != pk:
            report.dropped_keys.append(f"foreign key {what} dropped: not the referenced table's primary key")
            continue
        orphan = src.execute(
            f"SELECT 1 FROM {_quote(child)} c WHERE c.{_quote(cols[0])} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {_quote(parent)} p WHERE p.{_quote(refs[0])} = c.{_quote(cols[0])}) LIMIT 1"
        ).fetchone()
        if orphan:
            report.dropped_keys.append(f"foreign key {what} dropped: rows point to no {parent} row")
            continue
        fk = sa.ForeignKeyConstraint(
            [c.lower() for c in cols], [f"{parent.lower()}.{r}" for r in refs], name=f"fk_{child.lower()}_{n}"
        )
        tables[child.lower()][1].append_constraint(fk)
        try:
            with engine.begin() as c:
                c.execute(sa.schema.AddConstraint(fk))
        except sa.exc.SQLAlchemyError as e:
            report.dropped_keys.append(
                f"foreign key {what} dropped: {str(e.orig if hasattr(e, 'orig') else e).splitlines()[0]}"
            )
