"""pass@k. (Every per-question score, from EX and soft-F1 to the text metrics, belongs to the
judge: :mod:`sqltune.judge`.)"""

from __future__ import annotations

import math


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
