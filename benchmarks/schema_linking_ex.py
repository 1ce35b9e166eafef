"""Schema linking's effect on execution accuracy: the default model trained on Spider train for the same
minutes in each arm, scored on prompts built its own way: Spider dev, BIRD dev's superhero questions (with
evidence), and, for the linked arms, Spider dev asked of one database holding every Spider database (where the
whole schema cannot be shown: every such prompt would be refused).

Arms: ``whole`` (whole-schema prompts), ``linked`` (linked prompts, the setting of benchmarks/schema_linking.py,
each question asked of its own database) and ``mixed`` (the same linked prompts, but a seeded half of the
training questions asked of the merged database, its gold rewritten to the merged names: the model meets, in
training, prompts that show tables of several databases, as a warehouse's prompts do; Spider train's questions
only, never dev's).

    python benchmarks/schema_linking_ex.py [--train-minutes 12] [--train-steps 600] [--dev 400]
                                           [--arms whole,linked,mixed] [--focus F] [--large-only]
                                           [--out runs/bench_linking_ex]

The linked prompts of the merged database show a kept ``<db_id>__<table>`` by its own name when no other
kept table is shown so (the linker's ``short_names``, on by default: :mod:`sqltune.linking.names`), and
predict reads each answer back to the real names; and the linker ranks only the database (namespace) that
matches the question best, with those nearly as good that a foreign key joins to it (``focus``, 0.9 by
default; ``--focus`` scores the merged questions again at another share, the trained model read back), as a
database of its own: a question whose own database is the best-matching one gets that database's prompt.
The run prints how many merged prompts equal their own database's, and EX on those and on the others. Each
Spider database's own prompts have no namespaced tables and are unchanged by either.

Run it alone on the machine; every step writes into --out and resumes when rerun. ``--dev N`` scores a seeded
sample of N Spider dev questions (0: all 972) on each arm, the same questions on every arm.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from sqltune.data.bird import load_bird
from sqltune.data.build import BuildConfig, build
from sqltune.data.spider import load_spider
from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.models import DEFAULT_MODEL, pull_model
from sqltune.predict.run import PredictConfig, predict
from sqltune.train.config import load_config
from sqltune.train.sft import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema_linking import merge_spider, prefixed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LINKED = {"schema_filter": "auto", "schema_top_k": 8, "schema_values": True, "schema_embedder": "minilm"}


def score(dataset: Path, pred: Path, out: Path) -> dict:
    s, _ = run_eval(EvalConfig(dataset=str(dataset), pred=str(pred), out=str(out), timeout=30.0, workers=2))
    return s


def same_prompts(own_file: Path, big_file: Path, own_eval: Path, big_eval: Path) -> str:
    """How many merged-schema prompts show their question's own database's prompt, character for
    character, and EX on those and on the others, each question asked of its own database and of the merged
    one: where the prompt is the same the model answers as it answers there."""

    def rows(path: Path) -> dict[str, dict]:
        return {r["id"]: r for r in map(json.loads, path.read_text().splitlines()) if r}

    own, big, own_ok, big_ok = rows(own_file), rows(big_file), rows(own_eval), rows(big_eval)
    groups: dict[bool, list[str]] = {True: [], False: []}
    for i, rec in big.items():
        if i in own and i in own_ok and i in big_ok:
            groups[own[i]["messages"][1]["content"] == rec["messages"][1]["content"]].append(i)
    lines = []
    for same, ids in groups.items():
        a = sum(1 for i in ids if own_ok[i]["correct"])
        b = sum(1 for i in ids if big_ok[i]["correct"])
        what = "the same prompt as on their own database" if same else "another prompt"
        lines.append(f"  {len(ids)} questions with {what}: right on their own database {a}, on the merged one {b}")
    return "\n".join(lines)


def write_merged_pairs(examples: list, merged: Path, parts: dict, out: Path) -> int:
    """Pairs of ``examples`` asked of the merged database, each gold rewritten to its <db_id>__<table> names."""
    n = 0
    with out.open("w") as fh:
        for e in examples:
            if e.db_id not in parts:
                continue
            sql = prefixed(e.sql, e.db_id, {t.name.lower() for t in parts[e.db_id].tables})
            if sql:
                row = {"id": e.id, "question": e.question, "sql": sql, "db_path": str(merged.resolve())}
                fh.write(json.dumps(row) + "\n")
                n += 1
    return n


def mixed_train(args: argparse.Namespace, out: Path, merged: Path, parts: dict, common: dict, train_file: Path) -> None:
    """The linked arm's training records with a seeded half of the questions asked of the merged database."""
    train_all, _, _ = load_spider(args.spider, "train")
    train_all = [e for e in train_all if Path(e.db_path).is_file()]
    rng = random.Random(args.seed + 1)
    half = {e.id for e in rng.sample(train_all, len(train_all) // 2)}
    own = out / "mixed_own.jsonl"
    if not own.exists():
        build(
            BuildConfig(benchmark="spider", data_dir=args.spider, split="train", out=str(own), **common),
            [e for e in train_all if e.id not in half],
        )
    big = out / "mixed_merged.jsonl"
    if not big.exists():
        pairs = out / "mixed_merged_pairs.jsonl"
        write_merged_pairs([e for e in train_all if e.id in half], merged, parts, pairs)
        build(BuildConfig(benchmark="pairs", data_dir=str(pairs), split="", out=str(big), **common))
    lines = own.read_text().splitlines() + big.read_text().splitlines()
    rng.shuffle(lines)
    tmp = train_file.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(train_file)
    print(
        f"mixed: {len(own.read_text().splitlines())} own-database records, "
        f"{len(big.read_text().splitlines())} merged-database records",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider", default=str(ROOT.parent / "shared" / "data" / "spider"))
    ap.add_argument("--bird", default=str(ROOT.parent / "shared" / "data" / "bird"))
    ap.add_argument("--train-minutes", type=float, default=12.0)
    ap.add_argument(
        "--train-steps",
        type=int,
        default=600,
        help="stop training at this many steps (or at --train-minutes, whichever comes first): on a slow day, the "
        "steps of an earlier run",
    )
    ap.add_argument("--dev", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--arms", default="whole,linked,mixed", help="comma-separated: whole, linked, mixed")
    ap.add_argument("--out", default="runs/bench_linking_ex")
    ap.add_argument(
        "--focus",
        type=float,
        default=None,
        help="the linker's focus on the merged database (default: the linker's own); another value scores "
        "the merged questions again, with their own files, the trained model read back",
    )
    ap.add_argument("--large-only", action="store_true", help="score only the merged database's questions")
    args = ap.parse_args()
    chosen = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not chosen or set(chosen) - {"whole", "linked", "mixed"}:
        ap.error(f"--arms {args.arms}: give some of whole, linked, mixed")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pull_model(DEFAULT_MODEL)
    t0 = time.perf_counter()
    dev_all, _, _ = load_spider(args.spider, "dev")
    dev_all = [e for e in dev_all if Path(e.db_path).is_file()]
    rng = random.Random(args.seed)
    dev = sorted(rng.sample(dev_all, args.dev), key=lambda e: e.id) if 0 < args.dev < len(dev_all) else dev_all
    hero = [e for e in load_bird(args.bird, "dev")[0] if e.db_id == "superhero"]
    linked = LINKED if args.focus is None else {**LINKED, "schema_focus": args.focus}
    tag = "" if args.focus is None else f"_focus{args.focus:g}"
    arms = {a: ({} if a == "whole" else linked) for a in chosen}
    figures: dict[str, dict[str, str]] = {}
    merged, parts = merge_spider(Path(args.spider), out / "spider_all.sqlite")
    for arm, link in arms.items():
        common = {"schema": "compact", "tokenizer": DEFAULT_MODEL, **link}
        train_file, dev_file, hero_file = (
            out / f"{arm}_train.jsonl",
            out / f"{arm}_dev.jsonl",
            out / f"{arm}_bird.jsonl",
        )
        if arm == "mixed" and not train_file.exists():
            mixed_train(args, out, merged, parts, common, train_file)
        if not train_file.exists():
            build(BuildConfig(benchmark="spider", data_dir=args.spider, split="train", out=str(train_file), **common))
        if not dev_file.exists():
            build(BuildConfig(benchmark="spider", data_dir=args.spider, split="dev", out=str(dev_file), **common), dev)
        if not hero_file.exists():
            build(BuildConfig(benchmark="bird", data_dir=args.bird, split="dev", out=str(hero_file), **common), hero)
        run = out / f"{arm}_train"
        if (run / "manifest.json").exists():
            manifest = json.loads((run / "manifest.json").read_text())
        else:
            overrides = [
                f"train_file={train_file}",
                f"output_dir={run}",
                "method=full",
                f"max_steps={args.train_steps}",
                f"max_minutes={args.train_minutes}",
                "batch_size=8",
                "learning_rate=2e-4",
                "lr_scheduler=cosine",
                "warmup_ratio=0.03",
                "save_steps=50",
                "logging_steps=10",
                "max_length=1024",
                f"seed={args.seed}",
            ]
            manifest = train(load_config(None, overrides))
        print(f"{arm}: trained {manifest['global_steps']} steps in {manifest['train_minutes']:.1f} min", flush=True)
        for name, data in () if args.large_only else (("spider_dev", dev_file), ("bird_superhero", hero_file)):
            pred = out / f"{arm}_{name}.pred.jsonl"
            cfg = PredictConfig(
                dataset=str(data), out=str(pred), model=manifest["output"], max_new_tokens=args.max_new_tokens
            )
            predict(cfg, progress=False)
            s = score(data, pred, out / f"{arm}_{name}_eval")
            figures.setdefault(name, {})[arm] = f"{100 * s['ex']:.2f}% ({s['correct']}/{s['n']})"
            print(f"{arm} {name}: EX {figures[name][arm]}", flush=True)
        if arm != "whole":
            big_pairs = out / "large_pairs.jsonl"
            write_merged_pairs(dev, merged, parts, big_pairs)
            big_file = out / f"linked_large{tag}.jsonl"  # the same prompts for both linked arms
            if not big_file.exists() or not big_file.stat().st_size:
                build(BuildConfig(benchmark="pairs", data_dir=str(big_pairs), split="", out=str(big_file), **common))
            if not big_file.stat().st_size:
                raise SystemExit(f"{big_file}: no question of the merged database was built; see its report")
            pred = out / f"{arm}_large{tag}.pred.jsonl"
            predict(
                PredictConfig(dataset=str(big_file), out=str(pred), model=manifest["output"], max_new_tokens=160),
                progress=False,
            )
            s = score(big_file, pred, out / f"{arm}_large{tag}_eval")
            figures.setdefault("large_schema", {})[arm] = f"{100 * s['ex']:.2f}% ({s['correct']}/{s['n']})"
            preds = [json.loads(line) for line in pred.read_text().splitlines() if line.strip()]
            resolved = sum(1 for r in preds if r.get("resolved"))
            print(f"{arm} large_schema: EX {figures['large_schema'][arm]}", flush=True)
            print(
                f"  {resolved} of {len(preds)} answers named a table without its prefix and were read as the one "
                "table it names (predict's resolve_tables)",
                flush=True,
            )
            own_eval = out / f"{arm}_spider_dev_eval" / "results.jsonl"
            if own_eval.exists():
                print(same_prompts(dev_file, big_file, own_eval, out / f"{arm}_large{tag}_eval" / "results.jsonl"))
    print()
    heads = {"whole": "whole-schema prompts", "linked": "linked prompts", "mixed": "linked, half merged in training"}
    print("| questions | " + " | ".join(heads[a] for a in arms) + " |")
    print("| --- |" + " ---: |" * len(arms))
    for name, f in figures.items():
        cells = []
        for a in arms:
            none = "not run: every whole-schema prompt is over the context" if a == "whole" else ""
            cells.append(f.get(a, none))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"total minutes: {(time.perf_counter() - t0) / 60:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
