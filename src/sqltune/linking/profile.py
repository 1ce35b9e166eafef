"""What synthesis knows of a database: its tables, columns, keys and values, read from the live file.

:func:`profile_database` reads the schema (``sqltune.db.schema.introspect``: tables, columns,
declared types, primary and foreign keys), then per table its row count and a sample of rows
(the first ``sample_rows``, so a table of a million rows costs what a small one does), and per
column: its kind (text, number, date, other) from the declared type and the sampled values, the
distinct values of the sample with their counts, and the share of NULLs. Foreign keys are the
declared ones plus inferred ones: a column named like another table's primary key
(``singer_id`` -> ``singer.singer_id``, ``artist_id`` -> ``artist.id``) whose sampled values
are found there. Names read as words: ``Song_release_year`` is "song release year".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqltune.db.dialect import transpile
from sqltune.db.engine import connect
from sqltune.db.execute import QueryResult
from sqltune.db.schema import ForeignKey, introspect
from sqltune.db.target import display, resolve
from sqltune.errors import DataError, ExecutionError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")


def words(name: str) -> str:
    """A column or table name as lower-case words: ``Song_release_year`` -> ``song release year``,
    ``firstName`` -> ``first name``, ``"class room"`` -> ``class room``."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    s = re.sub(r"[_\W]+", " ", s)
    return " ".join(s.lower().split()) or name.lower()


_KEEP_S = ("ss", "us", "is", "news", "series", "species", "status", "data")


def singular(phrase: str) -> str:
    """A table's words as one thing, for "each ..." and "every ...": ``order items`` -> ``order item``,
    ``categories`` -> ``category``, ``addresses`` -> ``address``; ``singer`` and ``status`` stay."""
    head, _, last = phrase.rpartition(" ")
    if last.endswith(_KEEP_S) or len(last) < 4:
        return phrase
    if last.endswith("ies"):
        last = last[:-3] + "y"
    elif last.endswith(("sses", "xes", "ches", "shes", "zes")):
        last = last[:-2]
    elif last.endswith("s"):
        last = last[:-1]
    return f"{head} {last}" if head else last


@dataclass
class ColumnProfile:
    name: str
    type: str
    kind: str
    """text | number | date | other"""
    primary_key: bool
    distinct: int
    """Distinct non-NULL values in the sample."""
    null_share: float
    values: list[Any]
    """The sample's values, most frequent first (at most 20)."""

    @property
    def words(self) -> str:
        return words(self.name)

    @property
    def is_key(self) -> bool:
        low = self.name.lower()
        return self.primary_key or low == "id" or low.endswith(("_id", " id")) or self.name.endswith(("Id", "ID"))


@dataclass
class TableProfile:
    name: str
    rows: int
    columns: list[ColumnProfile]

    @property
    def words(self) -> str:
        """The table's name as words, in the singular (``orders`` -> "order"): plurals are made from it."""
        return singular(words(self.name))

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name.lower() == name.lower()), None)


@dataclass
class DatabaseProfile:
    path: str
    db_id: str
    tables: list[TableProfile]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    inferred_keys: list[ForeignKey] = field(default_factory=list)
    engine: str = "sqlite"
    """The engine the database runs on: the shapes write SQLite SQL, transpiled for any other."""

    def table(self, name: str) -> TableProfile:
        return next(t for t in self.tables if t.name.lower() == name.lower())

    @property
    def joins(self) -> list[ForeignKey]:
        return self.foreign_keys + self.inferred_keys


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kind(declared: str, values: list[Any]) -> str:
    t = declared.upper()
    present = [v for v in values if v is not None]
    if present:
        if all(isinstance(v, str) and _DATE.match(v) for v in present):
            return "date"
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            return "number"
        if all(isinstance(v, str) for v in present):
            return "date" if any(k in t for k in ("DATE", "TIME")) else "text"
        return "other"
    if any(k in t for k in ("DATE", "TIME")):
        return "date"
    if any(k in t for k in ("INT", "REAL", "FLOA", "DOUB", "NUM", "DEC")):
        return "number"
    return "text" if any(k in t for k in ("CHAR", "TEXT", "CLOB")) else "other"


