"""Spider's exact-set match, the metric the Spider leaderboard and DB-GPT-Hub call "EM".

The official ``evaluation.py --etype match`` (taoyds/spider) compares two queries component by
component, as sets, after its own parser turns each into a tree of column ids:

* SELECT items (aggregate + column or arithmetic of two columns), in any order;
* WHERE and HAVING conditions (operator, NOT, column; values are ignored, nested queries are
  compared whole), AND/OR as a set of connectives;
* GROUP BY columns (by column name), HAVING only together with GROUP BY;
* ORDER BY (its columns and direction) and only the *presence* of LIMIT, not its value;
* INTERSECT / UNION / EXCEPT, each compared recursively;
* a keyword set (where, group, having, order, asc/desc, limit, except, union, intersect, or,
  not, in, like); and the FROM tables as a multiset; JOIN ON conditions are not compared.

Aliases are resolved to their tables; columns joined by a foreign key count as one column
(each group of columns linked by foreign keys maps to one of them); DISTINCT is ignored.

This module builds the same tree from a sqlglot parse (the official parser is not used), so
it also scores what the official parser cannot read: ``<>``, aliases written without ``AS``,
``IN (1, 2)`` lists, ``IS NULL``, parenthesised conditions, column aliases in SELECT and other
functions. :func:`official_can_parse` says, for each query, whether the official script would
have parsed it; a pair it could not parse is marked so in the eval record, because the
official script would have scored it 0 (a failing prediction) or crashed (a failing gold).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlglot import exp

from sqltune.sqlutil import parse

AGG_OPS = ("none", "max", "min", "count", "sum", "avg")
UNIT_OPS = ("none", "-", "+", "*", "/")
WHERE_OPS = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")
PARTS = (
    "select",
    "select(no AGG)",
    "where",
    "where(no OP)",
    "group(no Having)",
    "group",
    "order",
    "and/or",
    "IUEN",
    "keywords",
)
_AGGS: dict[type[exp.Expression], int] = {exp.Max: 1, exp.Min: 2, exp.Count: 3, exp.Sum: 4, exp.Avg: 5}
_UNITS: dict[type[exp.Expression], int] = {exp.Sub: 1, exp.Add: 2, exp.Mul: 3, exp.Div: 4}
_OPS: dict[type[exp.Expression], int] = {
    exp.EQ: 2,
    exp.GT: 3,
    exp.LT: 4,
    exp.GTE: 5,
    exp.LTE: 6,
    exp.NEQ: 7,
    exp.Like: 9,
    exp.Is: 10,
}


class Unsupported(ValueError):
    """A construct outside Spider's SQL subset: the pair cannot be scored by exact-set match."""


@dataclass(frozen=True)
class SpiderSchema:
    """Tables and columns (lower-cased, as the official parser reads them) and the foreign-key map."""

    tables: dict[str, tuple[str, ...]]
    fk_map: dict[str, str] = field(default_factory=dict)


