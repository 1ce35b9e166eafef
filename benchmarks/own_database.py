"""Your own database, on the demo shop: template recall vs hand-written questions.

1. ``sqltune quickstart --db shop.sqlite`` (the demo's database file, nothing else: the pairs are
   synthesized from it), which scores its model on the test split it holds out **by query
   structure** (no query shape on both sides);
2. the same model on 28 questions about the shop written by hand in phrasings no template or
   shape uses (``src/sqltune/data/demo_files/handwritten.jsonl``, the demo's human split, gold SQL verified by a test);
3. beside it, the demo quickstart's model (trained on the 56 hand-written templates' pairs,
   ``--demo-model``, e.g. ``runs/bench_quickstart/train/model``) and the base model, on the same
   hand-written questions.

4. with ``--mix SPIDER_DIR``: ``quickstart --db shop.sqlite --mix SPIDER_DIR`` (the same pairs plus as
   many Spider train examples), for the same number of training steps as step 1's run.

Prints a table: each model's EX on its own test split and on the hand-written questions. The gap
between the two columns is the figure to shrink (recall of training templates vs skill).

    python benchmarks/own_database.py [--out runs/bench_own] [--demo-model runs/bench_quickstart/train/model]
        [--mix ../shared/data/spider]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from synth_finetune import score  # the same scoring: predict 160 new tokens, eval stage

from sqltune.data.build import BuildConfig, build
from sqltune.data.demo import build_demo
from sqltune.io import read_jsonl
from sqltune.models import DEFAULT_MODEL
from sqltune.quickstart import run_quickstart

HANDWRITTEN = Path(__file__).resolve().parents[1] / "src" / "sqltune" / "data" / "demo_files" / "handwritten.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench_own")
    ap.add_argument("--demo-model", default="runs/bench_quickstart/train/model", help="the demo quickstart's model")
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--mix", default=None, help="a Spider folder: also the mixed arm (quickstart --db --mix)")
    args = ap.parse_args()
    out = Path(args.out)
    demo = out / "demo"
    if not (demo / "shop.sqlite").exists():
        build_demo(demo, schema="compact", fmt="chat", seed=0, tokenizer=DEFAULT_MODEL)
    shop = (demo / "shop.sqlite").resolve()  # a relative path would be read beside the fixture

    t0 = time.perf_counter()
    qs = run_quickstart(out / "quickstart_db", dbs=[str(shop)], benchmark="db", pairs=args.pairs)
    qs_minutes = (time.perf_counter() - t0) / 60
    qs_steps = json.loads((out / "quickstart_db" / "train" / "manifest.json").read_text())["global_steps"]
    synth = json.loads((out / "quickstart_db" / "data" / "pairs.report.json").read_text())

    hand = out / "handwritten.jsonl"
    built = build(
        BuildConfig(
            benchmark="pairs", data_dir=str(HANDWRITTEN), split="", db=str(shop), out=str(hand), schema="compact"
        )
    )
    if built["written"] != len(read_jsonl(HANDWRITTEN)):
        raise SystemExit(f"hand-written questions: {built['written']} built, skipped {built['skipped']}")
    rows = [("base model (zero-shot)", "-", None, score(hand, DEFAULT_MODEL, out / "hand_zero_shot"))]
    demo_qs = Path(args.demo_model).parents[1] / "summary.json"
    if Path(args.demo_model).exists():
        own = json.loads(demo_qs.read_text())["ex_fine_tuned"] if demo_qs.exists() else None
        n_train = len(read_jsonl(Path(args.demo_model).parents[1] / "data" / "train.jsonl"))
        rows.append(
            (
                "demo quickstart (56 templates)",
                f"{n_train} template pairs",
                own,
                score(hand, args.demo_model, out / "hand_demo"),
            )
        )
    rows.append(
        (
            "quickstart --db (synthesized)",
            f"{synth['written']} synthesized pairs",
            qs["ex_fine_tuned"],
            score(hand, qs["fine_tuned_model"], out / "hand_synth"),
        )
    )
    if args.mix:
        t1 = time.perf_counter()
        mx = run_quickstart(
            out / "quickstart_db_mix",
            dbs=[str(shop)],
            benchmark="db",
            pairs=args.pairs,
            mix=args.mix,
            overrides=[f"max_steps={qs_steps}"],
        )
        mix_minutes = (time.perf_counter() - t1) / 60
        rows.append(
            (
                "quickstart --db --mix (synthesized + Spider train)",
                f"{synth['written']} synthesized pairs' train split + as many Spider train examples",
                mx["ex_fine_tuned"],
                score(hand, mx["fine_tuned_model"], out / "hand_mix"),
            )
        )
        print(
            f"quickstart --db --mix: {qs_steps} steps (as many as without), whole run {mix_minutes:.1f} min "
            f"(training {mx['train_minutes']} min)"
        )
    print(
        f"quickstart --db: {synth['written']} pairs synthesized in {synth['seconds']} s; "
        f"{qs['test_questions']} held out by structure; whole run {qs_minutes:.1f} min "
        f"(training {qs['train_minutes']} min); zero-shot on its split {100 * qs['ex_zero_shot']:.1f}%"
    )
    print()
    print(f"| model | trained on | EX on its own test split | EX on {built['written']} hand-written questions |")
    print("| --- | --- | ---: | ---: |")
    for name, data, own, h in rows:
        own_s = "-" if own is None else f"{100 * own:.1f}%"
        print(f"| {name} | {data} | {own_s} | {100 * h['ex']:.1f}% ({h['correct']}/{h['n']}) |")
    print()
    for name, _, own, h in rows:
        if own is not None:
            print(f"{name}: gap own split - hand-written = {100 * (own - h['ex']):.1f} points")
    (out / "result.json").write_text(
        json.dumps({n: {"own_split": o, "handwritten": h["ex"]} for n, _, o, h in rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
