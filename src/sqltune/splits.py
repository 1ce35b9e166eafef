"""The one held-out split, used by ``sqltune data build --val-fraction`` and ``train``'s ``val_fraction``.

``by`` chooses what is held out whole:

* ``database``: whole databases (no database on both sides, as the benchmarks do), taken in a
  seeded order until they hold about ``fraction`` of the records; one always stays for training;
* ``structure``: whole query structures (the SQL with its literals masked,
  :func:`sqltune.sqlutil.skeleton`), so that two instances of one template, or paraphrases of
  one query, never straddle the split: the held-out loss measures questions of a shape the
  model did not train on, which is where overfitting shows;
* ``random``: records at random (seeded);
* ``auto`` (default): ``database`` when the records span two or more, else ``structure``.

:func:`holdout` says which it did.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

SPLITS = ("auto", "database", "structure", "random")


def _by_group(
    records: list[dict[str, Any]], keys: list[str], fraction: float, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Whole groups held out in a seeded order until they hold about ``fraction``; one stays."""
    count = Counter(keys)
    groups = sorted(count)
    rng.shuffle(groups)
    target = fraction * len(records)
    held: set[str] = set()
    n = 0
    for g in groups:
        if n >= target or len(held) + 1 >= len(groups):
            break
        held.add(g)
        n += count[g]
    train = [r for r, k in zip(records, keys, strict=True) if k not in held]
    val = [r for r, k in zip(records, keys, strict=True) if k in held]
    return train, val


def holdout(
    records: list[dict[str, Any]], fraction: float, seed: int = 0, by: str = "auto"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(train, held out, how): ``how`` is ``"none"``, ``"by_database"``, ``"by_structure"`` or ``"random"``."""
    if by not in SPLITS:
        raise ValueError(f"split {by!r} is not one of {', '.join(SPLITS)}")
    if fraction <= 0 or len(records) < 2:
        return records, [], "none"
    dbs = [str(r.get("db_id", "")) for r in records]
    rng = random.Random(seed)
    if by == "auto":
        by = "database" if len(set(dbs)) >= 2 else "structure"
    if by == "database" and len(set(dbs)) >= 2:
        train, val = _by_group(records, dbs, fraction, rng)
        return train, val, "by_database"
    if by in ("structure", "database"):  # one database: its query structures are what can be held out
        from sqltune.sqlutil import skeleton

        shapes = [f"{d}\x1f{skeleton(str(r.get('sql', '')))}" for d, r in zip(dbs, records, strict=True)]
        if len(set(shapes)) >= 2:
            train, val = _by_group(records, shapes, fraction, rng)
            return train, val, "by_structure"
    idx = list(range(len(records)))
    rng.shuffle(idx)
    k = min(len(records) - 1, max(1, round(len(records) * fraction)))
    chosen = set(idx[:k])
    train = [r for i, r in enumerate(records) if i not in chosen]
    val = [r for i, r in enumerate(records) if i in chosen]
    return train, val, "random"