@cache
def schema_of(db_path: str) -> SpiderSchema:
    """The schema of a SQLite file, read as the official script reads it (sqlite_master, table_info)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        tables: dict[str, tuple[str, ...]] = {}
        order: list[str] = []
        links: list[tuple[str, str]] = []
        for t in names:
            q = '"' + t.replace('"', '""') + '"'
            cols = tuple(str(c[1]).lower() for c in conn.execute(f"PRAGMA table_info({q})"))
            tables[t.lower()] = cols
            order += [f"__{t.lower()}.{c}__" for c in cols]
            for fk in conn.execute(f"PRAGMA foreign_key_list({q})"):
                ref_table, src, ref = str(fk[2]).lower(), str(fk[3]).lower(), fk[4]
                if ref is None:  # REFERENCES t without a column: its primary key
                    pk = [c for c in conn.execute(f'PRAGMA table_info("{fk[2]}")') if c[5]]
                    ref = pk[0][1] if pk else None
                if ref is not None:
                    links.append((f"__{t.lower()}.{src}__", f"__{ref_table}.{str(ref).lower()}__"))
    finally:
        conn.close()
    # each group of columns linked by foreign keys maps to its first column (schema order)
    rank = {c: i for i, c in enumerate(order)}
    groups: list[set[str]] = []
    for a, b in links:
        hit = [g for g in groups if a in g or b in g]
        merged = set().union(*hit) | {a, b} if hit else {a, b}
        groups = [g for g in groups if g not in hit] + [merged]
    fk_map = {}
    for g in groups:
        head = min(g, key=lambda c: rank.get(c, len(rank)))
        fk_map.update({c: head for c in g})
    return SpiderSchema(tables, fk_map)


# ----------------------------------------------------------------------------- building the tree
class _Scope:
    def __init__(self, schema: SpiderSchema):
        self.schema = schema
        self.alias: dict[str, str] = {}
        self.default: list[str] = []
        self.root: _Scope = self
        """The outermost query's scope (a subquery's quoted names are counted there)."""
        self.quoted = False  # a quoted name was read as a table or column (the official parser cannot)

    def table(self, name: str) -> str:
        t = self.alias.get(name.lower(), name.lower())
        if t not in self.schema.tables:
            raise Unsupported(f"unknown table {name}")
        return t

    def column(self, col: exp.Expression) -> str:
        if isinstance(col, exp.Star):
            return "__all__"
        if not isinstance(col, exp.Column):
            raise Unsupported(f"not a column: {col.sql()}")
        if isinstance(col.this, exp.Star):
            return "__all__"
        if any(i.quoted for i in col.find_all(exp.Identifier)):
            getattr(self, "root", self).quoted = True
        name = col.name.lower()
        if col.table:
            t = self.table(col.table)
            if name not in self.schema.tables[t]:
                raise Unsupported(f"unknown column {col.sql()}")
            return f"__{t}.{name}__"
        for t in self.default:
            if name in self.schema.tables[t]:
                return f"__{t}.{name}__"
        raise Unsupported(f"unknown column {name}")


def _strip(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _col_unit(e: exp.Expression, sc: _Scope) -> tuple[int, str, bool]:
    e = _strip(e)
    agg = _AGGS.get(type(e), 0)
    if agg:
        e = e.this
    distinct = False
    if isinstance(e, exp.Distinct):
        distinct = True
        if len(e.expressions) != 1:
            raise Unsupported("DISTINCT over several columns")
        e = e.expressions[0]
    return (agg, sc.column(_strip(e)), distinct)


def _val_unit(e: exp.Expression, sc: _Scope) -> tuple[int, Any, Any]:
    e = _strip(e)
    op = _UNITS.get(type(e), 0)
    if op:
        return (op, _col_unit(e.this, sc), _col_unit(e.expression, sc))
    return (0, _col_unit(e, sc), None)


def _value(e: exp.Expression, sc: _Scope) -> Any:
    e = _strip(e)
    if isinstance(e, exp.Subquery):
        return _query(e.this, sc.schema, sc)
    if isinstance(e, exp.Select | exp.SetOperation):
        return _query(e, sc.schema, sc)
    if isinstance(e, exp.Literal):
        return e.this if e.is_string else float(e.this)
    if isinstance(e, exp.Neg) and isinstance(e.this, exp.Literal):
        return -float(e.this.this)
    if isinstance(e, exp.Null):
        return None
    if isinstance(e, exp.Column) and not e.table and e.this.quoted:
        return e.name  # "Asia": SQLite reads a double-quoted name that is no column as a string; so does Spider
    return _col_unit(e, sc)


def _cond_unit(e: exp.Expression, sc: _Scope) -> tuple[bool, int, Any, Any, Any]:
    e = _strip(e)
    neg = False
    if isinstance(e, exp.Not):
        neg, e = True, _strip(e.this)
    if isinstance(e, exp.Between):
        return (neg, 1, _val_unit(e.this, sc), _value(e.args["low"], sc), _value(e.args["high"], sc))
    if isinstance(e, exp.In):
        if e.args.get("query") is not None:
            return (neg, 8, _val_unit(e.this, sc), _value(e.args["query"], sc), None)
        raise Unsupported("IN with a list of values")
    if isinstance(e, exp.Exists):
        raise Unsupported("EXISTS")
    op = _OPS.get(type(e))
    if op is None:
        raise Unsupported(f"condition {e.sql()}")
    if isinstance(e, exp.Is) and isinstance(_strip(e.expression), exp.Null):
        return (neg, op, _val_unit(e.this, sc), None, None)
    return (neg, op, _val_unit(e.this, sc), _value(e.expression, sc), None)


def _condition(e: exp.Expression | None, sc: _Scope) -> list[Any]:
    """Flat [cond, 'and'|'or', cond, ...], left to right, as the official parser reads it."""
    if e is None:
        return []
    e = _strip(e)
    if isinstance(e, exp.And | exp.Or):
        return [*_condition(e.this, sc), "and" if isinstance(e, exp.And) else "or", *_condition(e.expression, sc)]
    return [_cond_unit(e, sc)]


def _chain(tree: exp.Expression) -> list[Any]:
    """A chain of set operations as [select, op, select, op, ...] (left to right)."""
    tree = _strip(tree)
    if isinstance(tree, exp.Subquery):
        tree = tree.this
    if isinstance(tree, exp.Union | exp.Intersect | exp.Except):
        op = "union" if isinstance(tree, exp.Union) else "intersect" if isinstance(tree, exp.Intersect) else "except"
        chain = [*_chain(tree.this), op, *_chain(tree.expression)]
        tail = {k: tree.args[k] for k in ("order", "limit") if tree.args.get(k) is not None}
        if tail and isinstance(chain[-1], exp.Select):  # the official parser reads them as the last query's
            last = chain[-1].copy()
            for k, v in tail.items():
                last.set(k, v.copy())
            chain[-1] = last
        return chain
    return [tree]


def _query(tree: exp.Expression, schema: SpiderSchema, outer: _Scope | None = None) -> dict[str, Any]:
    chain = _chain(tree)
    sql = _select(chain[0], schema, outer)
    cur = sql
    for k in range(1, len(chain), 2):
        nxt = _select(chain[k + 1], schema, outer)
        cur[chain[k]] = nxt
        cur = nxt
    return sql


def _select(sel: exp.Expression, schema: SpiderSchema, outer: _Scope | None) -> dict[str, Any]:
    if not isinstance(sel, exp.Select):
        raise Unsupported(f"not a SELECT: {type(sel).__name__}")
    if sel.args.get("with_") is not None or sel.args.get("with") is not None:
        raise Unsupported("WITH")
    sc = _Scope(schema)
    if outer is not None:
        sc.alias.update(outer.alias)
        sc.root = getattr(outer, "root", outer)
    sources = []
    if sel.args.get("from_") is not None:
        sources.append(sel.args["from_"].this)
    joins = sel.args.get("joins") or []
    sources += [j.this for j in joins]
    table_units: list[tuple[str, Any]] = []
    for src in sources:
        if isinstance(src, exp.Table):
            t = src.name.lower()
            if t not in schema.tables:
                raise Unsupported(f"unknown table {src.name}")
            if src.alias and outer is None:
                sc.alias[src.alias.lower()] = t
            sc.default.append(t)
    for src in sources:
        if isinstance(src, exp.Table):
            table_units.append(("table_unit", f"__{src.name.lower()}__"))
        elif isinstance(src, exp.Subquery):
            table_units.append(("sql", _query(src.this, schema, sc)))
        else:
            raise Unsupported(f"FROM {src.sql()}")
    conds: list[Any] = []
    for j in joins:
        on = j.args.get("on")
        if on is not None and not isinstance(on, exp.Boolean):  # JOIN without ON: nothing to read
            if conds:
                conds.append("and")
            conds += _condition(on, sc)
    items = []
    for e in sel.expressions:
        e = e.this if isinstance(e, exp.Alias) else e
        e = _strip(e)
        agg = _AGGS.get(type(e), 0)
        if agg:
            items.append((agg, _val_unit(e.this, sc)))
        else:
            items.append((0, _val_unit(e, sc)))
    order: Any = []
    if sel.args.get("order") is not None:
        direction = "asc"
        units = []
        for o in sel.args["order"].expressions:
            units.append(_val_unit(o.this, sc))
            if o.args.get("desc") is not None:  # an explicit ASC or DESC sets the direction
                direction = "desc" if o.args["desc"] else "asc"
        order = (direction, units)
    limit = None
    if sel.args.get("limit") is not None:
        lim = sel.args["limit"].expression
        limit = int(lim.this) if isinstance(lim, exp.Literal) and not lim.is_string else 1
    group = [_col_unit(g, sc) for g in (sel.args["group"].expressions if sel.args.get("group") else [])]
    return {
        "select": (bool(sel.args.get("distinct")), items),
        "from": {"table_units": table_units, "conds": conds},
        "where": _condition(sel.args["where"].this if sel.args.get("where") else None, sc),
        "groupBy": group,
        "having": _condition(sel.args["having"].this if sel.args.get("having") else None, sc),
        "orderBy": order,
        "limit": limit,
        "intersect": None,
        "union": None,
        "except": None,
    }


def spider_tree(sql: str, schema: SpiderSchema) -> dict[str, Any]:
    """The official script's tree of one query, values dropped and foreign keys mapped as its
    match evaluation does; :class:`Unsupported` when the query is outside Spider's SQL subset."""
    return _tree(sql, schema)[0]


