"""Spider's difficulty levels (easy / medium / hard / extra), computed on sqlglot.

The rules are those of Spider's official ``evaluation.py`` (``eval_hardness`` and its
``count_component1``, ``count_component2``, ``count_others``), applied to a sqlglot parse
instead of Spider's own parser, so that ``IS NULL``, ``NOT``, quoted names and other SQL the
official parser rejects get a level too. Quirks kept on purpose, so the levels agree with the
official ones: only the outermost SELECT (for a set operation: its first SELECT) is counted;
the right side of UNION / INTERSECT / EXCEPT and every subquery in a condition count as one
nested query each; "aggregates" in WHERE and HAVING count negated conditions (Spider reads
the NOT flag of a condition where it means the aggregate).
"""

from __future__ import annotations

from sqlglot import exp

from sqltune.sqlutil import parse

LEVELS = ("easy", "medium", "hard", "extra")


def _leaves(cond: exp.Expression | None) -> tuple[list[exp.Expression], int]:
    """Flatten an AND/OR tree into condition leaves and the number of ORs."""
    if cond is None:
        return [], 0
    if isinstance(cond, exp.Paren):
        return _leaves(cond.this)
    if isinstance(cond, exp.And | exp.Or):
        left, lo = _leaves(cond.args.get("this"))
        right, ro = _leaves(cond.args.get("expression"))
        return left + right, lo + ro + (1 if isinstance(cond, exp.Or) else 0)
    return [cond], 0


def _is_not(leaf: exp.Expression) -> bool:
    return isinstance(leaf, exp.Not)


def _inner(leaf: exp.Expression) -> exp.Expression:
    return leaf.this if isinstance(leaf, exp.Not) else leaf


def _nested_in(leaf: exp.Expression) -> int:
    """Subqueries that are operands of this condition (not deeper)."""
    inner = _inner(leaf)
    n = 0
    for child in inner.iter_expressions():
        node = child
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Subquery | exp.Select | exp.Union | exp.Intersect | exp.Except):
            n += 1
    return n


def _has_agg(e: exp.Expression) -> bool:
    return isinstance(e, exp.AggFunc) or (isinstance(e, exp.Alias) and isinstance(e.this, exp.AggFunc))


def _first_select(tree: exp.Expression) -> tuple[exp.Select | None, int]:
    """The SELECT that Spider parses as the main query, and the number of set-operation branches."""
    nested = 0
    node: exp.Expression = tree
    while isinstance(node, exp.Union | exp.Intersect | exp.Except):
        nested += 1
        node = node.args["this"]  # the left branch
    while isinstance(node, exp.Subquery | exp.Paren):
        node = node.this
    return (node if isinstance(node, exp.Select) else None), nested


def spider_hardness(sql: str, dialect: str = "sqlite") -> str:
    """easy / medium / hard / extra for a query (in sqlglot's ``dialect``); '' when it does not parse."""
    return hardness_of(parse(sql, dialect))


def hardness_of(tree: exp.Expression | None) -> str:
    """``spider_hardness`` on an already parsed tree."""
    if tree is None:
        return ""
    select, set_ops = _first_select(tree)
    if select is None:
        return ""
    where = select.args.get("where")
    having = select.args.get("having")
    group = select.args.get("group")
    order = select.args.get("order")
    joins = select.args.get("joins") or []
    w_leaves, w_or = _leaves(where.this if where else None)
    h_leaves, h_or = _leaves(having.this if having else None)
    on_leaves, on_or = [], 0
    for j in joins:
        lv, o = _leaves(j.args.get("on"))
        on_leaves += lv
        on_or += o
    all_leaves = on_leaves + w_leaves + h_leaves

    comp1 = 0
    comp1 += 1 if where else 0
    comp1 += 1 if group else 0
    comp1 += 1 if order else 0
    comp1 += 1 if select.args.get("limit") else 0
    from_ = select.args.get("from_") or select.args.get("from")
    n_tables = (1 if from_ else 0) + len(joins)
    comp1 += max(0, n_tables - 1)
    comp1 += w_or + h_or + on_or
    comp1 += sum(1 for leaf in all_leaves if isinstance(_inner(leaf), exp.Like | exp.ILike))

    comp2 = set_ops + sum(_nested_in(leaf) for leaf in all_leaves)

    others = 0
    agg = sum(
        1
        for e in select.expressions
        if _has_agg(e) or (isinstance(e, exp.Alias) and e.find(exp.AggFunc)) or e.find(exp.AggFunc) is e
    )
    agg += sum(1 for leaf in w_leaves if _is_not(leaf))
    agg += sum(1 for g in (group.expressions if group else []) if g.find(exp.AggFunc))
    agg += sum(1 for o in (order.expressions if order else []) if o.find(exp.AggFunc))
    agg += sum(1 for leaf in h_leaves if _is_not(leaf))
    others += 1 if agg > 1 else 0
    others += 1 if len(select.expressions) > 1 else 0
    others += 1 if len(w_leaves) > 1 else 0
    others += 1 if group and len(group.expressions) > 1 else 0

    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (
        (others > 2 and comp1 <= 2 and comp2 == 0)
        or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
        or (comp1 <= 1 and others == 0 and comp2 <= 1)
    ):
        return "hard"
    return "extra"
