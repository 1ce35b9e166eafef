"""Speed of the data stage: Spider train (all 7,000 questions) -> chat / ddl JSONL, gold verified.

Target: <= 10 s wall on 2 CPU cores. Prints examples/s.

    python benchmarks/data_build.py [--data-dir ../shared/data/spider] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sqltune.data.build import BuildConfig, build
from sqltune.db import schema as schema_mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spider")
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--target-seconds", type=float, default=10.0)
    args = ap.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            schema_mod._CACHE.clear()  # cold: every schema read again from its database
            cfg = BuildConfig(
                benchmark="spider",
                data_dir=args.data_dir,
                split="train",
                out=f"{tmp}/train{i}.jsonl",
                format="chat",
                schema="ddl",
            )
            t0 = time.perf_counter()
            rep = build(cfg)
            times.append(time.perf_counter() - t0)
    best, worst = min(times), max(times)
    n_in = rep["input_examples"]
    print(f"spider train -> chat/ddl: {n_in} examples in, {rep['written']} written, skipped {rep['skipped']}")
    print(f"wall seconds per build (cold schema cache, {args.repeat} runs): " + ", ".join(f"{t:.2f}" for t in times))
    print(f"examples/s: {n_in / best:.0f} (best), {n_in / worst:.0f} (worst)")
    print(f"target {args.target_seconds:.0f} s: worst run is {args.target_seconds / worst:.1f}x under it")
    return 0 if worst <= args.target_seconds else 1


if __name__ == "__main__":
    sys.exit(main())