def _tree(sql: str, schema: SpiderSchema) -> tuple[dict[str, Any], bool]:
    tree = parse(sql)
    if tree is None:
        raise Unsupported("does not parse")
    root = _Scope(schema)
    # the official parser keeps one alias map for the whole query, the last "AS" of a name winning
    for t in tree.find_all(exp.Table, bfs=False):  # in the order they are written
        if t.alias and t.name.lower() in schema.tables:
            root.alias[t.alias.lower()] = t.name.lower()
    sql_tree = _query(tree, schema, root)
    return _rebuild(sql_tree, schema), root.quoted


# ----------------------------------------------------------------------------- values and keys
def _values_dropped(sql: dict[str, Any] | None) -> dict[str, Any] | None:
    """Values replaced by None in every condition (nested queries kept, their values dropped too)."""
    if sql is None:
        return None
    out = dict(sql)
    out["from"] = {"table_units": sql["from"]["table_units"], "conds": _cond_values_dropped(sql["from"]["conds"])}
    out["where"] = _cond_values_dropped(sql["where"])
    out["having"] = _cond_values_dropped(sql["having"])
    for op in ("intersect", "union", "except"):
        out[op] = _values_dropped(sql[op])
    return out


def _cond_values_dropped(cond: list[Any]) -> list[Any]:
    out: list[Any] = []
    for k, c in enumerate(cond):
        if k % 2:
            out.append(c)
        else:
            neg, op, vu, v1, v2 = c
            v1 = _values_dropped(v1) if isinstance(v1, dict) else None
            v2 = _values_dropped(v2) if isinstance(v2, dict) else None
            out.append((neg, op, vu, v1, v2))
    return out


