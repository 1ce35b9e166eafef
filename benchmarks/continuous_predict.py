"""``sqltune predict`` on the hf backend: one continuous batch (the default) against fixed batches
(``--no-continuous``), the same model, prompts and greedy decoding, run one after the other.

Each arm predicts the dataset from scratch, twice, alternating (continuous, fixed, continuous, fixed), with
the query bank off so that generation is what is timed (value grounding on, the default). Prints each run's
generation seconds (predict's own ``seconds``, the model load left out), the ratio of the arms' means, and
on how many questions the two arms' SQL is the same (in bf16 a row's arithmetic depends on the rows beside
it, so a few greedy answers differ).

    python benchmarks/continuous_predict.py --dataset runs/qs/data/human.jsonl [--model smollm2-135m]
        [--out runs/bench_continuous]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

from sqltune.io import read_jsonl
from sqltune.predict.run import PredictConfig, predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="runs/bench_continuous")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    sql: dict[bool, dict[str, str]] = {}
    for k, continuous in enumerate([True, False, True, False]):
        pred = out / f"{'continuous' if continuous else 'fixed'}{k}.jsonl"
        cfg = PredictConfig(
            dataset=args.dataset,
            out=str(pred),
            model=args.model,
            max_new_tokens=args.max_new_tokens,
            continuous=continuous,
            query_bank=False,
        )
        s = predict(cfg, progress=False)
        seconds[continuous].append(s["seconds"])
        sql[continuous] = {str(r["id"]): r["pred_sql"] for r in read_jsonl(pred)}
        print(f"run {k + 1}: {'continuous' if continuous else 'fixed batches'} {s['seconds']:.1f} s", flush=True)
    c, f = statistics.mean(seconds[True]), statistics.mean(seconds[False])
    same = sum(1 for i, v in sql[True].items() if sql[False].get(i) == v)
    print(f"# {args.dataset}: {len(sql[True])} questions, model {args.model}, max_new_tokens {args.max_new_tokens}")
    print(f"continuous: {c:.1f} s, fixed batches: {f:.1f} s (means of 2): {f / c:.2f}x")
    print(f"the same SQL from both arms: {same}/{len(sql[True])}")


if __name__ == "__main__":
    main()
