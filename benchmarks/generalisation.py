"""Questions people write: what each lever adds on the demo's human split, against template recall.

The demo quickstart's model is trained on template phrasings; its test split paraphrases those
templates (recall), its human split (``src/sqltune/data/demo_files/handwritten.jsonl``) is written
by hand (skill). This script measures, in one run, alone on the machine:

* **the quickstart** - the quickstart's model (``--base-run``, a finished ``sqltune quickstart`` run, e.g.
  ``python benchmarks/quickstart.py``'s), greedy: its ``summary.json`` figures (since 2026-12-08 trained on the
  templates plus pairs synthesized from the shop database, :data:`sqltune.quickstart.DEMO_PAIRS`; the arms
  below start from the template train split alone);
* **voting** - the same model, 5 samples at temperature 0.7, majority vote by result
  (``predict --num-samples 5``), on the human split: what self-consistency adds;
* **own pairs** - the same recipe and the **same number of steps**, on the template train split
  plus pairs synthesized from the shop database alone (``sqltune data synth``, no hand-written map),
  shuffled: what database-derived phrasings and query shapes add;
* **own pairs + voting**;
* **lexicon** - the same templates and steps, with prompts that list every value of the columns holding
  few (``--schema-categories 10``: a status, a segment, a country) and the values the question names
  (``--schema-values``), from the database's value index: what the schema lexicon's values add;
* **generic** - the same steps on the template train split plus as many pairs over the databases sqltune
  generates itself (``quickstart --mix generic``: 14 domains, no download), shuffled: what generated-database
  mixing adds;
* **spider** (with ``--spider DIR``) - the same, mixing as many Spider train examples instead (questions
  written by people over 140 databases): the reference the generated mix is measured against;
* **grounding** - the quickstart's model, greedy, without and with value grounding while decoding
  (``predict --ground-values``: a literal compared to a column spells one of its values,
  :mod:`sqltune.models.grounding`), on both splits: what grounding adds, no training;
* **forms** - the same recipe and steps on the template train split with one more phrasing of each question in
  another form (``build_demo(forms=1)``: a command, a fragment, a casual or polite message, units written
  otherwise; :mod:`sqltune.data.phrasing`), scored without and with value grounding: what phrasing diversity
  adds;
* **bank** - the quickstart's model, greedy and grounded, without and with the query bank (``predict
  --query-bank``: the verified query of the database's bank nearest in meaning to the question replaces the
  model's answer when the model scores it likelier, :mod:`sqltune.linking.bank`), on both splits, with the
  questions it gained and lost: what the bank adds, no training;
* **recipe** (``--recipe NAME:key=value,...``, repeatable) - the same template train split and steps
  with the training recipe changed (a lower learning rate, LoRA, embedding noise): what the recipe,
  not the data, adds.

Each arm prints EX on the human split and on the template split, and the step count it trained.

    python benchmarks/generalisation.py --base-run runs/bench_quickstart [--out runs/bench_generalisation]
        [--synth-pairs 400] [--arms voting,own,lexicon,generic,spider] [--spider ../shared/data/spider]
        [--recipe NAME:key=value,key=value ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.io import read_jsonl, write_jsonl
from sqltune.models import DEFAULT_MODEL
from sqltune.predict.run import PredictConfig, predict
from sqltune.quickstart import GENERIC, RECIPE, demo_train_file, mixed_train_file
from sqltune.train.config import load_config
from sqltune.train.run import train


def score(
    model: str, dataset: Path, out: Path, samples: int = 1, ground: bool = True, bank: bool = True
) -> dict[str, Any]:
    pred = out / "pred.jsonl"
    if not pred.exists():
        predict(
            PredictConfig(
                dataset=str(dataset),
                out=str(pred),
                model=model,
                max_new_tokens=128,
                num_samples=samples,
                seed=0,
                ground_values=ground,
                query_bank=bank,
            )
        )
    summary, _ = run_eval(EvalConfig(dataset=str(dataset), pred=str(pred), out=str(out / "eval"), timeout=10.0))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-run", default="runs/bench_quickstart", help="a finished 'sqltune quickstart' run folder")
    ap.add_argument("--out", default="runs/bench_generalisation")
    ap.add_argument("--synth-pairs", type=int, default=400)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument(
        "--arms",
        default="voting,own,lexicon,generic",
        help="which arms besides the quickstart's: voting, own, lexicon, generic, spider, grounding, forms, bank",
    )
    ap.add_argument("--spider", default=None, help="the Spider folder, for the spider arm")
    ap.add_argument(
        "--recipe", action="append", default=[], help="NAME:key=value,... the templates with a changed recipe (repeat)"
    )
    args = ap.parse_args()
    recipes = []
    for spec in args.recipe:
        name, _, kv = spec.partition(":")
        pairs = [p for p in kv.split(",") if p]
        if not name or not pairs or any("=" not in p for p in pairs):
            raise SystemExit(f"--recipe {spec!r}: write NAME:key=value[,key=value]")
        recipes.append((name, pairs))
    arms = set(args.arms.split(","))
    base, out = Path(args.base_run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    human, test, train_file = data / "human.jsonl", data / "test.jsonl", data / "train.jsonl"
    qs = json.loads((base / "summary.json").read_text())
    manifest = json.loads((base / "train" / "manifest.json").read_text())
    steps = manifest["global_steps"]
    rows: list[tuple[str, float, float | None, int, str]] = []
    base_train = str((base / "train" / "config.yaml").read_text()) if (base / "train" / "config.yaml").exists() else ""
    label = (
        "the quickstart (templates + own pairs)" if "train.own.jsonl" in base_train else "templates (the quickstart)"
    )
    rows.append((label, qs["ex_human"], qs["ex_fine_tuned"], steps, "greedy"))
    if "voting" in arms:
        t0 = time.perf_counter()
        voted = score(manifest["output"], human, out / "templates_vote", args.samples)
        rows.append(("templates + voting", voted["ex"], None, steps, f"{args.samples} samples, majority by result"))
        print(f"voting on the human split: {100 * voted['ex']:.1f}% ({time.perf_counter() - t0:.0f} s)", flush=True)
    if "grounding" in arms:
        for ground in (False, True):
            t0 = time.perf_counter()
            tag = "grounded" if ground else "ungrounded"
            h = score(manifest["output"], human, out / f"templates_{tag}_human", ground=ground)
            t = score(manifest["output"], test, out / f"templates_{tag}_test", ground=ground)
            note = "greedy, value grounding" if ground else "greedy, no value grounding"
            rows.append((f"templates, {'with' if ground else 'without'} grounding", h["ex"], t["ex"], steps, note))
            print(
                f"{tag}: human {100 * h['ex']:.1f}%, template {100 * t['ex']:.1f}% ({time.perf_counter() - t0:.0f} s)"
            )
    if "bank" in arms:
        rows += bank_arm(manifest["output"], human, test, out, steps)
    if "forms" in arms:
        rows += forms_arm(out, steps)
    if "own" in arms:
        rows += own_pairs_arm(args, data, out, train_file, human, test, steps)
    if "lexicon" in arms:
        rows += lexicon_arm(out, steps)
    if "generic" in arms:
        rows += mix_arm("generic", GENERIC, "templates + generated databases", train_file, human, test, out, steps)
    if "spider" in arms and args.spider:
        rows += mix_arm("spider", args.spider, "templates + Spider train", train_file, human, test, out, steps)
    for name, overrides in recipes:
        m = trained(train_file, out / f"recipe_{name}_train", steps, name, overrides)
        h = score(m["output"], human, out / f"recipe_{name}_human")
        t = score(m["output"], test, out / f"recipe_{name}_test")
        rows.append((f"templates, {name}", h["ex"], t["ex"], m["global_steps"], ", ".join(overrides)))

    report(rows, qs)


def trained(
    train_file: Path, run_dir: Path, steps: int, name: str, overrides: list[str] | None = None
) -> dict[str, Any]:
    """The quickstart's recipe (with ``overrides``) on ``train_file`` for ``steps`` steps (resumed when done)."""
    if not (run_dir / "manifest.json").exists():
        cfg = load_config(
            RECIPE,
            [f"max_steps={steps}", *(overrides or [])],
            base={"model": DEFAULT_MODEL, "train_file": str(train_file), "output_dir": str(run_dir)},
        )
        t1 = time.perf_counter()
        train(cfg)
        print(f"{name} arm trained {steps} steps in {(time.perf_counter() - t1) / 60:.1f} min", flush=True)
    return dict(json.loads((run_dir / "manifest.json").read_text()))


