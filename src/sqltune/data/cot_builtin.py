"""The builtin teacher: step-by-step reasoning written from the gold SQL's parse, no LLM needed.

It reads the query with sqlglot and says, in the cookbook's response shape, what a careful
person would: which tables the question needs, the join path along the keys, each filter with
its value, the grouping and the condition on groups, what is selected and aggregated, the
ordering and the limit, nested queries and set operations — then gives the SQL. It never
invents anything (every statement comes from the query and the schema), which makes it cheap,
deterministic, and a way to run the whole chain-of-thought path on a CPU.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from sqltune.prompts import COT_FINAL
from sqltune.sqlutil import parse

_AGG = {
    "count": "the number of",
    "sum": "the total of",
    "avg": "the average of",
    "min": "the smallest",
    "max": "the largest",
}


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="sqlite")


def _tables(select: exp.Select) -> list[str]:
    out = []
    for t in select.find_all(exp.Table):
        if t.find_ancestor(exp.Select) is select and t.name and t.name not in out:
            out.append(t.name)
    return out


_COMPARE: dict[type[exp.Expression], str] = {
    exp.EQ: "equals",
    exp.NEQ: "is not",
    exp.GT: "is greater than",
    exp.GTE: "is at least",
    exp.LT: "is less than",
    exp.LTE: "is at most",
    exp.Like: "matches the pattern",
}


def _condition(c: exp.Expression) -> str:
    """One predicate in words."""
    phrase = _COMPARE.get(type(c))
    if phrase:
        return f"{_sql(c.this)} {phrase} {_sql(c.expression)}"
    if isinstance(c, exp.Between):
        return f"{_sql(c.this)} is between {_sql(c.args['low'])} and {_sql(c.args['high'])}"
    if isinstance(c, exp.In):
        if c.args.get("query"):
            return f"{_sql(c.this)} is among the values a nested query returns ({_sql(c.args['query'])})"
        return f"{_sql(c.this)} is one of {', '.join(_sql(e) for e in c.expressions)}"
    if isinstance(c, exp.Is):
        return f"{_sql(c.this)} is NULL"
    if isinstance(c, exp.Not):
        inner = c.this
        if isinstance(inner, exp.Is):
            return f"{_sql(inner.this)} is not NULL"
        if isinstance(inner, exp.In):
            return f"{_sql(inner.this)} is not among {_sql(inner.args.get('query') or inner)}"
        return f"it is not the case that {_condition(inner)}"
    if isinstance(c, exp.Exists):
        return f"a matching row exists ({_sql(c.this)})"
    if isinstance(c, exp.Paren):
        return _condition(c.this)
    return _sql(c)


def _conjuncts(c: exp.Expression) -> tuple[str, list[exp.Expression]]:
    if isinstance(c, exp.And):
        return "and", [x for x in c.flatten() if isinstance(x, exp.Expression)]
    if isinstance(c, exp.Or):
        return "or", [x for x in c.flatten() if isinstance(x, exp.Expression)]
    return "and", [c]


def _select_steps(select: exp.Select, question: str, fks: list[tuple[str, str, str, str]]) -> list[str]:
    steps = []
    tables = _tables(select)
    if len(tables) == 1:
        steps.append(f"First, I need to consider which table holds what the question asks about: {tables[0]}.")
    elif tables:
        steps.append(f"First, I need to consider which tables hold the information: {', '.join(tables)}.")
    aliases = [
        f"{t.alias} is {t.name}"
        for t in select.find_all(exp.Table)
        if t.alias and t.find_ancestor(exp.Select) is select
    ]
    if aliases:
        steps.append(f"I name them short: {', '.join(aliases)}.")
    for j in select.args.get("joins") or []:
        on = j.args.get("on")
        target = j.this.name if isinstance(j.this, exp.Table) else _sql(j.this)
        if on is not None:
            cols = [c for c in on.find_all(exp.Column)]
            link = ""
            if len(cols) == 2:
                a, b = cols
                pair = {(a.name.lower(), b.name.lower()), (b.name.lower(), a.name.lower())}
                if any((c.lower(), rc.lower()) in pair for _, c, _, rc in fks):
                    link = " (a foreign key)"
            steps.append(f"Then I join {target} on {_sql(on)}{link} to connect the rows.")
        else:
            steps.append(f"Then I combine the rows with {target}.")
    where = select.args.get("where")
    if where is not None:
        how, parts = _conjuncts(where.this)
        words = [_condition(p) for p in parts]
        glue = " and " if how == "and" else " or "
        steps.append(f"Next, I keep only the rows where {glue.join(words)}.")
    group = select.args.get("group")
    if group is not None:
        steps.append(
            f"The question asks per group, so I group the rows by {', '.join(_sql(e) for e in group.expressions)}."
        )
    having = select.args.get("having")
    if having is not None:
        steps.append(f"Only groups where {_condition(having.this)} are kept.")
    shown = []
    for e in select.expressions:
        agg = e.find(exp.AggFunc)
        if agg is not None and agg.key in _AGG:
            arg = agg.this
            what = "rows" if isinstance(arg, exp.Star) or arg is None else _sql(arg)
            distinct = " distinct" if isinstance(arg, exp.Distinct) else ""
            shown.append(f"{_AGG[agg.key]}{distinct} {what}")
        else:
            shown.append(_sql(e))
    distinct = "distinct " if select.args.get("distinct") else ""
    steps.append(f"The answer needs {distinct}{'; '.join(shown)}.")
    order = select.args.get("order")
    if order is not None:
        keys = []
        for o in order.expressions:
            keys.append(f"{_sql(o.this)} {'descending' if o.args.get('desc') else 'ascending'}")
        steps.append(f"The rows are ordered by {', '.join(keys)}.")
    limit = select.args.get("limit")
    if limit is not None:
        n = limit.expression if limit.expression is not None else limit.this
        steps.append(f"Only the first {_sql(n)} row(s) are wanted, so I limit the result.")
    nested = [s for s in select.find_all(exp.Select) if s is not select and s.find_ancestor(exp.Select) is select]
    if nested and not any("nested query" in s for s in steps):
        steps.append(f"A nested query computes a value the outer query needs: {_sql(nested[0])}.")
    return steps


def reason(sql: str, question: str, foreign_keys: list[tuple[str, str, str, str]] | None = None) -> str:
    """Reasoning for ``question`` that ends with ``sql``, in the cookbook's response shape."""
    fks = foreign_keys or []
    steps: list[str] = [f'The question is: "{question.strip()}".']
    try:
        tree: Any = parse(sql)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, ValueError):
        tree = None
    if isinstance(tree, exp.SetOperation):
        kind = {"union": "UNION", "intersect": "INTERSECT", "except": "EXCEPT"}.get(tree.key, tree.key.upper())
        steps.append(f"The question combines two sets of rows, so the query is two parts joined by {kind}.")
        for part, name in ((tree.left, "first"), (tree.right, "second")):
            if isinstance(part, exp.Select):
                inner = _select_steps(part, question, fks)
                steps.append(f"For the {name} part: " + " ".join(inner))
    elif isinstance(tree, exp.Select):
        steps += _select_steps(tree, question, fks)
    else:
        steps.append("I write the query that returns exactly what the question asks for.")
    body = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
    return f"Let me think through this step by step:\n\n{body}\n\n{COT_FINAL}\n```sql\n{sql.strip()}\n```"