def _map_col(cu: Any, valid: set[str], schema: SpiderSchema) -> Any:
    if cu is None:
        return None
    agg, col, _ = cu
    if col in schema.fk_map and col in valid:
        col = schema.fk_map[col]
    return (agg, col, None)  # DISTINCT is not compared


def _map_val(vu: Any, valid: set[str], schema: SpiderSchema) -> Any:
    if vu is None:
        return None
    op, a, b = vu
    return (op, _map_col(a, valid, schema), _map_col(b, valid, schema))


def _map_cond(cond: list[Any], valid: set[str], schema: SpiderSchema) -> list[Any]:
    return [c if k % 2 else (c[0], c[1], _map_val(c[2], valid, schema), c[3], c[4]) for k, c in enumerate(cond)]


def _columns_mapped(sql: dict[str, Any] | None, valid: set[str], schema: SpiderSchema) -> dict[str, Any] | None:
    """Foreign-key columns mapped to one representative (only columns of the outermost FROM's
    tables, also inside INTERSECT/UNION/EXCEPT, as the official script does) and DISTINCT dropped;
    queries nested in conditions or FROM are left as they are."""
    if sql is None:
        return None
    out = dict(sql)
    out["select"] = (None, [(agg, _map_val(vu, valid, schema)) for agg, vu in sql["select"][1]])
    out["from"] = {"table_units": sql["from"]["table_units"], "conds": _map_cond(sql["from"]["conds"], valid, schema)}
    out["where"] = _map_cond(sql["where"], valid, schema)
    out["having"] = _map_cond(sql["having"], valid, schema)
    out["groupBy"] = [_map_col(c, valid, schema) for c in sql["groupBy"]]
    if sql["orderBy"]:
        out["orderBy"] = (sql["orderBy"][0], [_map_val(v, valid, schema) for v in sql["orderBy"][1]])
    for op in ("intersect", "union", "except"):
        out[op] = _columns_mapped(sql[op], valid, schema)
    return out