def mix_arm(
    name: str, mix: str, label: str, train_file: Path, human: Path, test: Path, out: Path, steps: int
) -> list[tuple[str, float, float | None, int, str]]:
    """The template train split plus as many examples of ``mix`` (what ``quickstart --mix`` does), same steps."""
    copy = out / f"{name}_data" / "train.jsonl"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(copy, read_jsonl(train_file))
    mixed = mixed_train_file(copy, mix, seed=0)
    m = trained(mixed, out / f"{name}_train", steps, name)
    h = score(m["output"], human, out / f"{name}_human")
    t = score(m["output"], test, out / f"{name}_test")
    n = len(read_jsonl(mixed)) - len(read_jsonl(copy))
    return [(label, h["ex"], t["ex"], m["global_steps"], f"{n} mixed examples")]


def _verdicts(out: Path) -> dict[str, bool]:
    return {r["id"]: bool(r["correct"]) for r in read_jsonl(out / "eval" / "results.jsonl")}


def bank_arm(
    model: str, human: Path, test: Path, out: Path, steps: int
) -> list[tuple[str, float, float | None, int, str]]:
    rows = []
    for split, data in (("human", human), ("test", test)):
        t0 = time.perf_counter()
        off = score(model, data, out / f"templates_nobank_{split}", bank=False)
        on = score(model, data, out / f"templates_bank_{split}", bank=True)
        a, b = _verdicts(out / f"templates_nobank_{split}"), _verdicts(out / f"templates_bank_{split}")
        taken = sum(
            1 for r in read_jsonl(out / f"templates_bank_{split}" / "pred.jsonl") if r.get("bank", {}).get("from_bank")
        )
        gained = sorted(k for k in b if b[k] and not a.get(k))
        lost = sorted(k for k in b if a.get(k) and not b[k])
        print(
            f"bank, {split}: {100 * off['ex']:.1f}% -> {100 * on['ex']:.1f}%; bank query taken for {taken} of {len(b)}; "
            f"gained {len(gained)} {gained}, lost {len(lost)} {lost} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        rows.append((split, off["ex"], on["ex"], taken, f"gained {len(gained)}, lost {len(lost)}"))
    (h_off, h_on, h_taken, h_note), (t_off, t_on, t_taken, t_note) = [r[1:] for r in rows]
    return [
        ("templates, without the query bank", h_off, t_off, steps, "greedy, value grounding"),
        (
            "templates, with the query bank",
            h_on,
            t_on,
            steps,
            f"bank query taken: human {h_taken}, template {t_taken}; human {h_note}; template {t_note}",
        ),
    ]


def forms_arm(out: Path, steps: int) -> list[tuple[str, float, float | None, int, str]]:
    """The template train split plus one more phrasing of each question in another form, the same steps."""
    from sqltune.data.demo import build_demo

    data = out / "forms_data"
    if not (data / "train.jsonl").exists():
        build_demo(data, schema="compact", fmt="chat", seed=0, tokenizer=DEFAULT_MODEL, forms=1)
    n = len(read_jsonl(data / "train.jsonl"))
    m = trained(data / "train.jsonl", out / "forms_train", steps, "forms")
    rows = []
    for ground in (False, True):
        tag = "grounded" if ground else "ungrounded"
        h = score(m["output"], data / "human.jsonl", out / f"forms_{tag}_human", ground=ground)
        t = score(m["output"], data / "test.jsonl", out / f"forms_{tag}_test", ground=ground)
        note = f"{n} train examples, {'with' if ground else 'no'} value grounding"
        rows.append((f"templates + forms, {'with' if ground else 'without'} grounding", h["ex"], t["ex"], steps, note))
    return rows


def lexicon_arm(out: Path, steps: int) -> list[tuple[str, float, float | None, int, str]]:
    from sqltune.data.demo import build_demo

    data = out / "lexicon_data"
    if not (data / "human.jsonl").exists():
        build_demo(data, tokenizer=DEFAULT_MODEL, schema_categories=10, schema_values=True)
    m = trained(data / "train.jsonl", out / "lexicon_train", steps, "lexicon")
    h = score(m["output"], data / "human.jsonl", out / "lexicon_human")
    t = score(m["output"], data / "test.jsonl", out / "lexicon_test")
    tokens = json.loads((data / "train.report.json").read_text()).get("prompt_tokens", {})
    return [
        (
            "templates, lexicon prompts",
            h["ex"],
            t["ex"],
            m["global_steps"],
            f"prompt tokens median {tokens.get('median')}",
        )
    ]


def own_pairs_arm(
    args: Any, data: Path, out: Path, train_file: Path, human: Path, test: Path, steps: int
) -> list[tuple[str, float, float | None, int, str]]:
    # own pairs: what the quickstart trains on (the shop file alone, the quickstart's prompts)
    mixed = demo_train_file(data, args.synth_pairs, seed=0, into=out / "own_data")
    own_file = out / "own_data" / "shop_pairs.built.jsonl"
    own = trained(mixed, out / "own_train", steps, "own-pairs")
    h = score(own["output"], human, out / "own_human")
    t = score(own["output"], test, out / "own_test")
    rows = [("templates + own pairs", h["ex"], t["ex"], own["global_steps"], f"{len(read_jsonl(own_file))} pairs")]
    hv = score(own["output"], human, out / "own_human_vote", args.samples)
    rows.append(("templates + own pairs + voting", hv["ex"], None, own["global_steps"], f"{args.samples} samples"))
    return rows


def report(rows: list[tuple[str, float, float | None, int, str]], qs: dict[str, Any]) -> None:
    print()
    print(f"human split: {qs['human_questions']} questions written by hand; template split: {qs['test_questions']}")
    print("| arm | human-written EX | template split EX | steps | note |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, hx, tx, st, note in rows:
        tpl = "" if tx is None else f"{100 * tx:.1f}%"
        print(f"| {name} | {100 * hx:.1f}% | {tpl} | {st} | {note} |")
    base_h = rows[0][1]
    for name, hx, *_ in rows[1:]:
        print(f"lever: {name}: {100 * (hx - base_h):+.1f} points on the human split")
    print(f"target human-written EX >= 50%: {'MET' if max(r[1] for r in rows) >= 0.5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
