"""One model fine-tuned on Spider train in four dialects, predicting Spider dev on each engine.

1. every Spider database (train and dev) loaded into PostgreSQL, MariaDB/MySQL and DuckDB
   (``sqltune db load``'s loader), a read-only role per server database;
2. ``data build`` for each engine (``--target``): golds transpiled and kept only when they return the
   SQLite gold's result, the schema and system prompt of the engine; compact prompts, train prompts
   within 512 tokens;
3. one training file: each Spider train example once, in the dialect of one engine (rotating over the
   engines that kept it), shuffled; full fine-tune of the default model for ``--train-minutes``;
4. the same ``--dev`` dev questions (a seeded sample of the ones every engine kept) predicted with each
   engine's prompts and scored on that engine by the eval stage.

Prints EX per engine beside SQLite. Resumes from ``--out``. Run it alone on the machine.

    python benchmarks/engines_finetune.py [--train-minutes 20] [--dev 300] [--out runs/bench_engines_ft]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from sqltune.data.build import BuildConfig, build
from sqltune.db import roles
from sqltune.db.load import load_sqlite
from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.models import DEFAULT_MODEL, pull_model
from sqltune.predict.run import PredictConfig, predict
from sqltune.train.config import load_config
from sqltune.train.sft import train

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("sqlite", "postgresql", "mysql", "duckdb")


def drop_loaded(args: argparse.Namespace, db_ids: list[str], out: Path) -> None:
    """Drop the server databases and the reader role this benchmark made (the DuckDB files stay in --out)."""
    import sqlalchemy as sa

    from sqltune.db.target import resolve

    for base, eng in ((args.pg, "postgresql"), (args.mysql, "mysql")):
        e = resolve(base).sqlalchemy_engine(isolation_level="AUTOCOMMIT")
        with e.connect() as c:
            for d in db_ids:
                q = f'"sqltune_spider_{d}"' if eng == "postgresql" else f"`sqltune_spider_{d}`"
                c.execute(sa.text(f"DROP DATABASE IF EXISTS {q}" + (" WITH (FORCE)" if eng == "postgresql" else "")))
            if eng == "postgresql":
                c.execute(sa.text("DROP ROLE IF EXISTS sqltune_spider_reader"))
            else:
                c.execute(sa.text("DROP USER IF EXISTS 'sqltune_spider_reader'@'%'"))
        e.dispose()
    (out / "loaded.json").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spider", default=str(ROOT.parent / "shared" / "data" / "spider"))
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/test")
    ap.add_argument("--out", default="runs/bench_engines_ft")
    ap.add_argument("--train-minutes", type=float, default=20.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--dev", type=int, default=300, help="dev questions scored on every engine (0: all kept)")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--keep", action="store_true", help="keep the loaded server databases and the reader role")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spider = Path(args.spider)
    t0 = time.perf_counter()
    pull_model(DEFAULT_MODEL)

    # 1. load
    db_ids = sorted(p.name for p in (spider / "database").iterdir() if (p / f"{p.name}.sqlite").is_file())
    admin = {
        "postgresql": lambda d: args.pg.rsplit("/", 1)[0] + f"/sqltune_spider_{d}",
        "mysql": lambda d: args.mysql.rsplit("/", 1)[0] + f"/sqltune_spider_{d}",
        "duckdb": lambda d: f"duckdb:///{(out / 'duckdb' / f'{d}.duckdb').resolve()}",
    }
    loaded = out / "loaded.json"
    if not loaded.exists():
        for eng, url in admin.items():
            t1 = time.perf_counter()
            for d in db_ids:
                load_sqlite(spider / "database" / d / f"{d}.sqlite", url(d), replace=True)
                if eng != "duckdb":
                    roles.create_reader(url(d), role="sqltune_spider_reader")
            print(f"loaded {len(db_ids)} databases into {eng} in {time.perf_counter() - t1:.0f} s", flush=True)
        loaded.write_text(json.dumps(db_ids))
    target = {
        "sqlite": None,
        "postgresql": args.pg.rsplit("/", 1)[0].replace("postgres@", "sqltune_spider_reader@")
        + "/sqltune_spider_{db_id}",
        "mysql": args.mysql.rsplit("/", 1)[0].replace("root@", "sqltune_spider_reader@") + "/sqltune_spider_{db_id}",
        "duckdb": f"duckdb:///{(out / 'duckdb').resolve()}/{{db_id}}.duckdb",
    }

    # 2. data per engine
    common = {"benchmark": "spider", "data_dir": str(spider), "schema": "compact", "tokenizer": DEFAULT_MODEL}
    files: dict[str, dict[str, Path]] = {}
    for eng in ENGINES:
        files[eng] = {}
        for split in ("train", "dev"):
            f = out / f"{split}_{eng}.jsonl"
            files[eng][split] = f
            if not f.exists():
                tgt = target[eng]
                extra = {"max_prompt_tokens": 512} if split == "train" else {}
                r = build(BuildConfig(split=split, out=str(f), target=tgt, **common, **extra))
                skipped = r.get("skipped", {})
                print(f"data {split} {eng}: {r.get('written', '?')} records; skipped {skipped}", flush=True)
    read = {e: {s: [json.loads(x) for x in files[e][s].open()] for s in ("train", "dev")} for e in ENGINES}

    # 3. one mixed training file
    mixed = out / "train_mixed.jsonl"
    if not mixed.exists():
        by_id = {e: {r["id"]: r for r in read[e]["train"]} for e in ENGINES}
        rows = []
        for n, rid in enumerate(sorted(by_id["sqlite"])):
            have = [e for e in ENGINES if rid in by_id[e]]
            rows.append(by_id[have[n % len(have)]][rid])
        random.Random(0).shuffle(rows)
        mixed.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(
            f"mixed train: {len(rows)} examples; by dialect "
            + str({e: sum(1 for r in rows if r.get("dialect", "sqlite") == e) for e in ENGINES}),
            flush=True,
        )
    run = out / "train"
    if (run / "manifest.json").exists():
        manifest = json.loads((run / "manifest.json").read_text())
    else:
        manifest = train(
            load_config(
                None,
                [
                    f"train_file={mixed}",
                    f"output_dir={run}",
                    "method=full",
                    f"max_steps={args.steps}",
                    f"max_minutes={args.train_minutes}",
                    "batch_size=8",
                    "learning_rate=2e-4",
                    "lr_scheduler=cosine",
                    "warmup_ratio=0.03",
                    "save_steps=50",
                    "logging_steps=10",
                    "max_length=1024",
                ],
            )
        )
    steps = manifest["global_steps"]
    print(f"trained {steps} steps ({steps * 8} examples) in {manifest['train_minutes']:.1f} min", flush=True)

    # 4. the same dev questions on every engine
    dev_ids = set.intersection(*({r["id"] for r in read[e]["dev"]} for e in ENGINES))
    chosen = sorted(dev_ids)
    if args.dev and len(chosen) > args.dev:
        chosen = sorted(random.Random(0).sample(chosen, args.dev))
    keep = set(chosen)
    print(f"dev: {len(dev_ids)} questions kept on every engine; scoring {len(chosen)} of them on each", flush=True)
    results = {}
    for eng in ENGINES:
        ds = out / f"dev_{eng}.sample.jsonl"
        ds.write_text("".join(json.dumps(r) + "\n" for r in read[eng]["dev"] if r["id"] in keep))
        pred = out / f"pred_{eng}.jsonl"
        t1 = time.perf_counter()
        predict(
            PredictConfig(dataset=str(ds), out=str(pred), model=manifest["output"], max_new_tokens=args.max_new_tokens),
            progress=False,
        )
        gen_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        s, _ = run_eval(
            EvalConfig(dataset=str(ds), pred=str(pred), out=str(out / f"eval_{eng}"), workers=2, timeout=30)
        )
        results[eng] = (s, gen_s, time.perf_counter() - t1)
        print(
            f"{eng}: EX {100 * s['ex']:.1f}% ({s['correct']}/{s['n']}); predict {gen_s:.0f} s, eval {results[eng][2]:.1f} s",
            flush=True,
        )
    print()
    print(f"| engine | EX on the same {len(chosen)} Spider dev questions | correct / n | eval s |")
    print("| --- | ---: | ---: | ---: |")
    for eng, (s, _, ev) in results.items():
        print(f"| {eng} | {100 * s['ex']:.1f}% | {s['correct']}/{s['n']} | {ev:.1f} |")
    if not args.keep:
        drop_loaded(args, db_ids, out)
    print(
        f"model: {DEFAULT_MODEL}, full fine-tune, {steps} steps of 8 ({manifest['train_minutes']:.1f} min) on "
        f"Spider train in four dialects; total {(time.perf_counter() - t0) / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