def _rebuild(sql: dict[str, Any], schema: SpiderSchema) -> dict[str, Any]:
    tables = {t[1][2:-2] for t in sql["from"]["table_units"] if t[0] == "table_unit"}
    valid = {f"__{t}.{c}__" for t in tables for c in schema.tables.get(t, ())}
    out = _columns_mapped(_values_dropped(sql), valid, schema)
    assert out is not None
    return out


# ----------------------------------------------------------------------------- the comparison
def _scores(count: int, pred_total: int, label_total: int) -> tuple[int, int, int]:
    if pred_total != label_total:
        return 0, 0, 0
    return (1, 1, 1) if count == pred_total else (0, 0, 0)


def _match_multiset(pred: list[Any], label: list[Any]) -> int:
    rest = list(label)
    n = 0
    for u in pred:
        if u in rest:
            n += 1
            rest.remove(u)
    return n


def _keywords(sql: dict[str, Any]) -> set[str]:
    kw = set()
    for key, name in (("where", "where"), ("groupBy", "group"), ("having", "having")):
        if sql[key]:
            kw.add(name)
    if sql["orderBy"]:
        kw |= {"order", sql["orderBy"][0]}
    for key in ("limit", "except", "union", "intersect"):
        if sql[key] is not None:
            kw.add(key)
    connectives = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    if "or" in connectives:
        kw.add("or")
    units = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    if any(u[0] for u in units):
        kw.add("not")
    if any(u[1] == WHERE_OPS.index("in") for u in units):
        kw.add("in")
    if any(u[1] == WHERE_OPS.index("like") for u in units):
        kw.add("like")
    return kw


def _nested(pred: dict[str, Any] | None, label: dict[str, Any] | None) -> tuple[int, int, int]:
    lt, pt = int(label is not None), int(pred is not None)
    cnt = int(bool(pred is not None and label is not None and exact_set_match(pred, label)[0]))
    return lt, pt, cnt


