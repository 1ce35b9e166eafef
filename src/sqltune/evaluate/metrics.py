"""Metrics besides execution accuracy: exact match, token match, soft-F1, pass@k."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import sqlglot
from sqlglot import exp


def normalize_sql(sql: str, tree: exp.Expression | None = None) -> str | None:
    """A canonical text of the query: sqlglot-parsed (SQLite), identifiers and keywords lower-cased,
    whitespace and quoting normalized. None when it does not parse. A given ``tree`` is modified."""
    if tree is None:
        try:
            tree = sqlglot.parse_one(sql, read="sqlite")
        except Exception:
            return None
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


def exact_match(gold: str, pred: str, gold_tree: exp.Expression | None = None) -> bool:
    """Equal after sqlglot normalization (falls back to whitespace/case-normalized text).

    ``gold_tree``, an already parsed gold query, saves a parse (it is modified)."""
    if " ".join(gold.split()).rstrip(";") == " ".join(pred.split()).rstrip(";"):
        return True
    g, p = normalize_sql(gold, gold_tree), normalize_sql(pred)
    if g is None or p is None:
        return " ".join(gold.lower().split()).rstrip(";") == " ".join(pred.lower().split()).rstrip(";")
    return g == p


_WORD = re.compile(r"\w+")


def token_match(gold: str, pred: str) -> float:
    """Share of the gold query's word tokens (lower-cased) that appear in the prediction."""
    g = _WORD.findall(gold.lower())
    if not g:
        return 0.0
    p = set(_WORD.findall(pred.lower()))
    return sum(1 for t in g if t in p) / len(g)


def _row_match(pred_row: tuple[Any, ...], gold_row: tuple[Any, ...]) -> tuple[float, float, float]:
    total = len(gold_row) or 1
    matches = sum(1 for v in pred_row if v in gold_row)
    pred_only = len(pred_row) - matches
    gold_only = sum(1 for v in gold_row if v not in pred_row)
    return matches / total, pred_only / total, gold_only / total


def soft_f1(gold: Sequence[Sequence[Any]], pred: Sequence[Sequence[Any]]) -> float:
    """BIRD mini-dev's soft-F1: rows de-duplicated and paired by position, cell overlap per row.

    The official script de-duplicates through a Python set, so its row pairing depends on hash
    order; here rows keep their first-appearance order, which makes the score deterministic.
    """
    if not gold and not pred:
        return 1.0
    g = list(dict.fromkeys(map(tuple, gold)))
    p = list(dict.fromkeys(map(tuple, pred)))
    tp = fp = fn = 0.0
    for i, grow in enumerate(g):
        if i >= len(p):
            fn += 1
            continue
        m, po, go = _row_match(p[i], grow)
        tp, fp, fn = tp + m, fp + po, fn + go
    fp += max(0, len(p) - len(g))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
