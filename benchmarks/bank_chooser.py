"""The query bank's chooser, lever by lever: how much each of its rules adds, on one model and one split.

One model predicts the split greedily, without the bank (``predict --no-query-bank``, value grounding on,
the default). Then, for every question, the bank's nearest queries (:mod:`sqltune.linking.bank`) and the
model's answer go through :func:`sqltune.linking.bank.choose` under each rule below; every candidate is
judged once against the gold (the eval stage's judge and comparison), so each row is EX of the same
answers, chosen differently:

* **the model alone** - no bank;
* **nearest, as drawn** - the first chooser: the nearest query, scored as drawn, taken where the model scores
  it higher;
* **+ run check** - the model's answer is out where it does not run (:func:`sqltune.linking.bank.runs`);
* **+ both spellings** - each bank query scored as drawn and as sqlglot writes it, the likelier counted;
* **+ 3 nearest**;
* **+ question-free prior** (:data:`sqltune.linking.bank.PRIOR`): each candidate's score minus
  ``PRIOR`` times its score after the prompt with the question left out;
* **+ distance from the nearest** (:data:`sqltune.linking.bank.SIMILARITY`): a hit farther in meaning than
  the nearest pays for the difference of cosines;
* **+ values** (the default, :data:`sqltune.linking.bank.VALUES`): each candidate pays per value it and the
  question disagree on (a text literal the question does not mention, a value the question names that it
  lacks); then the values at 2 and 8, the prior off, at 0.25 and at 1.0 (pointwise mutual information), the
  distance at 25 and 150, one spelling only, and 5 and 10 nearest, each with the other defaults;
* **ceiling** - the share of questions where the model's answer or one of the k nearest is right (what a
  perfect chooser would reach).

    python benchmarks/bank_chooser.py --model runs/qs/train/model --dataset runs/qs/data/human.jsonl
        [--out runs/bench_chooser] [--match multiset]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from sqltune.db.target import engine_of
from sqltune.io import read_jsonl
from sqltune.judge import Judge
from sqltune.judge.worker import ScoreJob
from sqltune.linking.bank import NEAREST, PRIOR, SIMILARITY, VALUES, bank_for, choose, named_values, runs
from sqltune.linking.values import ValueIndex
from sqltune.models.backend_config import open_backend
from sqltune.predict.run import PredictConfig, predict
from sqltune.prompts import messages_from_record


class Memo:
    """The backend's ``score``, each (prompt, answer) computed once across the rules."""

    scores_answers = True

    def __init__(self, backend: Any):
        self.backend, self.seen = backend, {}

    def score(self, prompts: list[Any], answers: list[list[str]]) -> list[list[float]]:
        keys = [[(json.dumps(p), a) for a in row] for p, row in zip(prompts, answers, strict=True)]
        todo = [
            (i, [a for a, k in zip(row, ks, strict=True) if k not in self.seen])
            for i, (row, ks) in enumerate(zip(answers, keys, strict=True))
        ]
        todo = [(i, row) for i, row in todo if row]
        if todo:
            got = self.backend.score([prompts[i] for i, _ in todo], [row for _, row in todo])
            for (i, row), sc in zip(todo, got, strict=True):
                for a, s in zip(row, sc, strict=True):
                    self.seen[(json.dumps(prompts[i]), a)] = s
        return [[self.seen[k] for k in ks] for ks in keys]


