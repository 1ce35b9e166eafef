"""Spider fine-tune: the default model, zero-shot vs fine-tuned execution accuracy on Spider dev.

1. data: Spider train and dev with compact schema prompts (train prompts within 512 tokens,
   schema linking's budget mode cutting the few longer ones, train and dev alike; every gold verified);
2. zero-shot: ``sqltune predict`` on dev (972 questions with a database), scored by the eval stage;
3. fine-tune: full fine-tune on Spider train, at most ``--train-minutes`` of training (default 45),
   one pass over a seeded shuffle of as many examples as fit;
4. fine-tuned: predict and score again.

Prints zero-shot EX, fine-tuned EX and the ratio (target: >= 10x). Every step writes into
``--out`` and resumes when rerun. Takes one to two hours on 2 CPU cores.

    python benchmarks/spider_finetune.py [--data-dir ../shared/data/spider] [--out runs/bench_spider]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sqltune.data.build import BuildConfig, build
from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.models import DEFAULT_MODEL, pull_model
from sqltune.predict.run import PredictConfig, predict
from sqltune.train.config import load_config
from sqltune.train.sft import train


def score(dataset: Path, pred: Path, out: Path) -> dict:
    s, _ = run_eval(EvalConfig(dataset=str(dataset), pred=str(pred), out=str(out), timeout=30.0, workers=2))
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"))
    ap.add_argument("--out", default="runs/bench_spider")
    ap.add_argument("--train-minutes", type=float, default=45.0)
    ap.add_argument(
        "--steps",
        type=int,
        default=600,
        help="schedule length; 600 steps of 8 fit in 45 min at ~450 tokens/s (the time budget may stop earlier)",
    )
    ap.add_argument("--learning-rate", type=float, default=2e-4)
    ap.add_argument(
        "--no-zero-shot",
        action="store_true",
        help="skip the zero-shot arm (15 minutes; the base model and prompts do not change between runs)",
    )
    ap.add_argument("--max-new-tokens", type=int, default=160)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pull_model(DEFAULT_MODEL)
    t0 = time.perf_counter()
    train_file, dev_file = out / "spider_train.jsonl", out / "spider_dev.jsonl"
    common = {
        "benchmark": "spider",
        "data_dir": args.data_dir,
        "schema": "compact",
        "tokenizer": DEFAULT_MODEL,
        # a prompt over 512 tokens shows what schema linking keeps for its question, in train and dev alike
        "schema_filter": "budget",
        "schema_budget": 512,
    }
    if not train_file.exists():
        build(BuildConfig(split="train", out=str(train_file), max_prompt_tokens=512, **common))
    if not dev_file.exists():
        build(BuildConfig(split="dev", out=str(dev_file), **common))

    before = None
    if not args.no_zero_shot:
        zs_pred = out / "zero_shot.pred.jsonl"
        predict(
            PredictConfig(dataset=str(dev_file), out=str(zs_pred), max_new_tokens=args.max_new_tokens), progress=False
        )
        before = score(dev_file, zs_pred, out / "zero_shot_eval")
        print(f"zero-shot EX {100 * before['ex']:.2f}% ({before['correct']}/{before['n']})", flush=True)

    run = out / "train"
    if (run / "manifest.json").exists():
        manifest = json.loads((run / "manifest.json").read_text())
    else:
        manifest = train(
            load_config(
                None,
                [
                    f"train_file={train_file}",
                    f"output_dir={run}",
                    "method=full",
                    f"max_steps={args.steps}",
                    f"max_minutes={args.train_minutes}",
                    "batch_size=8",
                    f"learning_rate={args.learning_rate}",
                    "lr_scheduler=cosine",
                    "warmup_ratio=0.03",
                    "save_steps=50",
                    "logging_steps=10",
                    "max_length=1024",
                ],
            )
        )
    steps = manifest["global_steps"]
    n_train = sum(1 for _ in train_file.open())
    print(
        f"trained {steps} of {args.steps} scheduled steps ({steps * 8} examples, {steps * 8 / n_train:.2f} epochs of "
        f"{n_train}; shared_prefix {manifest.get('shared_prefix')}) in {manifest['train_minutes']:.1f} min",
        flush=True,
    )

    ft_pred = out / "fine_tuned.pred.jsonl"
    predict(
        PredictConfig(
            dataset=str(dev_file), out=str(ft_pred), model=manifest["output"], max_new_tokens=args.max_new_tokens
        ),
        progress=False,
    )
    after = score(dev_file, ft_pred, out / "fine_tuned_eval")
    print()
    print("| model | Spider dev EX | correct / n |")
    print("| --- | ---: | ---: |")
    if before is not None:
        print(f"| {DEFAULT_MODEL} zero-shot | {100 * before['ex']:.2f}% | {before['correct']}/{before['n']} |")
    print(
        f"| {DEFAULT_MODEL} fine-tuned ({manifest['train_minutes']:.0f} min) | {100 * after['ex']:.2f}% | "
        f"{after['correct']}/{after['n']} |"
    )
    by = after.get("by_difficulty", {})
    print("by difficulty: " + ", ".join(f"{k} {100 * v['ex']:.1f}% ({v['n']})" for k, v in by.items()))
    print()
    if before is not None:
        ratio = after["ex"] / before["ex"] if before["ex"] else float("inf")
        print(f"ratio: {ratio:.1f}x (target >= 10x): {'MET' if ratio >= 10 else 'NOT MET'}")
    print(f"fine-tuned EX {100 * after['ex']:.2f}% (goal >= 25%): {'MET' if after['ex'] >= 0.25 else 'NOT MET'}")
    print(f"total minutes: {(time.perf_counter() - t0) / 60:.1f}")


if __name__ == "__main__":
    main()