def partial_scores(pred: dict[str, Any], label: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The official script's per-component scores: acc, rec, f1 (each 0 or 1) and the totals."""
    res: dict[str, dict[str, int]] = {}

    def put(name: str, count: int, pt: int, lt: int) -> None:
        acc, rec, f1 = _scores(count, pt, lt)
        res[name] = {"acc": acc, "rec": rec, "f1": f1, "label_total": lt, "pred_total": pt}

    ps, ls = pred["select"][1], label["select"][1]
    put("select", _match_multiset(ps, ls), len(ps), len(ls))
    put("select(no AGG)", _match_multiset([u[1] for u in ps], [u[1] for u in ls]), len(ps), len(ls))
    pw, lw = pred["where"][::2], label["where"][::2]
    put("where", _match_multiset(pw, lw), len(pw), len(lw))
    put("where(no OP)", _match_multiset([u[2] for u in pw], [u[2] for u in lw]), len(pw), len(lw))

    def names(units: list[Any]) -> list[str]:
        return [u[1].split(".")[1] if "." in u[1] else u[1] for u in units]

    pg, lg = pred["groupBy"], label["groupBy"]
    put("group(no Having)", _match_multiset(names(pg), names(lg)), len(pg), len(lg))
    pt, lt = int(bool(pg)), int(bool(lg))
    same_having = pt == lt == 1 and [u[1] for u in pg] == [u[1] for u in lg] and pred["having"] == label["having"]
    put("group", int(same_having), pt, lt)
    pt, lt = int(bool(pred["orderBy"])), int(bool(label["orderBy"]))
    same_limit = (pred["limit"] is None) == (label["limit"] is None)
    put("order", int(bool(label["orderBy"]) and pred["orderBy"] == label["orderBy"] and same_limit), pt, lt)
    pa, la = set(pred["where"][1::2]), set(label["where"][1::2])
    res["and/or"] = dict(
        zip(("acc", "rec", "f1"), (1, 1, 1) if pa == la else (0, 0, 0), strict=True),
        # the official script returns these two the other way round; kept, as they feed its averages
        label_total=1 if pa == la else len(pa),
        pred_total=1 if pa == la else len(la),
    )
    lt = pt = cnt = 0
    for op in ("intersect", "except", "union"):
        a, b, c = _nested(pred[op], label[op])
        lt, pt, cnt = lt + a, pt + b, cnt + c
    put("IUEN", cnt, pt, lt)
    pk, lk = _keywords(pred), _keywords(label)
    put("keywords", len(pk & lk), len(pk), len(lk))
    return res


def exact_set_match(pred: dict[str, Any], label: dict[str, Any]) -> tuple[bool, dict[str, dict[str, int]]]:
    """Spider's exact-set match of two trees from :func:`spider_tree`, and the partial scores."""
    parts = partial_scores(pred, label)
    if any(p["f1"] != 1 for p in parts.values()):
        return False, parts
    if label["from"]["table_units"]:
        key = repr
        return sorted(map(key, label["from"]["table_units"])) == sorted(map(key, pred["from"]["table_units"])), parts
    return True, parts


EMPTY: dict[str, Any] = {
    "select": (None, []),
    "from": {"table_units": [], "conds": []},
    "where": [],
    "groupBy": [],
    "having": [],
    "orderBy": [],
    "limit": None,
    "intersect": None,
    "union": None,
    "except": None,
}
"""The tree the official script scores a prediction it cannot parse as."""


# ----------------------------------------------------------------------------- the official parser's limits
_PAREN_OK = "max|min|count|sum|avg|in|exists|not|and|or|from|join|on|where|select|union|intersect|except|as|by|distinct|having|like|between|limit|then"
_FUNC = re.compile(rf"(?i)\b(?!(?:{_PAREN_OK})\b)\w+\s*\(")


def official_can_parse(sql: str, schema: SpiderSchema, quoted: bool | None = None) -> bool:
    """Whether the official parser reads this query (it fails on ``<>``, table aliases without
    ``AS``, SELECT column aliases, IN lists, IS NULL, EXISTS, other functions, parenthesised
    conditions, WITH, and table or column names it does not find)."""
    """``quoted``: what :func:`_tree` said of the query, when it was already built."""
    if "<>" in sql or re.search(r"(?i)\bis\s+(not\s+)?null\b|\bexists\b|\bwith\b|\bcast\b|\bcase\b", sql):
        return False
    if _FUNC.search(re.sub(r"'[^']*'|\"[^\"]*\"", "''", sql)):
        return False
    tree = parse(sql)
    if tree is None:
        return False
    if any(t.this.quoted for t in tree.find_all(exp.Table)):
        return False
    joins = list(tree.find_all(exp.Join))
    if len(re.findall(r"(?i)\bjoin\b", sql)) != len(joins) or any(
        j.side or j.kind or j.args.get("using") for j in joins
    ):
        return False  # only plain "JOIN ... ON": comma joins, INNER/LEFT/... JOIN and USING fail there
    for t in tree.find_all(exp.Table):
        alias = t.args.get("alias")
        if alias is not None and not re.search(rf"(?i)\bas\s+{re.escape(alias.name)}\b", sql):
            return False
    for sel in tree.find_all(exp.Select):
        if any(isinstance(e, exp.Alias) for e in sel.expressions):
            return False
    for node in tree.find_all(exp.In):
        if node.args.get("query") is None:
            return False
    for cond in tree.find_all(exp.Where, exp.Having):
        if any(isinstance(p.this, exp.And | exp.Or) for p in cond.find_all(exp.Paren)):
            return False
    if quoted is None:
        try:
            _, quoted = _tree(sql, schema)
        except Unsupported:
            return False
    return not quoted


def score(gold: str, pred: str, db_path: str) -> dict[str, Any]:
    """Exact-set match of one pair: ``spider_em`` (bool or None when the gold is outside Spider's
    subset), ``partial`` (per component), and ``official`` (whether the official script scores
    this pair the same way: False when it cannot parse one of the two)."""
    schema = schema_of(str(db_path))
    try:
        g, g_quoted = _tree(gold, schema)
    except Unsupported as e:
        return {"spider_em": None, "partial": None, "official": False, "error": f"gold: {e}"}
    try:
        p, p_quoted = _tree(pred, schema)
        pred_ok = True
    except Unsupported:
        p, p_quoted, pred_ok = EMPTY, False, False
    em, parts = exact_set_match(p, g)
    official = pred_ok and official_can_parse(gold, schema, g_quoted) and official_can_parse(pred, schema, p_quoted)
    return {"spider_em": bool(em), "partial": parts, "official": official}