def profile_database(path: str | Path, sample_rows: int = 2000, allow_privileged_role: bool = False) -> DatabaseProfile:
    """Profile one database (a SQLite file or a URL, read through its read-only executor); one that cannot
    be read or has no table raises :class:`DataError` naming it and the fix."""
    target = resolve(path)
    p = Path(target.path) if target.engine == "sqlite" else None
    if p is not None and not p.is_file():
        raise DataError(f"{p}: no such file; pass a SQLite database file or a database URL with --db")
    name = str(p) if p is not None else display(path)
    try:
        schema = introspect(str(path))
        ex = connect(str(path), allow_privileged_role=allow_privileged_role)
    except ExecutionError as e:
        raise DataError(
            f"{name}: not a readable database ({e}); pass a SQLite file or a database URL with --db"
        ) from None
    columns = [c.name for t in schema.tables for c in t.columns]

    def run(sql: str) -> QueryResult:
        if target.engine != "sqlite":
            sql = transpile(sql, target.engine, columns, lower=False)
        return ex.run(sql, timeout=60, max_rows=None)

    try:
        tables = []
        for t in schema.tables:
            q = _quote(t.name)
            counted = run(f"SELECT count(*) FROM {q}")
            sampled = run(f"SELECT * FROM {q} LIMIT {int(sample_rows)}")
            if not counted.ok or not sampled.ok:
                raise DataError(f"{name}: table {t.name!r} cannot be read ({counted.error or sampled.error})")
            n = counted.rows[0][0]
            names, rows = sampled.columns, sampled.rows
            cols = []
            for i, c in enumerate(t.columns):
                if i >= len(names):
                    break
                vals = [r[i] for r in rows]
                counts = Counter(v for v in vals if v is not None)
                cols.append(
                    ColumnProfile(
                        name=c.name,
                        type=c.type,
                        kind=_kind(c.type, vals[:200]),
                        primary_key=c.primary_key,
                        distinct=len(counts),
                        null_share=(sum(v is None for v in vals) / len(vals)) if vals else 1.0,
                        values=[v for v, _ in counts.most_common(20)],
                    )
                )
            tables.append(TableProfile(t.name, n, cols))
        if not tables:
            raise DataError(f"{name}: the database has no tables; synthesis needs at least one table with rows")
        where = str(p.resolve()) if p is not None else target.raw
        prof = DatabaseProfile(where, schema.db_id, tables, list(schema.foreign_keys), engine=target.engine)
        prof.inferred_keys = _infer_keys(prof, run)
    finally:
        ex.close()
    return prof


def _infer_keys(prof: DatabaseProfile, run: Callable[[str], QueryResult]) -> list[ForeignKey]:
    """``x_id``-style columns that name another table's key and whose (sampled) values are all found there."""
    declared = {(f.table.lower(), f.column.lower()) for f in prof.foreign_keys}
    out = []
    for t in prof.tables:
        for c in t.columns:
            low = c.name.lower()
            if (t.name.lower(), low) in declared or c.primary_key or not c.values:
                continue
            for other in prof.tables:
                if other is t:
                    continue
                stem = other.name.lower()
                names = {f"{stem}_id", f"{stem}id", f"{stem.rstrip('s')}_id", f"{stem.rstrip('s')}id"}
                target = next(
                    (
                        oc
                        for oc in other.columns
                        if (oc.name.lower() == low and oc.primary_key) or (oc.name.lower() == "id" and low in names)
                    ),
                    None,
                )
                if target is None:
                    continue
                sql = (
                    f"SELECT count(*) FROM (SELECT {_quote(c.name)} AS v FROM {_quote(t.name)} "
                    f"WHERE {_quote(c.name)} IS NOT NULL LIMIT 500) AS s "
                    f"WHERE v NOT IN (SELECT {_quote(target.name)} FROM {_quote(other.name)})"
                )
                try:
                    r = run(sql)
                except ExecutionError:
                    continue
                if r.ok and r.rows and r.rows[0][0] == 0:
                    out.append(ForeignKey(t.name, c.name, other.name, target.name))
                    break
    return out


__all__ = ["ColumnProfile", "DatabaseProfile", "TableProfile", "profile_database", "singular", "words"]
