"""Metrics computed from the SQL text and the verdicts: token match and pass@k.

(Execution-based scores, soft-F1 and exact match belong to the judge: :mod:`sqltune.judge`.)"""

from __future__ import annotations

import math
import re

_WORD = re.compile(r"\w+")


def token_match(gold: str, pred: str) -> float:
    """Share of the gold query's word tokens (lower-cased) that appear in the prediction."""
    g = _WORD.findall(gold.lower())
    if not g:
        return 0.0
    p = set(_WORD.findall(pred.lower()))
    return sum(1 for t in g if t in p) / len(g)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
