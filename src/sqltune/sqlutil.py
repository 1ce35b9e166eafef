"""SQL helpers on sqlglot: parsing with the SQLite dialect, tables used, normalization."""

from __future__ import annotations

import functools
import re

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


def _prefixes(table: str) -> set[str]:
    """Every start of a table's name that ends at an underscore: ``dim_``, ``shop__`` and ``shop_`` ..."""
    low = table.lower()
    return {low[: i + 1] for i, c in enumerate(low[:-1]) if c == "_"}


def _mentioned(name: str, text: str) -> int:
    """Where ``name`` first stands as a whole word in ``text`` (case-insensitive); -1 if nowhere."""
    m = re.search(r"(?<![\w.])" + re.escape(name.lower()) + r"(?![\w])", text.lower())
    return m.start() if m else -1


def resolve_tables(sql: str, tables: list[str], shown: str = "", dialect: str = "sqlite") -> tuple[str, dict[str, str]]:
    """Table names a query uses that the database lacks, rewritten to the one table each names once
    a prefix is read away: ``singer`` to ``concert_singer__singer``, ``customer`` to ``dim_customer``.

    A small model trained on plain names drops a warehouse's prefixes; the query would fail with
    "no such table", so a rewrite can only turn an error into an answer: a name the database has
    is never touched, nor an unknown name that no table ends with (after an underscore). Among
    several, the ones named in ``shown`` (the prompt's schema) are kept, then those whose prefix
    starts other tables too (a namespace: ``concert_singer__concert``, not ``…singer_in_concert``),
    then those sharing a prefix with the query's other tables, then the one shown first. The
    rewritten table keeps the written name as its alias, so ``singer.name`` still reads. Returns the
    SQL (the input unchanged when nothing is rewritten) and ``{written: table}``."""
    tree = parse(sql, dialect)
    if tree is None or not tables:
        return sql, {}
    real = {t.lower(): t for t in tables}
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    refs = [t for t in tree.find_all(exp.Table) if t.name and not t.args.get("db") and t.name.lower() not in ctes]
    todo = sorted({t.name.lower() for t in refs if t.name.lower() not in real})
    if not todo:
        return sql, {}
    known: set[str] = set()
    for t in refs:
        if t.name.lower() in real:
            known |= _prefixes(t.name)
    shared: dict[str, int] = {}  # a prefix that starts two or more tables is a namespace
    for low in real:
        for p in _prefixes(low):
            shared[p] = shared.get(p, 0) + 1
    options: dict[str, list[str]] = {}
    for name in todo:
        cands = [t for low, t in real.items() if low.endswith("_" + name)]
        if len(cands) > 1 and shown:
            cands = [t for t in cands if _mentioned(t, shown) >= 0] or cands
        if len(cands) > 1:
            cands = [t for t in cands if shared.get(t.lower()[: -len(name)], 0) > 1] or cands
        options[name] = cands
    mapping: dict[str, str] = {}
    for last in (False, True):  # the unambiguous first: their prefixes settle the others
        changed = True
        while changed:
            changed = False
            for name in todo:
                if name in mapping:
                    continue
                cands = options[name]
                if len(cands) > 1:
                    cands = [t for t in cands if t.lower()[: -len(name)] in known] or cands
                if len(cands) > 1 and last and shown:
                    placed = [(_mentioned(t, shown), t) for t in cands if _mentioned(t, shown) >= 0]
                    cands = [min(placed)[1]] if placed else cands
                if len(cands) == 1:
                    mapping[name] = cands[0]
                    known.add(cands[0].lower()[: -len(name)])
                    changed = True
    if not mapping:
        return sql, {}
    for t in refs:
        new = mapping.get(t.name.lower())
        if new is None:
            continue
        written = t.name
        t.set("this", exp.to_identifier(new, quoted=not re.fullmatch(r"[a-z_][a-z0-9_]*", new)))
        if not t.alias:
            t.set("alias", exp.TableAlias(this=exp.to_identifier(written)))
    return tree.sql(dialect=dialect), mapping


def rename_tables(sql: str, names: dict[str, str], dialect: str = "sqlite") -> str:
    """``sql`` with each table named in ``names`` (``{old: new}``, case-insensitive) renamed, and the
    columns qualified by it (``orders.id``) with it; a CTE or an alias of the query's own is never touched.
    The input unchanged when it does not parse or names none of them."""
    if not names:
        return sql
    tree = parse(sql, dialect)
    if tree is None:
        return sql
    # PostgreSQL folds an unquoted name to lower case: a mixed-case name is quoted there, only an odd one elsewhere
    plain = r"[a-z_][a-z0-9_]*" if dialect == "postgres" else r"[A-Za-z_][A-Za-z0-9_]*"
    low = {k.lower(): exp.to_identifier(v, quoted=not re.fullmatch(plain, v)) for k, v in names.items()}
    own = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    own |= {a.name.lower() for a in tree.find_all(exp.TableAlias) if a.name}
    changed = False
    for t in tree.find_all(exp.Table):
        new = low.get(t.name.lower())
        if new is not None and not t.args.get("db") and t.name.lower() not in own:
            t.set("this", new.copy())
            changed = True
    for c in tree.find_all(exp.Column):
        new = low.get(c.table.lower()) if c.table else None
        if new is not None and c.table.lower() not in own:
            c.set("table", new.copy())
            changed = True
    return tree.sql(dialect=dialect) if changed else sql