RULES = [
    ("nearest, as drawn (the first chooser)", 1, False, False, 0.0, 0.0, 0.0),
    ("+ run check", 1, False, True, 0.0, 0.0, 0.0),
    ("+ both spellings", 1, True, True, 0.0, 0.0, 0.0),
    (f"+ {NEAREST} nearest", NEAREST, True, True, 0.0, 0.0, 0.0),
    (f"+ question-free prior {PRIOR}", NEAREST, True, True, PRIOR, 0.0, 0.0),
    (f"+ distance from the nearest, {SIMILARITY:g} per cosine", NEAREST, True, True, PRIOR, SIMILARITY, 0.0),
    (f"+ values, {VALUES:g} per disagreement (the default)", NEAREST, True, True, PRIOR, SIMILARITY, VALUES),
    ("values 2 per disagreement", NEAREST, True, True, PRIOR, SIMILARITY, 2.0),
    ("values 8 per disagreement", NEAREST, True, True, PRIOR, SIMILARITY, 8.0),
    ("no prior", NEAREST, True, True, 0.0, SIMILARITY, VALUES),
    ("prior 0.25", NEAREST, True, True, 0.25, SIMILARITY, VALUES),
    ("prior 1.0 (pointwise mutual information)", NEAREST, True, True, 1.0, SIMILARITY, VALUES),
    ("distance 25 per cosine", NEAREST, True, True, PRIOR, 25.0, VALUES),
    ("distance 150 per cosine", NEAREST, True, True, PRIOR, 150.0, VALUES),
    ("each bank query as drawn only (one spelling)", NEAREST, False, True, PRIOR, SIMILARITY, VALUES),
    ("5 nearest", 5, True, True, PRIOR, SIMILARITY, VALUES),
    ("10 nearest", 10, True, True, PRIOR, SIMILARITY, VALUES),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True, help="data-stage records with question, sql and db_path")
    ap.add_argument("--out", default="runs/bench_chooser")
    ap.add_argument("--match", default="multiset", help="the eval stage's comparison (set for BIRD)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = PredictConfig(
        dataset=args.dataset, out=str(out / "pred.jsonl"), model=args.model, max_new_tokens=160, query_bank=False
    )
    if not (out / "pred.jsonl").exists():
        predict(cfg, progress=False)
    own = {str(r["id"]): r["pred_sql"] or "" for r in read_jsonl(out / "pred.jsonl")}
    recs = [r for r in read_jsonl(args.dataset) if str(r["id"]) in own and not r.get("table_names")]
    backend = Memo(open_backend(cfg))
    by_db: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_db.setdefault(str(r["db_path"]), []).append(r)
    chosen: dict[str, dict[str, str]] = {name: {} for name, *_ in RULES}
    ceiling: dict[int, dict[str, list[str]]] = {1: {}, NEAREST: {}, 10: {}}
    correct: dict[tuple[str, str], bool] = {}
    with Judge(workers=2, timeout=10.0) as judge:
        for db, rs in by_db.items():
            bank = bank_for(db)
            if bank is None:
                print(f"{db}: no bank (the database could not be profiled)")
                continue
            prompts = [messages_from_record(r) for r in rs]
            mine = [own[str(r["id"])] for r in rs]
            hits = bank.nearest([str(r["question"]) for r in rs], k=10)
            ran = runs(judge, db, mine)
            qs = [str(r["question"]) for r in rs]
            named = named_values(ValueIndex.open(db), qs)
            for name, k, spell, check, prior, sim, values in RULES:
                picks = choose(
                    backend,
                    prompts,
                    mine,
                    [h[:k] for h in hits],
                    ran if check else None,
                    engine_of(db),
                    spell,
                    questions=qs,
                    prior=prior,
                    similarity=sim,
                    named=named,
                    values=values,
                )
                for r, pick in zip(rs, picks, strict=True):
                    chosen[name][str(r["id"])] = pick["sql"]
            for k in ceiling:
                for r, m, h in zip(rs, mine, hits, strict=True):
                    ceiling[k][str(r["id"])] = [m, *(x.entry.sql for x in h[:k])]
            jobs = []
            for r, m, h in zip(rs, mine, hits, strict=True):
                cands = list(dict.fromkeys([m or "SELECT", *(x.entry.sql for x in h)]))
                jobs.append(ScoreJob(db, r["sql"], r["sql"], cands, args.match, 10.0, analysis=False))
            for job, res, r in zip(jobs, judge.score(jobs), rs, strict=True):
                for sql, v in zip(job.preds, res.verdicts, strict=False):
                    correct[(str(r["id"]), sql)] = bool(v.correct)
    ids = [str(r["id"]) for r in recs]
    n = len(ids)

    def ex(pick: dict[str, str]) -> str:
        got = sum(1 for i in ids if correct.get((i, pick.get(i) or "SELECT"), False))
        return f"{100 * got / n:.1f}% ({got}/{n})"

    print(f"# {args.dataset}: {n} questions, model {args.model} ({time.perf_counter() - t0:.0f} s)")
    print("| rule | EX | bank query taken |")
    print("| --- | ---: | ---: |")
    print(f"| the model alone | {ex({i: own[i] for i in ids})} | 0 |")
    for name, *_ in RULES:
        taken = sum(1 for i in ids if chosen[name][i] != own[i])
        print(f"| {name} | {ex(chosen[name])} | {taken} |")
    for k, cands in ceiling.items():
        got = sum(1 for i in ids if any(correct.get((i, c or "SELECT"), False) for c in cands[i]))
        print(f"| ceiling: the model's answer or one of the {k} nearest right | {100 * got / n:.1f}% ({got}/{n}) | |")


if __name__ == "__main__":
    main()
