"""What the query bank holds for a split's questions: the share whose right answer is a bank query at all,
and among the k nearest the bank finds for the question (no model involved).

For every database of the split, its bank (:func:`sqltune.linking.bank.bank_for`, drawn afresh or read from
the cache) is run once, query by query, read-only; each question's gold runs too, and a bank query is right
where its rows equal the gold's under the eval stage's comparison (:func:`sqltune.judge.compare.results_equal`,
row order counted where the gold has an outer ``ORDER BY``). Then each question's bank queries are ranked by
similarity to it (:meth:`QueryBank.nearest`), and the rank of the first right one is kept. Prints the share of
questions with a right query among the k nearest for k = 1, 3 (the chooser's ``NEAREST``), 10, 30, 100 and
anywhere. SQLite databases only (the split's ``db_path``).

    python benchmarks/bank_coverage.py --dataset runs/qs/data/human.jsonl [--misses]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from typing import Any

from sqltune.io import read_jsonl
from sqltune.judge.compare import has_outer_order_by, results_equal
from sqltune.linking.bank import NEAREST, bank_for

LIMIT = 2000
"""Rows read per query at most (every gold of the benchmarks returns fewer)."""


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]] | None:
    try:
        return conn.execute(sql).fetchmany(LIMIT)
    except sqlite3.Error:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="data-stage records with question, sql and db_path")
    ap.add_argument("--misses", action="store_true", help="also list the questions no bank query answers")
    args = ap.parse_args()
    t0 = time.perf_counter()
    by_db: dict[str, list[dict[str, Any]]] = {}
    for r in read_jsonl(args.dataset):
        by_db.setdefault(str(r["db_path"]), []).append(r)
    ranks: list[int | None] = []
    misses = []
    sizes = []
    for db, rs in by_db.items():
        bank = bank_for(db)
        if bank is None:
            print(f"{db}: no bank (the database could not be profiled)")
            ranks.extend(None for _ in rs)
            continue
        sizes.append(f"{db.rsplit('/', 1)[-1]} {len(bank)}")
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        results = {e: _rows(conn, e.sql) for e in bank.entries}
        hits = bank.nearest([str(r["question"]) for r in rs], k=len(bank))
        for r, h in zip(rs, hits, strict=True):
            gold = _rows(conn, r["sql"]) or []
            ordered = has_outer_order_by(r["sql"])
            rank = next(
                (
                    j
                    for j, x in enumerate(h)
                    if results[x.entry] is not None and results_equal(gold, results[x.entry], order_matters=ordered)
                ),
                None,
            )
            ranks.append(rank)
            if rank is None:
                misses.append((r["question"], r["sql"]))
        conn.close()
    n = len(ranks)
    print(f"# {args.dataset}: {n} questions; bank queries: {', '.join(sizes)} ({time.perf_counter() - t0:.0f} s)")
    print("| a right bank query among | questions |")
    print("| --- | ---: |")
    for k in (1, NEAREST, 10, 30, 100):
        got = sum(1 for x in ranks if x is not None and x < k)
        print(f"| the {k} nearest{' (the chooser)' if k == NEAREST else ''} | {100 * got / n:.1f}% ({got}/{n}) |")
    got = sum(1 for x in ranks if x is not None)
    print(f"| the whole bank | {100 * got / n:.1f}% ({got}/{n}) |")
    if args.misses:
        print()
        for q, sql in misses:
            print(f"- {q}\n    {sql}")


if __name__ == "__main__":
    main()
