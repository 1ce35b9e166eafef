"""sqltune's normalized match: equality of sqlglot-normalized SQL.

Normalized: parsed as SQLite, keywords upper-cased and whitespace canonical (sqlglot's
generator), identifiers lower-cased and unquoted (SQLite's names are case-insensitive, quoted or
not), string literals kept exactly as written (a double-quoted value such as ``"France"``, which
SQLite reads as a string when no column has that name, stays a case-sensitive string). Stricter
than Spider's exact-set match (:mod:`sqltune.judge.spider_em`): aliases, DISTINCT, the order of
SELECT items, LIMIT values and JOIN conditions all count. Only ever asked of predictions that are
right by execution: equal normalized SQL means equal results, so the others cannot match."""

from __future__ import annotations

import re

from sqlglot import exp

from sqltune.sqlutil import parse

_CLAUSE = re.compile(r"(?i)\b(distinct|where|group|having|order|limit|join|union|intersect|except)\b")


def _clauses(sql: str) -> list[str]:
    """The clause keywords of a query, in order (a necessary condition for equal normalized SQL)."""
    return [m.lower() for m in _CLAUSE.findall(sql)]


_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
_VALUE_SLOTS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Glob, exp.Is)


def _as_string(e: exp.Expression) -> exp.Expression:
    if isinstance(e, exp.Column) and not e.table and e.this.quoted:
        return exp.Literal.string(e.name)
    return e


def normalize_sql(sql: str, tree: exp.Expression | None = None) -> str | None:
    """The canonical text of a query (see the module docstring); None when it does not parse.
    A given ``tree`` is modified."""
    if tree is None:
        tree = parse(sql)
    if tree is None:
        return None
    try:
        # a double-quoted name compared with something is SQLite's string value, not a column
        for node in list(tree.find_all(*_VALUE_SLOTS)):
            rhs = node.args.get("expression")
            if rhs is not None and _as_string(rhs) is not rhs:
                node.set("expression", _as_string(rhs))
        for in_node in list(tree.find_all(exp.In)):
            in_node.set("expressions", [_as_string(e) for e in in_node.expressions])
        for between in list(tree.find_all(exp.Between)):
            for k in ("low", "high"):
                if between.args.get(k) is not None:
                    between.set(k, _as_string(between.args[k]))
        for ident in tree.find_all(exp.Identifier):
            name = ident.this.lower()
            ident.set("this", name)
            ident.set("quoted", not _PLAIN.match(name))  # quotes only where the name needs them
        # copy=False: the tree is ours to change, and sqlglot's defensive deep copy costs as much as the parse
        return tree.sql(dialect="sqlite", identify=False, copy=False).rstrip(";").strip()
    except Exception:
        return None


def _fold(sql: str) -> str:
    """Whitespace collapsed and text lower-cased outside string literals (the fallback)."""
    parts = re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", " ".join(sql.split()).rstrip(";"))
    return "".join(p if k % 2 else p.lower() for k, p in enumerate(parts))


def normalized_match(
    gold: str, pred: str, gold_tree: exp.Expression | None = None, gold_normalized: str | None = None
) -> bool:
    """Equal after :func:`normalize_sql` (when either does not parse: equal text up to whitespace
    and the case of everything but string literals).

    ``gold_tree``, an already parsed gold query, saves a parse (it is modified);
    ``gold_normalized``, the gold's :func:`normalize_sql` text written by the data stage, saves both."""
    if " ".join(gold.split()).rstrip(";") == " ".join(pred.split()).rstrip(";"):
        return True
    if _clauses(gold) != _clauses(pred):
        return False  # normalization never adds or drops a clause keyword, so these cannot be equal
    g = gold_normalized if gold_normalized is not None else normalize_sql(gold, gold_tree)
    p = normalize_sql(pred)
    if g is None or p is None:
        return _fold(gold) == _fold(pred)
    return g == p
