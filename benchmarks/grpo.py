"""GRPO after SFT against the same minutes of more SFT (the control), from one SFT start, scored on questions
the training data did not template.

    python benchmarks/grpo.py --start runs/quickstart/train/model --train runs/quickstart/data/train.jsonl \
        --eval runs/demo_handwritten.jsonl [--eval runs/spider_dev.jsonl] [--minutes 30] [--out runs/bench_grpo]
        [--reward arctic] [--lr 1e-5] [--generations 4] [--completion 96] [--no-select] [--prompts 96]
        [--ablate NAME:key=value,key=value ...] [--control-minutes M ...] [--synth runs/quickstart/data/shop.sqlite --synth-n 300]

Run it alone on the machine. Each --eval dataset (records from 'sqltune data build', built with the start
model's prompt contract) is scored for the start model, the GRPO arm and the SFT control; the table gives EX
and the change from the start. ``--prompts N`` trains both arms on N records of --train (shuffled with seed 0,
written to OUT/train.N.jsonl): a CPU-sized prompt set. Each ``--ablate`` adds a GRPO arm with the GRPO arm's
settings but the train-config keys it names (``lr5e-6:learning_rate=5e-6``, ``dense:reward=dense``), scored
beside the others against the same control. ``--synth DB`` trains both arms on pairs that ``sqltune data synth``
draws from DB alone (``--synth-n`` of them, seed 0; the quickstart's compact prompts, the demo's and
``quickstart --db``'s contract) instead of --train: questions of many shapes and phrasings that no template wrote;
a synthesized question equal to an --eval question after normalisation is dropped and counted. The GRPO arm's reward curves are in OUT/grpo/rewards.png and its selection in
OUT/grpo/selection.json. Selection's sampling runs before the GRPO arm's --minutes; ``--control-minutes M`` adds
an SFT control of M minutes (repeat), so that a control can spend the GRPO arm's whole wall time. Every step
writes into --out and resumes when rerun; a finished arm is read back, not trained again.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

from sqltune.data.synth import SynthConfig, synthesize
from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.io import read_jsonl, write_jsonl
from sqltune.predict.run import PredictConfig, predict
from sqltune.quickstart import build_compact
from sqltune.train.config import load_config
from sqltune.train.run import train


def score(model: str, dataset: Path, out: Path) -> dict:
    pred = out.parent / f"{out.name}.pred.jsonl"  # not with_suffix: an arm's name may hold a dot (sft_18.3min)
    predict(PredictConfig(dataset=str(dataset), out=str(pred), model=model, max_new_tokens=160), progress=False)
    s, _ = run_eval(EvalConfig(dataset=str(dataset), pred=str(pred), out=str(out), timeout=30.0, workers=2))
    return s


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def synth_file(db: Path, n: int, evals: list[str], out: Path) -> Path:
    """Pairs drawn from ``db`` by data synth, built with the quickstart's compact prompts, less any question
    that an eval set asks too (after normalisation)."""
    built = out / f"synth{n}.jsonl"
    if built.exists():
        return built
    pairs = out / f"synth{n}.pairs.jsonl"
    synthesize(SynthConfig(db=[str(db.resolve())], out=str(pairs), n=n, seed=0))
    asked = {_words(r["question"]) for e in evals for r in read_jsonl(e)}
    rows = read_jsonl(pairs)
    kept = [r for r in rows if _words(r["question"]) not in asked]
    print(f"synth: {len(rows)} pairs from {db.name}; {len(rows) - len(kept)} dropped as an eval question", flush=True)
    write_jsonl(pairs, kept)
    build_compact("pairs", pairs, "", built, 1024)
    return built


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", required=True, help="the SFT model folder both arms start from")
    ap.add_argument("--train", help="training records (the SFT run's); or --synth")
    ap.add_argument("--synth", help="a database: train on pairs 'sqltune data synth' draws from it")
    ap.add_argument("--synth-n", type=int, default=300, help="--synth: pairs to draw")
    ap.add_argument("--eval", action="append", required=True, help="a dataset to score (repeat)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--reward", default="arctic")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--sft-lr", type=float, default=3e-5)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--completion", type=int, default=96)
    ap.add_argument(
        "--control-minutes",
        type=float,
        action="append",
        help="an SFT control of this many minutes (repeat; default: --minutes); give the GRPO arm's minutes plus "
        "its selection's to spend the same wall time",
    )
    ap.add_argument("--no-select", action="store_true")
    ap.add_argument("--prompts", type=int, default=0, help="train on N records of --train (0: all)")
    ap.add_argument("--ablate", action="append", default=[], help="NAME:key=value,... an extra GRPO arm (repeat)")
    ap.add_argument("--out", default="runs/bench_grpo")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if bool(args.train) == bool(args.synth):
        raise SystemExit("give --train FILE or --synth DB (one of them)")
    train_file = synth_file(Path(args.synth), args.synth_n, args.eval, out) if args.synth else Path(args.train)
    if args.prompts:
        records = [line for line in train_file.read_text().splitlines() if line.strip()]
        random.Random(0).shuffle(records)
        train_file = out / f"train.{args.prompts}.jsonl"
        train_file.write_text("\n".join(records[: args.prompts]) + "\n")
    common = [
        f"model={args.start}",
        f"train_file={train_file}",
        "method=full",
        "max_steps=100000",
        f"max_minutes={args.minutes}",
        "logging_steps=1",
        "save_steps=20",
        "report_to=[]",
    ]
    grpo = [
        "objective=grpo",
        f"num_generations={args.generations}",
        f"batch_size={2 * args.generations}",
        f"max_completion_length={args.completion}",
        f"learning_rate={args.lr}",
        "lr_scheduler=constant",
        f"reward={args.reward}",
        f"select_prompts={str(not args.no_select).lower()}",
    ]
    arms = {"grpo": [*common, f"output_dir={out / 'grpo'}", *grpo]}
    for spec in args.ablate:
        name, _, keys = spec.partition(":")
        if not name or not keys or "=" not in keys:
            raise SystemExit(f"--ablate {spec!r}: write NAME:key=value[,key=value]")
        arms[name] = [*common, f"output_dir={out / name}", *grpo, *keys.split(",")]
    controls = []
    for minutes in args.control_minutes or [args.minutes]:
        name, folder = ("sft_control", "sft") if minutes == args.minutes else (f"sft_{minutes:g}min",) * 2
        arms[name] = [
            *common,
            f"output_dir={out / folder}",
            "batch_size=8",
            f"learning_rate={args.sft_lr}",
            f"max_minutes={minutes}",
        ]
        controls.append(name)
    models = {"start": args.start}
    for arm, overrides in arms.items():
        cfg = load_config(None, overrides)
        done = Path(cfg.output_dir) / "manifest.json"
        # a finished arm is read back, not trained again (resuming it would spend its budget a second time)
        m = json.loads(done.read_text()) if done.exists() else train(cfg)
        models[arm] = m["output"]
        extra = f"; selection {m['selection']}" if "selection" in m else ""
        print(f"{arm}: {m['global_steps']} steps in {m['train_minutes']:.1f} min{extra}", flush=True)
    rows = []
    for ds in map(Path, args.eval):
        ex = {name: score(model, ds, out / f"{ds.stem}_{name}_eval") for name, model in models.items()}
        rows.append((ds.name, ex))
        print(json.dumps({ds.name: {k: v["ex"] for k, v in ex.items()}}), flush=True)
    print()
    names = [a for a in arms if a not in controls] + controls
    print("| questions | start | " + " | ".join("GRPO" if a == "grpo" else a for a in names) + " |")
    print("| --- | ---: |" + " ---: |" * len(names))
    for name, ex in rows:
        s = ex["start"]["ex"]
        cells = [f"{100 * s:.1f}%"] + [f"{100 * ex[a]['ex']:.1f}% ({100 * (ex[a]['ex'] - s):+.1f})" for a in names]
        print(f"| {name} ({ex['start']['n']}) | " + " | ".join(cells) + " |")
    print(f"total minutes: {(time.perf_counter() - t0) / 60:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
