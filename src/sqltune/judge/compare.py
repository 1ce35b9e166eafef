"""Comparing two query results, in three modes.

``set`` (BIRD's official rule)
    ``set(pred_rows) == set(gold_rows)``: row order and duplicates ignored; column order
    matters. ``[(1,), (1,), (2,)]`` equals ``[(2,), (1,)]``; ``[(1, 'a')]`` does not equal ``[('a', 1)]``.

``multiset`` (the Spider test-suite rule)
    Rows are a bag (duplicates count); the predicted columns may be any permutation of the
    gold columns; row order matters only when the gold query orders its final result (an
    ORDER BY on the outermost query, found with sqlglot; the test-suite looks for the
    substring "order by" anywhere, so an ORDER BY inside a subquery wrongly makes it
    order-sensitive). ``[(1, 'a'), (2, 'b')]`` equals ``[('b', 2), ('a', 1)]`` without an
    outer ORDER BY; ``[(1,), (1,)]`` does not equal ``[(1,)]``.

``ordered``
    Strict: same rows in the same order with the same columns.

In every mode ``5`` equals ``5.0`` (Python's numeric equality, as both official scripts),
NULL equals NULL, ``'5'`` (text) does not equal ``5``, and two empty results are equal.
Floats are compared exactly, as in both official scripts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from sqlglot import exp
from sqlglot.tokenizer_core import TokenType
from sqlglot.tokens import Tokenizer

from sqltune.sqlutil import parse

MODES = ("set", "multiset", "ordered")
Row = tuple[Any, ...]
_MAX_PERMUTATIONS = 20_000


def _norm(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    return v


def normalize_rows(rows: Sequence[Sequence[Any]]) -> list[Row]:
    return [tuple(_norm(v) for v in r) for r in rows]


def _ncols(rows: Sequence[Row], columns: Sequence[str] | None) -> int:
    if rows:
        return len(rows[0])
    return len(columns) if columns is not None else 0


def _permutations(gold: list[Row], pred: list[Row], n: int) -> Iterator[tuple[int, ...]]:
    """Column permutations p with pred column p[i] a candidate for gold column i (same value bag)."""
    gcols = [Counter(r[i] for r in gold) for i in range(n)]
    pcols = [Counter(r[i] for r in pred) for i in range(n)]
    cands = [[j for j in range(n) if pcols[j] == gcols[i]] for i in range(n)]
    if any(not c for c in cands):
        return
    count = 0

    def rec(i: int, used: list[int]) -> Iterator[tuple[int, ...]]:
        nonlocal count
        if count >= _MAX_PERMUTATIONS:
            return
        if i == n:
            count += 1
            yield tuple(used)
            return
        for j in cands[i]:
            if j not in used:
                used.append(j)
                yield from rec(i + 1, used)
                used.pop()

    yield from rec(0, [])


def results_equal(
    gold: Sequence[Sequence[Any]],
    pred: Sequence[Sequence[Any]],
    mode: str = "multiset",
    order_matters: bool = False,
    gold_columns: Sequence[str] | None = None,
    pred_columns: Sequence[str] | None = None,
) -> bool:
    """Whether ``pred`` rows match ``gold`` rows under ``mode`` (see the module docstring)."""
    # No value normalization is needed: Python's == and hash already make 5 equal 5.0.
    g, p = list(map(tuple, gold)), list(map(tuple, pred))
    if mode == "set":
        return set(g) == set(p)
    if not g and not p:
        return True
    if mode == "ordered":
        return g == p
    if mode != "multiset":
        raise ValueError(f"unknown comparison mode {mode!r}; choose one of {', '.join(MODES)}")
    if len(g) != len(p):
        return False
    n = _ncols(g, gold_columns)
    if _ncols(p, pred_columns) != n:
        return False
    if n == 1 or not g:
        return g == p if order_matters else Counter(g) == Counter(p)
    for perm in _permutations(g, p, n):
        pp = [tuple(r[j] for j in perm) for r in p]
        if order_matters:
            if pp == g:
                return True
        elif Counter(pp) == Counter(g):
            return True
    return False


def has_outer_order_by(sql: str) -> bool:
    """True when the query's final result is ordered (ORDER BY on the outermost query)."""
    return outer_order_by(parse(sql), sql)


def outer_order_by(tree: exp.Expression | None, sql: str) -> bool:
    """``has_outer_order_by`` on an already parsed tree (``sql`` is used when it did not parse)."""
    if tree is None:
        return _outer_order_by_fallback(sql)
    if isinstance(tree, exp.Subquery):
        tree = tree.this
    return tree.args.get("order") is not None


def _outer_order_by_fallback(sql: str) -> bool:
    depth, text = 0, []
    for ch in re.sub(r"'(?:[^']|'')*'", "''", sql):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            text.append(ch)
    return re.search(r"\border\s+by\b", "".join(text), re.IGNORECASE) is not None


def strip_distinct(sql: str) -> str:
    """Remove every DISTINCT keyword, as the Spider test-suite does unless --keep_distinct."""
    try:
        tokens = Tokenizer().tokenize(sql)
    except Exception:
        return re.sub(r"\bdistinct\b", " ", sql, flags=re.IGNORECASE)
    out, last = [], 0
    for t in tokens:
        if t.token_type == TokenType.DISTINCT:
            out.append(sql[last : t.start])
            last = t.end + 1
    out.append(sql[last:])
    return " ".join("".join(out).split())


def diagnose_miss(
    gold: Sequence[Sequence[Any]],
    pred: Sequence[Sequence[Any]],
    gold_columns: Sequence[str] | None,
    pred_columns: Sequence[str] | None,
    mode: str,
    order_matters: bool,
) -> str:
    """Why two results that do not match differ: wrong_column_count, wrong_order or wrong_rows."""
    g, p = list(map(tuple, gold)), list(map(tuple, pred))
    gn, pn = _ncols(g, gold_columns), _ncols(p, pred_columns)
    if gn != pn:
        return "wrong_column_count"
    if mode == "ordered" and Counter(g) == Counter(p):
        return "wrong_order"
    if (
        mode == "multiset"
        and order_matters
        and results_equal(g, p, "multiset", order_matters=False, gold_columns=gold_columns, pred_columns=pred_columns)
    ):
        return "wrong_order"
    return "wrong_rows"
