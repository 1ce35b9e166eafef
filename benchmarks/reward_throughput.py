"""GRPO's reward throughput: completions scored per second by the execution reward, through the judge.

Spider dev's questions (all whose database file is there, up to ``--n``) on their SQLite databases, with 4 completions each, as a
GRPO step sends them: the gold itself in a fenced block, the gold with its keywords re-cased (the same
result, another string: not a verdict-cache hit), a query that runs and returns another result, and one
that does not run. The gold results are cached first (one pass over the golds, as the first GRPO step
does); then every completion is judged afresh (new strings: nothing comes from the verdict cache), in
batches of ``--batch`` completions, with 2 judge workers. Prints completions/s and the rewards' means.
Target: at least 200 completions/s.

    python benchmarks/reward_throughput.py [--spider ../shared/data/spider] [--n 972] [--batch 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqltune.data.spider import load_spider
from sqltune.judge import Judge
from sqltune.train.rewards import SqlRewards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spider", default="../shared/data/spider")
    ap.add_argument("--n", type=int, default=972)
    ap.add_argument("--batch", type=int, default=64, help="completions per reward call (a GRPO step's)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    examples = [ex for ex in load_spider(args.spider, "dev")[0] if Path(ex.db_path).is_file()][: args.n]
    completions, golds, dbs = [], [], []
    for ex in examples:
        recased = " ".join(
            w.upper() if w.isalpha() and w.lower() in {"select", "from", "where"} else w for w in ex.sql.split()
        )
        for answer in (ex.sql, recased + " ", "SELECT 1 + 1", "SELECT * FROM no_such_table_here"):
            completions.append(f"```sql\n{answer}\n```")
            golds.append(ex.sql)
            dbs.append(ex.db_path)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Judge(workers=args.workers, timeout=10, cache=True, cache_path=Path(tmp) / "gold.sqlite") as judge,
    ):
        warm = SqlRewards(judge, "arctic")
        t0 = time.perf_counter()
        warm.score("execution", [f"```sql\n{g}\n```" for g in golds[::4]], golds[::4], dbs[::4])
        gold_s = time.perf_counter() - t0
        rewards = SqlRewards(judge, "arctic")  # a fresh verdict cache: every completion is judged
        values: list[float] = []
        t0 = time.perf_counter()
        for i in range(0, len(completions), args.batch):
            sl = slice(i, i + args.batch)
            values += rewards.score("execution", completions[sl], golds[sl], dbs[sl])
        seconds = time.perf_counter() - t0
    n = len(completions)
    rate = n / seconds
    by_kind = [sum(values[k::4]) / len(values[k::4]) for k in range(4)]
    print(
        f"Spider dev: {len(examples)} questions, {n} completions, {args.workers} judge workers, batches of {args.batch}"
    )
    print(f"gold results cached first: {gold_s:.2f} s")
    print(
        f"completions scored: {n} in {seconds:.2f} s: {rate:.0f} completions/s ({rewards.judged} of them run, the "
        f"rest verdict-cache hits: Spider dev asks most queries twice; {rewards.judged / seconds:.0f} run/s)"
    )
    print(
        "mean execution reward: gold {:.3f}, re-cased gold {:.3f}, runs but wrong {:.3f}, does not run {:.3f}".format(
            *by_kind
        )
    )
    print(f"target >= 200 completions/s: {'MET' if rate >= 200 else 'NOT MET'}")


if __name__ == "__main__":
    main()
