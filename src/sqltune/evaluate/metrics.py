"""The metrics eval reports (their names and meanings) and pass@k. (Every per-question score, from EX and
soft-F1 to the text metrics, belongs to the judge: :mod:`sqltune.judge`.)"""

from __future__ import annotations

import functools
import math

from sqltune.errors import ConfigError

METRICS = {
    "ex": "execution accuracy: the prediction's result equals the gold's (comparison mode above)",
    "soft_f1": "BIRD mini-dev's soft-F1 of the two results, cell overlap per row (rows in first-appearance order)",
    "normalized_match": "sqltune's: equal sqlglot-normalized SQL (identifiers unquoted and lower-cased, literals kept); "
    "stricter than Spider's EM",
    "spider_em": "Spider's exact-set match (the official evaluation.py --etype match): components compared as sets, "
    "values, DISTINCT, LIMIT values and JOIN conditions ignored",
    "token_match": "the LitGPT article's: share of the gold's distinct \\w+ tokens (after sqlparse.format, "
    "keywords upper-cased) found in the prediction",
    "exact_match": "the LitGPT article's: equal after that same sqlparse formatting",
}
"""Every metric sqltune reports, with the one-line meaning report.md prints."""
DEFAULT_METRICS = "ex,soft_f1,normalized_match"


@functools.lru_cache(maxsize=64)
def parse_metrics(value: str) -> tuple[str, ...]:
    """``all``, or a comma list of METRICS names (``ex`` is always computed)."""
    names = list(METRICS) if value.strip() == "all" else [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ConfigError(f"metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRICS)} (or all)")
    return tuple(dict.fromkeys(["ex", *names]))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
