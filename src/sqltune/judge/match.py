"""Exact match: equality of sqlglot-normalized SQL (only ever asked of predictions right by execution)."""

from __future__ import annotations

import re

from sqlglot import exp

from sqltune.sqlutil import parse

_CLAUSE = re.compile(r"(?i)\b(distinct|where|group|having|order|limit|join|union|intersect|except)\b")


def _clauses(sql: str) -> list[str]:
    """The clause keywords of a query, in order (a necessary condition for equal normalized SQL)."""
    return [m.lower() for m in _CLAUSE.findall(sql)]


def normalize_sql(sql: str, tree: exp.Expression | None = None) -> str | None:
    """A canonical text of the query: sqlglot-parsed (SQLite), identifiers and keywords lower-cased,
    whitespace and quoting normalized. None when it does not parse. A given ``tree`` is modified."""
    if tree is None:
        tree = parse(sql)
    if tree is None:
        return None
    try:
        # SQLite identifiers are case-insensitive, quoted or not: lower-case them all, in place.
        for ident in tree.find_all(exp.Identifier):
            ident.set("this", ident.this.lower())
        # copy=False: the tree is ours to change, and sqlglot's defensive deep copy costs as much as the parse
        return tree.sql(dialect="sqlite", identify=False, copy=False).rstrip(";").strip()
    except Exception:
        return None


def exact_match(
    gold: str, pred: str, gold_tree: exp.Expression | None = None, gold_normalized: str | None = None
) -> bool:
    """Equal after sqlglot normalization (falls back to whitespace/case-normalized text).

    ``gold_tree``, an already parsed gold query, saves a parse (it is modified);
    ``gold_normalized``, the gold's :func:`normalize_sql` text written by the data stage, saves both."""
    if " ".join(gold.split()).rstrip(";") == " ".join(pred.split()).rstrip(";"):
        return True
    if _clauses(gold) != _clauses(pred):
        return False  # normalization never adds or drops a clause keyword, so these cannot be equal
    g = gold_normalized if gold_normalized is not None else normalize_sql(gold, gold_tree)
    p = normalize_sql(pred)
    if g is None or p is None:
        return " ".join(gold.lower().split()).rstrip(";") == " ".join(pred.lower().split()).rstrip(";")
    return g == p
