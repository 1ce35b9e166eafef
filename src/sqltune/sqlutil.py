"""SQL helpers on sqlglot: parsing with the SQLite dialect, tables used, normalization."""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect


@functools.cache
def _dialect(name: str) -> Dialect:
    return Dialect.get_or_raise(name)


def parse(sql: str, dialect: str = "sqlite") -> exp.Expression | None:
    """Parse one statement; None if sqlglot cannot parse it. (The dialect object is built once:
    ``sqlglot.parse`` builds a new one per call, which is half the cost of parsing a short query.)"""
    try:
        trees = _dialect(dialect).parse(sql)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError, RecursionError):
        return None
    found = [t for t in trees if isinstance(t, exp.Expression)]
    return found[0] if found else None


def skeleton(sql: str, dialect: str = "sqlite") -> str:
    """The query's structure: its SQL with every literal replaced by ``?`` (lower-cased, normalized
    by sqlglot), so that instances of one template with other values share a skeleton. An
    unparsable query is its own skeleton."""
    tree = parse(sql, dialect)
    if tree is None:
        return " ".join(sql.lower().split())
    masked = tree.transform(lambda n: exp.Placeholder() if isinstance(n, exp.Literal) else n)
    return masked.sql(dialect=dialect).lower()


def tables_used(sql: str, dialect: str = "sqlite") -> set[str]:
    """Lower-cased names of the base tables a query reads (CTE names excluded); empty if unparsable."""
    tree = parse(sql, dialect)
    if tree is None:
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


def sql_features(sql: str, dialect: str = "sqlite") -> set[str]:
    """Which constructs a query uses: join, aggregate, group_by, having, order_by, limit, nested, set_op, where."""
    tree = parse(sql, dialect)
    if tree is None:
        return set()
    feats = set()
    if tree.find(exp.Join):
        feats.add("join")
    if tree.find(exp.AggFunc):
        feats.add("aggregate")
    if tree.find(exp.Group):
        feats.add("group_by")
    if tree.find(exp.Having):
        feats.add("having")
    if tree.find(exp.Order):
        feats.add("order_by")
    if tree.find(exp.Limit):
        feats.add("limit")
    if tree.find(exp.Where):
        feats.add("where")
    if tree.find(exp.Subquery) or any(
        s is not tree and s.find_ancestor(exp.Select) is not None for s in tree.find_all(exp.Select)
    ):
        feats.add("nested")
    if tree.find(exp.Union, exp.Intersect, exp.Except):
        feats.add("set_op")
    return feats
