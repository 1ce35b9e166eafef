"""Chain-of-thought vs plain SQL answers, at equal training minutes, with the builtin teacher.

For a train/test pair (the demo's by default; Spider train -> dev with ``--spider DIR``):

1. ``sqltune data cot --teacher builtin`` writes reasoning answers for the train split, each kept
   only when its SQL returns the gold result; the test prompts get the CoT system prompt.
2. The default model is fine-tuned twice with the quickstart's recipe, for the same
   ``--minutes`` of training: on plain SQL answers and on reasoning answers. Reasoning answers
   are longer, so fewer fit in the same minutes: each run's schedule (max_steps) is sized from
   its own first batches timed on this machine (``sqltune.train.probe``; twice as long as the
   probe predicts fits), and ``max_minutes`` stops both runs at the same minute.
3. Both predict the test split (plain: 128 new tokens; CoT: 384, the last SQL block taken) and
   are scored by the eval stage.

Prints EX of both, the ratio, EX by difficulty, and generation tokens and seconds per question.
The cookbook's anchor is +16% relative (BIRD, Llama 3.1 8B, a 70B teacher). Target: CoT >= plain
at equal training time, or an honest measured negative.

    python benchmarks/cot_vs_plain.py [--data runs/bench_quickstart/data] [--out runs/bench_cot] [--minutes 8]
    python benchmarks/cot_vs_plain.py --spider ../shared/data/spider --out runs/bench_cot_spider --dev-limit 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sqltune.data.build import BuildConfig, build
from sqltune.data.demo import build_demo
from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.io import read_jsonl, write_jsonl
from sqltune.models import DEFAULT_MODEL, load_tokenizer, pull_model
from sqltune.predict.run import PredictConfig, predict
from sqltune.quickstart import RECIPE, cot_files
from sqltune.train.config import load_config
from sqltune.train.probe import probe_steps
from sqltune.train.sft import train


def tokens_per_example(path: Path, tok) -> float:
    recs = read_jsonl(path)[:200]
    total = 0
    for r in recs:
        ids = tok.apply_chat_template(r["messages"], tokenize=True)
        total += len(ids["input_ids"] if hasattr(ids, "keys") else ids)
    return total / len(recs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/bench_quickstart/data", help="a demo data folder (built if absent)")
    ap.add_argument("--spider", default=None, help="Spider folder: train -> dev instead of the demo")
    ap.add_argument("--dev-limit", type=int, default=None, help="score only the first N test questions")
    ap.add_argument("--out", default="runs/bench_cot")
    ap.add_argument("--minutes", type=float, default=8.0, help="training minutes per run")
    ap.add_argument("--probe-steps", type=int, default=3, help="steps timed to measure each dataset's speed")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pull_model(DEFAULT_MODEL)
    if args.spider:
        train_file, test_file = out / "spider_train.jsonl", out / "spider_dev.jsonl"
        common = {
            "benchmark": "spider",
            "data_dir": args.spider,
            "schema": "compact",
            "tokenizer": DEFAULT_MODEL,
            # a prompt over 512 tokens shows what schema linking keeps for its question, in train and dev alike
            "schema_filter": "budget",
            "schema_budget": 512,
        }
        if not train_file.exists():
            build(BuildConfig(split="train", out=str(train_file), max_prompt_tokens=512, **common))
        if not test_file.exists():
            build(BuildConfig(split="dev", out=str(test_file), **common))
    else:
        data = Path(args.data)
        if not (data / "test.jsonl").exists():
            build_demo(data, schema="compact", fmt="chat", seed=0, tokenizer=DEFAULT_MODEL)
        train_file, test_file = data / "train.jsonl", data / "test.jsonl"
    if args.dev_limit:
        sub = out / f"test.first{args.dev_limit}.jsonl"
        write_jsonl(sub, read_jsonl(test_file)[: args.dev_limit])
        test_file = sub
    t0 = time.perf_counter()
    cot_train, cot_test = cot_files(train_file, test_file)
    cot_seconds = time.perf_counter() - t0
    cot_report = json.loads(cot_train.with_name(cot_train.stem + ".report.json").read_text())

    tok = load_tokenizer(DEFAULT_MODEL)
    tpe = {"plain": tokens_per_example(train_file, tok), "cot": tokens_per_example(cot_train, tok)}
    results = {}
    for arm, tr, te, max_new in (("plain", train_file, test_file, 128), ("cot", cot_train, cot_test, 384)):
        run = out / f"train_{arm}"
        # the speed of this dataset on this machine: the run's own first batches timed
        # (sqltune.train.probe), then a schedule twice as long as fits, so that max_minutes stops
        # both runs at the same minute whatever the probe misjudges (on Spider its first batches ran
        # 1.8x slower than the run's average: a schedule sized to fit ended both runs early, unequally)
        base = {"model": DEFAULT_MODEL, "train_file": str(tr), "output_dir": str(run)}
        if not (run / "manifest.json").exists():
            s_step = probe_steps(load_config(RECIPE, ["val_fraction=0"], base=base), steps=args.probe_steps)[
                "s_per_step"
            ]
            steps = max(10, int(2.0 * args.minutes * 60 / s_step))
        else:
            steps = json.loads((run / "manifest.json").read_text())["config"]["max_steps"]
        if not (run / "manifest.json").exists():
            train(
                load_config(
                    RECIPE,
                    # no validation passes: they would spend the arms' minutes unequally (CoT examples are longer)
                    [f"max_steps={steps}", f"max_minutes={args.minutes}", "save_steps=1000", "val_fraction=0"],
                    base=base,
                )
            )
        m = json.loads((run / "manifest.json").read_text())
        pred = out / f"pred_{arm}.jsonl"
        t1 = time.perf_counter()
        predict(
            PredictConfig(dataset=str(te), out=str(pred), model=m["output"], max_new_tokens=max_new, cot=arm == "cot"),
            progress=False,
        )
        gen = time.perf_counter() - t1
        s, _ = run_eval(EvalConfig(dataset=str(te), pred=str(pred), out=str(out / f"eval_{arm}"), cache=False))
        recs = read_jsonl(pred)
        results[arm] = {
            "ex": s["ex"],
            "correct": s["correct"],
            "n": s["n"],
            "by_difficulty": {k: v["ex"] for k, v in s.get("by_difficulty", {}).items()},
            "train_minutes": m["train_minutes"],
            "steps": m["global_steps"],
            "scheduled_steps": steps,
            "examples_seen": m["global_steps"] * m["config"]["batch_size"] * m["config"]["grad_accum"],
            "train_tokens_per_example": round(tpe[arm], 1),
            "gen_tokens_per_question": round(sum(r["completion_tokens"] for r in recs) / len(recs), 1),
            "gen_seconds_per_question": round(gen / len(recs), 2),
            "errors": s.get("errors", {}),
        }
    p, c = results["plain"], results["cot"]
    ratio = c["ex"] / p["ex"] if p["ex"] else float("inf")
    summary = {"cot_data": {k: cot_report[k] for k in ("records", "kept", "dropped", "rejected_samples")}}
    summary.update(cot_data_seconds=round(cot_seconds, 1), minutes=args.minutes, results=results, ratio=round(ratio, 3))
    (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"CoT data (builtin teacher): {cot_report['kept']}/{cot_report['records']} kept in {cot_seconds:.1f} s")
    print("| answers | train min | steps (scheduled) | tokens/example | EX | by difficulty | gen tokens/q | s/q |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for arm, r in results.items():
        by = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["by_difficulty"].items())
        print(
            f"| {arm} | {r['train_minutes']:.1f} | {r['steps']} ({r['scheduled_steps']}) | "
            f"{r['train_tokens_per_example']} | {100 * r['ex']:.1f}% ({r['correct']}/{r['n']}) | {by} | "
            f"{r['gen_tokens_per_question']} | {r['gen_seconds_per_question']} |"
        )
    print(f"CoT / plain EX: {ratio:.2f}x (the cookbook's anchor: 1.16x)")
    print(f"target CoT >= plain at equal training time: {'MET' if c['ex'] >= p['ex'] else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
