"""Make tests/fixtures/spider_em_pairs.jsonl: Spider dev gold/prediction pairs with the verdicts
of the official Spider ``evaluation.py --etype match`` (taoyds/spider), per pair.

The official script is not part of sqltune; point this at a checkout of it:

    git clone https://github.com/taoyds/spider /tmp/spider-official   # commit b7b5b8c in the fixture
    pip install nltk
    python tests/reference/make_spider_em_fixture.py --official /tmp/spider-official \
        --data-dir ../shared/data/spider --out tests/fixtures/spider_em_pairs.jsonl

Predictions are the gold queries changed in seeded, labelled ways: formatting only, alias
renames, DISTINCT added or dropped, SELECT columns swapped, LIMIT and values changed (all of
which Spider's EM ignores), operators flipped, conditions dropped, sort direction reversed,
aggregates and tables changed (which it does not), and ``<>`` and aliases without ``AS``
(which its parser cannot read). For every pair the script records whether the official parser
read the gold and the prediction, its exact-match verdict and its partial F1 per component,
computed by the official code the way its ``evaluate()`` does (values dropped, foreign keys
mapped with tables.json, DISTINCT off).

nltk's ``word_tokenize`` needs the punkt model, which cannot be downloaded here; the official
tokenizer is run with ``preserve_line=True`` (no sentence splitting), which only differs when a
SQL string outside quotes reads as two sentences.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import subprocess
import sys
from pathlib import Path


def perturbations(sql: str, tables: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(kind, changed sql) for every change that applies to this query."""
    out = [("identity", sql)]
    low = re.sub(
        r"\b(SELECT|FROM|WHERE|GROUP BY|ORDER BY|JOIN|AS|ON|AND|OR|LIMIT|DESC|ASC)\b", lambda m: m.group(0).lower(), sql
    )
    out.append(("formatting", re.sub(r"\s+", "  ", low).replace(" ,", ",")))
    if re.search(r"\bT1\b", sql):
        out.append(("alias_rename", re.sub(r"\bT(\d)\b", lambda m: f"alias{m.group(1)}x", sql)))
        out.append(("alias_without_as", re.sub(r"(?i)\bAS\s+(T\d)\b", r"\1", sql)))
    if re.search(r"(?i)^select\s+distinct\b", sql):
        out.append(("distinct_dropped", re.sub(r"(?i)^select\s+distinct\b", "SELECT", sql)))
    elif not re.search(r"(?i)distinct", sql):
        out.append(("distinct_added", re.sub(r"(?i)^select\b", "SELECT DISTINCT", sql)))
    m = re.match(r"(?is)^(select\s+(?:distinct\s+)?)([^,()]+?)\s*,\s*([^,()]+?)(\s+from\s.*)$", sql)
    if m:
        out.append(("select_swapped", f"{m.group(1)}{m.group(3)}, {m.group(2)}{m.group(4)}"))
    if re.search(r"(?i)limit\s+\d", sql):
        out.append(("limit_value", re.sub(r"(?i)limit\s+(\d+)", lambda m: f"LIMIT {int(m.group(1)) + 2}", sql)))
    if re.search(r"'[^']*'|\b\d+\b", sql.split("FROM", 1)[-1]):
        out.append(("value_changed", re.sub(r"'[^']*'", "'zzz'", sql, count=1)))
    if " > " in sql or " < " in sql:
        out.append(
            ("operator_flipped", sql.replace(" > ", " >= ", 1) if " > " in sql else sql.replace(" < ", " <= ", 1))
        )
    if " != " in sql:
        out.append(("neq_angle", sql.replace(" != ", " <> ")))
    if re.search(r"(?i)\swhere\s.*\sand\s", sql):
        out.append(
            ("condition_dropped", re.sub(r"(?i)\s+and\s+[^()]*?(?=(\s+(group|order|limit)\b|$))", "", sql, count=1))
        )
    if re.search(r"(?i)\bdesc\b", sql):
        out.append(("order_flipped", re.sub(r"(?i)\bdesc\b", "ASC", sql, count=1)))
    if re.search(r"(?i)\bcount\(", sql):
        out.append(("aggregate_changed", re.sub(r"(?i)\bcount\(", "max(", sql, count=1)))
    used = [t for t in tables if re.search(rf"(?i)\bfrom\s+{re.escape(t)}\b", sql)]
    others = [t for t in tables if t not in used]
    if used and others:
        t = used[0]
        out.append(
            ("table_changed", re.sub(rf"(?i)\bfrom\s+{re.escape(t)}\b", f"FROM {rng.choice(others)}", sql, count=1))
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="a checkout of taoyds/spider (evaluation.py, process_sql.py)")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import nltk

    sys.path.insert(0, args.official)
    import evaluation as ev  # the official script
    import process_sql

    process_sql.word_tokenize = lambda s: nltk.word_tokenize(s, preserve_line=True)
    try:
        commit = subprocess.run(
            ["git", "-C", args.official, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "unknown"
    d = Path(args.data_dir)
    kmaps = ev.build_foreign_key_map_from_json(str(d / "tables.json"))
    rng = random.Random(args.seed)
    lines = [x.split("\t") for x in (d / "dev_gold.sql").read_text().splitlines() if x.strip()]
    pairs = []
    for gold, db_id in lines:
        db = d / "database" / db_id / f"{db_id}.sqlite"
        if not db.is_file():
            continue
        conn = sqlite3.connect(db)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        conn.close()
        options = perturbations(gold, tables, rng)
        kind, pred = rng.choice(options)
        pairs.append((db_id, str(db), gold, pred, kind))
    rng.shuffle(pairs)
    pairs = pairs[: args.n]

    def official(schema, sql):
        try:
            return process_sql.get_sql(schema, sql)
        except Exception:  # the official script's own reaction: an empty prediction
            return None

    empty = {
        "except": None,
        "from": {"conds": [], "table_units": []},
        "groupBy": [],
        "having": [],
        "intersect": None,
        "limit": None,
        "orderBy": [],
        "select": [False, []],
        "union": None,
        "where": [],
    }
    out = Path(args.out)
    with open(out, "w") as fh:
        fh.write(
            json.dumps(
                {
                    "meta": {
                        "official_commit": commit,
                        "script": "evaluation.py --etype match",
                        "tokenizer": "nltk word_tokenize, preserve_line=True",
                        "seed": args.seed,
                    }
                }
            )
            + "\n"
        )
        for db_id, db, gold, pred, kind in pairs:
            schema = process_sql.Schema(process_sql.get_schema(db))
            g_sql, p_sql = official(schema, gold), official(schema, pred)
            rec = {
                "db_id": db_id,
                "kind": kind,
                "gold": gold,
                "pred": pred,
                "official_gold_parsed": g_sql is not None,
                "official_pred_parsed": p_sql is not None,
            }
            if g_sql is not None:
                p_sql = p_sql if p_sql is not None else json.loads(json.dumps(empty))
                kmap = kmaps[db_id]
                g_valid = ev.build_valid_col_units(g_sql["from"]["table_units"], schema)
                g_sql = ev.rebuild_sql_col(g_valid, ev.rebuild_sql_val(g_sql), kmap)
                p_valid = ev.build_valid_col_units(p_sql["from"]["table_units"], schema)
                p_sql = ev.rebuild_sql_col(p_valid, ev.rebuild_sql_val(p_sql), kmap)
                evaluator = ev.Evaluator()
                rec["official_em"] = int(bool(evaluator.eval_exact_match(p_sql, g_sql)))
                rec["official_partial_f1"] = {k: v["f1"] for k, v in evaluator.partial_scores.items()}
            fh.write(json.dumps(rec) + "\n")
    print(f"{len(pairs)} pairs -> {out} (official commit {commit})")


if __name__ == "__main__":
    main()
