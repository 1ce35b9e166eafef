"""SQL written for SQLite (Spider, BIRD, synthesized pairs), rewritten for another engine by sqlglot.

:func:`transpile` parses with sqlglot's SQLite dialect and generates the target's, after two
steps that SQLite's own rules need:

* **Names are lower-cased**, as :mod:`sqltune.db.load` loads them (SQLite compares names without
  case; PostgreSQL folds unquoted names and keeps quoted ones as written).
* **A double-quoted word that names no column is a string**, as SQLite reads it (Spider's gold
  queries write ``WHERE name = "Alice"``); every other engine would read a column.

A transpiled query is used only after it is run on the target and returns the SQLite query's
result (:func:`sqltune.db.dialect.agree`); the callers count and name the failures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqltune.db.target import SQLGLOT_DIALECT
from sqltune.errors import ExecutionError
from sqltune.sqlutil import parse


def transpile(sql: str, engine: str, columns: Iterable[str] = (), lower: bool = True) -> str:
    """``sql`` (SQLite) for ``engine`` (sqlite, postgresql, mysql, duckdb). ``columns``: the database's column
    names, so that a double-quoted word that names none of them becomes a string.

    ``lower``: names lower-cased, for a database :mod:`sqltune.db.load` loaded (Spider's and BIRD's golds
    name tables and columns in any case). Without it, every name is quoted exactly as written: for SQL
    whose names come from the live database itself (synthesized pairs), whatever their case.

    Raises ExecutionError when sqlglot cannot read or write the query."""
    if engine == "sqlite":
        return sql
    target = SQLGLOT_DIALECT.get(engine)
    if target is None:
        raise ExecutionError(f"no SQL dialect for engine {engine!r}")
    tree = parse(sql, "sqlite")
    if tree is None:
        raise ExecutionError("sqlglot cannot parse the query as SQLite")
    known = {c.lower() for c in columns}
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}

    def fix(node: exp.Expression) -> exp.Expression:
        if (
            isinstance(node, exp.Column)
            and not node.table
            and isinstance(node.this, exp.Identifier)
            and node.this.quoted
            and known
            and node.name.lower() not in known
            and node.name.lower() not in aliases
        ):
            return exp.Literal.string(node.name)
        if lower and isinstance(node, exp.Identifier):
            return exp.Identifier(this=node.name.lower(), quoted=node.quoted)
        return node

    tree = tree.transform(fix)
    for select in list(tree.find_all(exp.Select)):
        _aggregate_bare_columns(select)
    try:
        return tree.sql(dialect=target, identify=not lower)
    except SqlglotError as e:
        raise ExecutionError(f"sqlglot cannot write the query for {engine}: {e}") from None


def _aggregate_bare_columns(select: exp.Select) -> None:
    """SQLite lets a grouped query select a column it neither groups nor aggregates (one of the group's
    values); PostgreSQL and DuckDB refuse it. Such a column becomes ``MIN(column)``: the same value when
    it depends on the group's key (a name grouped by its table's id, the usual case)."""
    group = select.args.get("group")
    if not group:
        return
    keys = {(k.table.lower(), k.name.lower()) for k in group.expressions if isinstance(k, exp.Column)}
    names = {n for _, n in keys}
    for proj in select.expressions:
        col = proj.this if isinstance(proj, exp.Alias) else proj
        if not isinstance(col, exp.Column) or isinstance(col.this, exp.Star):
            continue
        key = (col.table.lower(), col.name.lower())
        if key in keys or (not col.table and col.name.lower() in names) or ("", col.name.lower()) in keys:
            continue
        col.replace(exp.Min(this=col.copy()))


def _canon(v: Any) -> Any:
    if isinstance(v, str):
        try:
            v = float(v) if v.strip() else v
        except ValueError:
            return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else round(v, 6)
    if isinstance(v, bytes):
        return v
    return v


def agree(a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]], ordered: bool = False) -> bool:
    """Whether two engines' results are the same rows (as bags, or in order when ``ordered``); floats
    compared to 6 decimal places, since engines print and sum floating point differently, and the text of a
    number equal to the number (the loader types numbers stored as text as numbers)."""
    ra = [tuple(_canon(v) for v in r) for r in a]
    rb = [tuple(_canon(v) for v in r) for r in b]
    if ordered:
        return ra == rb
    key = repr
    return sorted(map(key, ra)) == sorted(map(key, rb))


def tied_alternatives(
    sql: str, run: Callable[[str], Sequence[Sequence[Any]]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int] | None:
    """For a SQLite query that ends in ``ORDER BY … LIMIT k``: the rows every right answer must hold (those
    ordered strictly before the k-th row's sort key), the rows tied with the k-th (any of which may fill the
    rest), and k. ``run`` runs SQLite SQL and returns its rows. None for any other query, or when the query
    cannot be rewritten."""
    tree = parse(sql, "sqlite")
    if not isinstance(tree, exp.Select) or not tree.args.get("order") or not tree.args.get("limit"):
        return None
    try:
        k = int(tree.args["limit"].expression.name)
    except (AttributeError, ValueError):
        return None
    n = len(tree.expressions)
    keys = [o.this.copy() for o in tree.args["order"].expressions]
    if any(isinstance(key, exp.Literal) for key in keys):
        return None  # ORDER BY 1: a position, not a value
    wide = tree.copy()
    wide.set("limit", None)
    wide = wide.select(*keys, append=True)
    try:
        rows = [tuple(_canon(v) for v in r) for r in run(wide.sql(dialect="sqlite"))]
    except Exception:
        return None
    if len(rows) <= k:
        return None
    kth = rows[k - 1][n:]
    first = next(i for i, r in enumerate(rows) if r[n:] == kth)
    must = [r[:n] for r in rows[:first]]
    tied = [r[:n] for r in rows[first:] if r[n:] == kth]
    return must, tied, k


def agree_up_to_ties(
    sql: str, a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]], run: Callable[[str], Sequence[Sequence[Any]]]
) -> bool:
    """Whether ``b`` is a right answer to the SQLite query ``sql`` whose SQLite result is ``a``: the same rows,
    or, for ``ORDER BY … LIMIT k`` over tied sort keys, the rows that must be there and others of the tie."""
    if agree(a, b):
        return True
    alt = tied_alternatives(sql, run)
    if alt is None:
        return False
    must, tied, k = alt
    got = Counter(tuple(_canon(v) for v in r) for r in b)
    if sum(got.values()) != min(k, len(must) + len(tied)):
        return False
    rest = got - Counter(must)
    if sum(rest.values()) != sum(got.values()) - len(must):
        return False  # a row that had to be there is missing
    return not (rest - Counter(tied))
