"""Accuracy of the ask engine vs plain predict, on a demo split with the quickstart's model.

``--split human`` (the questions written by hand: skill) or ``test`` (template paraphrases: recall).
It also scores ``sqltune ask`` with its defaults (one greedy answer, up to 2 repairs, no
abstention): the figure a served model gives.

Plain predict: one greedy answer per question, as ``sqltune predict`` gives it. Ask: the serve
stage's engine (``sqltune ask``): ``--samples`` candidates voted by execution result, up to
``--repairs`` retries with the engine's error, and an abstention when nothing runs or the winning
result has under ``--min-vote-share`` of the votes. Both are scored by the eval stage against
the gold. Prints plain EX, the ask engine's EX on the questions it answered, its answer rate,
and the share of plain predict's wrong answers that it abstained on instead.
Target: EX of answered >= plain EX + 5 points, with an answer rate >= 90%.

    python benchmarks/quickstart.py                      # makes runs/bench_quickstart (the model)
    python benchmarks/ask_accuracy.py [--run runs/bench_quickstart] [--split human|test]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.io import read_jsonl, write_jsonl
from sqltune.judge import Judge
from sqltune.models.backend_config import make_backend
from sqltune.models.backends import Backend
from sqltune.serve.ask import AskConfig, Database, ask_many, served_model


def load_run(run: Path, split: str) -> tuple[list[dict[str, Any]], Backend, str, Database]:
    """A finished quickstart folder's split records, its fine-tuned model as served (backend and prompt
    style) and the demo database, or an exit that says how to make the folder."""
    data = run / "data" / f"{split}.jsonl"
    if not (run / "train" / "model").is_dir() or not data.is_file():
        sys.exit(f"{run}: no fine-tuned quickstart model there; run python benchmarks/quickstart.py --out {run} first")
    records = read_jsonl(data)
    where, style = served_model(str(run / "train"))
    return records, make_backend("hf", where, batch_size=16), style, Database(records[0]["db_path"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/bench_quickstart", help="a quickstart folder (its train/ and data/)")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--repairs", type=int, default=2)
    ap.add_argument("--min-vote-share", type=float, default=0.4)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--split", choices=["test", "human"], default="test")
    args = ap.parse_args()
    run = Path(args.run)
    test = run / "data" / f"{args.split}.jsonl"
    records, backend, style, db = load_run(run, args.split)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def ex(answers: dict[str, str], name: str) -> dict[str, bool]:
            write_jsonl(tmp / f"{name}.jsonl", [{"id": i, "pred_sql": s} for i, s in answers.items()])
            _, files = run_eval(
                EvalConfig(dataset=str(test), pred=str(tmp / f"{name}.jsonl"), out=str(tmp / name), cache=False)
            )
            return {r["id"]: r["correct"] for r in read_jsonl(files["results"])}

        qs = [(r["question"], db, r.get("evidence", "")) for r in records]
        with Judge(workers=2, timeout=10) as judge:
            plain = ask_many(qs, backend, judge, AskConfig(samples=1, repairs=0, max_new_tokens=128), style)
            defaults = ask_many(qs, backend, judge, AskConfig(max_new_tokens=128), style)
            engine = ask_many(
                qs,
                backend,
                judge,
                AskConfig(
                    samples=args.samples,
                    repairs=args.repairs,
                    min_vote_share=args.min_vote_share,
                    temperature=args.temperature,
                    max_new_tokens=128,
                ),
                style,
            )
        ids = [str(r["id"]) for r in records]
        plain_ok = ex({i: a.attempts[0].sql for i, a in zip(ids, plain, strict=True)}, "plain")
        engine_ok = ex({i: a.sql for i, a in zip(ids, engine, strict=True)}, "engine")
        defaults_ok = ex({i: a.sql for i, a in zip(ids, defaults, strict=True)}, "defaults")
    answered = [i for i, a in zip(ids, engine, strict=True) if a.answered]
    n = len(ids)
    plain_ex = sum(plain_ok.values()) / n
    ans_ex = sum(engine_ok[i] for i in answered) / len(answered) if answered else 0.0
    rate = len(answered) / n
    wrong = [i for i in ids if not plain_ok[i]]
    abstained_on_wrong = sum(1 for i in wrong if i not in answered) / len(wrong) if wrong else 0.0
    abstained_on_right = sum(1 for i in ids if plain_ok[i] and i not in answered)
    print(f"demo {args.split} split ({n} questions), model {run / 'train'}, schema style {style}")
    print(f"plain predict (greedy, one answer): EX {100 * plain_ex:.1f}% ({sum(plain_ok.values())}/{n})")
    d_answered = sum(1 for a in defaults if a.answered)
    print(
        f"ask with its defaults ({AskConfig().samples} answer, {AskConfig().repairs} repairs, no abstention): "
        f"EX over all questions {100 * sum(defaults_ok.values()) / n:.1f}% ({sum(defaults_ok.values())}/{n}), "
        f"answered {d_answered}/{n}"
    )
    print(
        f"ask engine ({args.samples} candidates, {args.repairs} repairs, abstain under {args.min_vote_share:.0%} of the votes): "
        f"answered {len(answered)}/{n} ({100 * rate:.1f}%), EX of answered {100 * ans_ex:.1f}%, "
        f"EX over all questions {100 * sum(engine_ok[i] for i in answered) / n:.1f}%"
    )
    print(
        f"of plain predict's {len(wrong)} wrong answers, the engine abstained on {100 * abstained_on_wrong:.0f}%; "
        f"it abstained on {abstained_on_right} that plain predict had right"
    )
    ok = ans_ex >= plain_ex + 0.05 and rate >= 0.9
    print(
        f"target (EX of answered >= plain + 5 points, answer rate >= 90%): {'MET' if ok else 'NOT MET'} "
        f"({100 * (ans_ex - plain_ex):+.1f} points, {100 * rate:.1f}% answered)"
    )
    print(
        json.dumps(
            {
                "split": args.split,
                "plain_ex": plain_ex,
                "defaults_ex": sum(defaults_ok.values()) / n,
                "answered_ex": ans_ex,
                "engine_ex_all": sum(engine_ok[i] for i in answered) / n,
                "answer_rate": rate,
                "abstained_on_wrong": abstained_on_wrong,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
