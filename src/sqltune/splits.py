"""The one held-out split, used by ``sqltune data build --val-fraction`` and ``train``'s ``val_fraction``.

Whole databases are held out when the records span two or more (no database on both sides,
as the benchmarks do); the held-out databases are taken in a seeded order until they hold
about ``fraction`` of the records, and at least one database always stays for training. Records
of a single database are held out at random (seeded), since there is no other way to hold out
anything. :func:`holdout` says which of the two it did.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any


def holdout(
    records: list[dict[str, Any]], fraction: float, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(train, held out, how): ``how`` is ``"none"``, ``"by_database"`` or ``"random"``."""
    if fraction <= 0 or len(records) < 2:
        return records, [], "none"
    per_db = Counter(str(r.get("db_id", "")) for r in records)
    rng = random.Random(seed)
    if len(per_db) >= 2:
        dbs = sorted(per_db)
        rng.shuffle(dbs)
        target = fraction * len(records)
        held: set[str] = set()
        n = 0
        for db in dbs:
            if n >= target or len(held) + 1 >= len(dbs):
                break
            held.add(db)
            n += per_db[db]
        train = [r for r in records if str(r.get("db_id", "")) not in held]
        val = [r for r in records if str(r.get("db_id", "")) in held]
        return train, val, "by_database"
    idx = list(range(len(records)))
    rng.shuffle(idx)
    k = min(len(records) - 1, max(1, round(len(records) * fraction)))
    chosen = set(idx[:k])
    train = [r for i, r in enumerate(records) if i not in chosen]
    val = [r for i, r in enumerate(records) if i in chosen]
    return train, val, "random"
