"""The ceiling of choosing among a model's own answers: is any of its k candidates right?

Voting, abstention, repair and any reranker can only pick one of the candidates the model wrote. This
script asks the quickstart's model (``--run``, a finished ``sqltune quickstart`` folder) for ``--samples``
candidates per question on a demo split, through the serve stage's ask engine (the first greedy, the
rest sampled at ``--temperature``; no repairs), scores every candidate against the gold with the eval
stage, and prints:

* ``greedy``: EX of the first (greedy) candidate, what ``sqltune predict`` gives;
* ``vote``: EX of the engine's majority vote by result over the k candidates;
* ``any_of_j``: the share of questions where at least one of the first j candidates is right, for
  j = 1, 2, 4, ..., k: the most that any choice among j candidates can reach;
* ``ran``: the share of candidates that executed, and the mean number of distinct results per question.

When ``any_of_k`` is close to ``greedy``, no selection among the model's candidates can lift accuracy:
the right answer is not among them, and only a better model (its training data) can.

    python benchmarks/candidate_ceiling.py --run runs/qs [--split human|test] [--samples 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.io import read_jsonl, write_jsonl
from sqltune.judge import Judge
from sqltune.serve.ask import AskConfig, ask_many

sys.path.insert(0, str(Path(__file__).parent))
from ask_accuracy import load_run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/bench_quickstart", help="a quickstart folder (its train/ and data/)")
    ap.add_argument("--split", choices=["test", "human"], default="human")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.7)
    args = ap.parse_args()
    run = Path(args.run)
    records, backend, style, db = load_run(run, args.split)
    cfg = AskConfig(samples=args.samples, repairs=0, temperature=args.temperature, max_new_tokens=128)
    with Judge(workers=2, timeout=10) as judge:
        answers = ask_many([(r["question"], db, "") for r in records], backend, judge, cfg, style)

    # one scored record per candidate (same gold, id "<question id>#<k>"), plus the voted answer
    rows, preds = [], []
    for r, a in zip(records, answers, strict=True):
        for k, at in enumerate(a.attempts):
            rows.append({**r, "id": f"{r['id']}#{k}"})
            preds.append({"id": f"{r['id']}#{k}", "pred_sql": at.sql})
        rows.append({**r, "id": f"{r['id']}#vote"})
        preds.append({"id": f"{r['id']}#vote", "pred_sql": a.sql})
    with tempfile.TemporaryDirectory() as tmp:
        write_jsonl(Path(tmp) / "ds.jsonl", rows)
        write_jsonl(Path(tmp) / "pred.jsonl", preds)
        _, files = run_eval(
            EvalConfig(
                dataset=str(Path(tmp) / "ds.jsonl"),
                pred=str(Path(tmp) / "pred.jsonl"),
                out=str(Path(tmp) / "ev"),
                cache=False,
            )
        )
        correct = {x["id"]: bool(x["correct"]) for x in read_jsonl(files["results"])}

    n = len(records)
    ids = [str(r["id"]) for r in records]
    greedy = sum(correct[f"{i}#0"] for i in ids) / n
    vote = sum(correct[f"{i}#vote"] for i in ids) / n
    print(
        f"demo {args.split} split ({n} questions), model {run / 'train'}, {args.samples} candidates (first greedy, T={args.temperature})"
    )
    print(f"greedy EX {100 * greedy:.1f}%; majority vote by result {100 * vote:.1f}%")
    any_of: dict[int, float] = {}
    j = 1
    while True:
        any_of[j] = sum(any(correct.get(f"{i}#{k}", False) for k in range(j)) for i in ids) / n
        print(f"any of the first {j} candidates right: {100 * any_of[j]:.1f}%")
        if j >= args.samples:
            break
        j = min(2 * j, args.samples)
    attempts = [at for a in answers for at in a.attempts]
    ran = sum(at.ok for at in attempts) / len(attempts)
    print(f"candidates that ran: {100 * ran:.1f}% of {len(attempts)}")
    print(
        f"ceiling of any choice among the {args.samples} candidates: {100 * any_of[args.samples]:.1f}% "
        f"({100 * (any_of[args.samples] - greedy):+.1f} points over greedy)"
    )
    print(json.dumps({"split": args.split, "greedy": greedy, "vote": vote, "any_of": any_of, "ran": ran}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
