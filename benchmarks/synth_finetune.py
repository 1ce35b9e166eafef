"""Your own database: pairs synthesized from Spider dev databases alone vs the generic route,
scored on those databases' real, human-written Spider dev questions.

1. ``sqltune data synth`` on each ``--dbs`` database (no Spider question is read): pairs and
   synthesis speed (pairs per second; target >= 500 verified pairs in <= 60 s for a Spider-sized database; a
   database may hold fewer result-distinct queries than that, which the count shows);
2. the Spider dev questions of those databases, compact prompts: zero-shot EX of the default model;
3. synth-tuned: the default model fine-tuned on the synthesized pairs of all of them, for
   ``--minutes`` of training (a schedule twice as long as ``sqltune.train.probe`` says fits, and
   ``max_minutes`` stops the run at the minute);
4. mixed: the same minutes on the synthesized pairs plus as many Spider train examples, shuffled
   (the lever that keeps the model's general skill while it learns the databases);
5. generic: the same model fine-tuned for the same minutes on Spider train (no dev database in it);
6. each predicts the dev questions and is scored by the eval stage.

Prints, per database and overall: zero-shot EX, synth-tuned EX, mixed EX, generic EX. Targets:
synth-tuned >= 3x zero-shot and >= the generic route at equal training minutes.

    python benchmarks/synth_finetune.py [--spider ../shared/data/spider] [--out runs/bench_synth] [--minutes 10]
        [--dbs concert_singer,pets_1,car_1,flight_2,employee_hire_evaluation,cre_Doc_Template_Mgt]
        [--paired-grounding]   # also each fine-tuned arm without value grounding, question by question
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sqltune.data.build import BuildConfig, build
from sqltune.data.synth import SynthConfig, synthesize
from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.io import read_jsonl, write_jsonl
from sqltune.models import DEFAULT_MODEL, pull_model
from sqltune.predict.run import PredictConfig, predict
from sqltune.quickstart import RECIPE, mixed_train_file
from sqltune.train.config import load_config
from sqltune.train.probe import probe_steps
from sqltune.train.sft import train

DEFAULT_DBS = "concert_singer,pets_1,car_1,flight_2,employee_hire_evaluation,cre_Doc_Template_Mgt"


def fine_tune(train_file: Path, run: Path, minutes: float) -> dict:
    if (run / "manifest.json").exists():
        return json.loads((run / "manifest.json").read_text())
    base = {"model": DEFAULT_MODEL, "train_file": str(train_file), "output_dir": str(run)}
    probe_cfg = load_config(RECIPE, ["val_fraction=0"], base=base)
    # a schedule twice as long as the probe says fits, so that max_minutes stops both arms at the
    # same minute whatever the probe misjudges (its first batches are not the run's average)
    s = probe_steps(probe_cfg, steps=3)["s_per_step"]
    steps = max(10, int(2.0 * minutes * 60 / s))
    cfg = load_config(
        RECIPE,
        [f"max_steps={steps}", f"max_minutes={minutes}", "val_fraction=0", "save_steps=100000", "logging_steps=10"],
        base=base,
    )
    return train(cfg)


def score(dataset: Path, model: str, out: Path, ground: bool = True) -> dict:
    pred = out / "pred.jsonl"
    cfg = PredictConfig(dataset=str(dataset), out=str(pred), model=model, max_new_tokens=160, ground_values=ground)
    predict(cfg, progress=False)
    s, _ = run_eval(EvalConfig(dataset=str(dataset), pred=str(pred), out=str(out / "eval"), timeout=30.0, workers=2))
    return s


def paired(dev: Path, out: Path, arms: list[tuple[str, dict, dict]]) -> None:
    """Each arm's model scored again without value grounding: per question, what grounding turned right or wrong."""
    print()
    print("| arm | EX with grounding (the default) | EX without | questions gained | lost | answers grounded |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, model, grounded in arms:
        tag = name.split("-")[0]
        free = score(dev, model["output"], out / f"{tag}_ungrounded", ground=False)
        on_dir = {"synth": "synth_tuned"}.get(tag, tag)
        on = {r["id"]: r["correct"] for r in read_jsonl(out / on_dir / "eval" / "results.jsonl")}
        off = {r["id"]: r["correct"] for r in read_jsonl(out / f"{tag}_ungrounded" / "eval" / "results.jsonl")}
        gained = sum(1 for k in on if on[k] and not off.get(k))
        lost = sum(1 for k in on if off.get(k) and not on[k])
        touched = sum(1 for r in read_jsonl(out / on_dir / "pred.jsonl") if r.get("grounded"))
        print(
            f"| {name} | {100 * grounded['ex']:.1f}% | {100 * free['ex']:.1f}% | {gained} | {lost} | "
            f"{touched} of {len(on)} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spider", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"))
    ap.add_argument("--dbs", default=DEFAULT_DBS)
    ap.add_argument("--out", default="runs/bench_synth")
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--minutes", type=float, default=10.0, help="training minutes of each fine-tuned arm")
    ap.add_argument(
        "--paired-grounding",
        action="store_true",
        help="also score each fine-tuned arm without value grounding (the arms score with it, the default): "
        "what grounding adds on these databases, the same model and prompts",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pull_model(DEFAULT_MODEL)
    dbs = args.dbs.split(",")
    root = Path(args.spider) / "database"

    speed = {}
    pair_files = []
    for db in dbs:
        f = out / f"pairs_{db}.jsonl"
        t0 = time.perf_counter()
        r = synthesize(SynthConfig(db=[str(root / db / f"{db}.sqlite")], out=str(f), n=args.pairs, seed=0))
        speed[db] = (r["written"], time.perf_counter() - t0)
        pair_files.append(f)
    synth_all = out / "pairs_all.jsonl"
    write_jsonl(synth_all, [r for f in pair_files for r in read_jsonl(f)])
    common = {"schema": "compact", "tokenizer": DEFAULT_MODEL}
    synth_train = out / "synth_train.jsonl"
    if not synth_train.exists():
        build(
            BuildConfig(
                benchmark="pairs",
                data_dir=str(synth_all),
                split="",
                out=str(synth_train),
                max_prompt_tokens=1024,
                **common,
            )
        )
    dev_all = out / "spider_dev.jsonl"
    if not dev_all.exists():
        build(BuildConfig(benchmark="spider", data_dir=args.spider, split="dev", out=str(dev_all), **common))
    dev = out / "dev_selected.jsonl"
    write_jsonl(dev, [r for r in read_jsonl(dev_all) if r["db_id"] in dbs])
    spider_train = out / "spider_train.jsonl"
    if not spider_train.exists():
        build(
            BuildConfig(
                benchmark="spider",
                data_dir=args.spider,
                split="train",
                out=str(spider_train),
                max_prompt_tokens=512,
                **common,
            )
        )

    # the product's own mixing (quickstart --db ... --mix): the pairs plus as many Spider train examples, shuffled
    mixed_train = mixed_train_file(synth_train, str(spider_train), seed=0)

    zs = score(dev, DEFAULT_MODEL, out / "zero_shot")
    m_synth = fine_tune(synth_train, out / "train_synth", args.minutes)
    synth = score(dev, m_synth["output"], out / "synth_tuned")
    m_mix = fine_tune(mixed_train, out / "train_mixed", args.minutes)
    mix = score(dev, m_mix["output"], out / "mixed")
    m_gen = fine_tune(spider_train, out / "train_generic", args.minutes)
    gen = score(dev, m_gen["output"], out / "generic")

    print("| database | synthesized pairs | seconds | pairs/s |")
    print("| --- | ---: | ---: | ---: |")
    for db, (n, sec) in speed.items():
        print(f"| {db} | {n} | {sec:.1f} | {n / sec:.0f} |")
    print()
    arms = (zs, synth, mix, gen)
    print("| database | dev questions | zero-shot EX | synth-tuned EX | mixed EX | generic EX |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for db in dbs:
        cells = [a["by_database"].get(db, {"ex": 0.0, "n": 0}) for a in arms]
        print(f"| {db} | {cells[0]['n']} | " + " | ".join(f"{100 * c['ex']:.1f}%" for c in cells) + " |")
    print(f"| all | {zs['n']} | " + " | ".join(f"{100 * a['ex']:.1f}% ({a['correct']}/{a['n']})" for a in arms) + " |")
    print()
    print(
        f"training: synth {m_synth['global_steps']} steps in {m_synth['train_minutes']} min; "
        f"mixed {m_mix['global_steps']} steps in {m_mix['train_minutes']} min; "
        f"generic {m_gen['global_steps']} steps in {m_gen['train_minutes']} min"
    )
    ratio = synth["ex"] / zs["ex"] if zs["ex"] else float("inf")
    print(f"synth-tuned vs zero-shot: {ratio:.1f}x (target >= 3x): {'MET' if ratio >= 3 else 'NOT MET'}")
    ok = synth["ex"] >= gen["ex"]
    print(
        f"synth-tuned vs generic at equal minutes: {100 * synth['ex']:.1f}% vs {100 * gen['ex']:.1f}%: "
        f"{'MET' if ok else 'NOT MET'}"
    )
    print(
        f"mixed vs generic at equal minutes: {100 * mix['ex']:.1f}% vs {100 * gen['ex']:.1f}%: "
        f"{'MET' if mix['ex'] >= gen['ex'] else 'NOT MET'}; mixed vs zero-shot: "
        f"{mix['ex'] / zs['ex'] if zs['ex'] else float('inf'):.1f}x"
    )
    if args.paired_grounding:
        paired(dev, out, [("synth-tuned", m_synth, synth), ("mixed", m_mix, mix), ("generic", m_gen, gen)])
    fast = [db for db, (n, sec) in speed.items() if n >= 500 and sec <= 60]
    slow = [db for db, (n, sec) in speed.items() if sec > 60]
    print(
        f"synthesis >= 500 pairs in <= 60 s: {len(fast)} of {len(speed)} databases ({', '.join(fast) or 'none'}); "
        f"over 60 s: {len(slow)}; the rest hold fewer result-distinct queries of the shapes: "
        f"{'MET' if fast and not slow else 'NOT MET'} (target: a Spider-sized database)"
    )


if __name__ == "__main__":
    main()
