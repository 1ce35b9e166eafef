"""The embedded demo database and dataset."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from sqltune.data.demo import TEMPLATES, build_demo, create_database
from sqltune.db.execute import execute
from sqltune.sqlutil import sql_features


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    res = build_demo(d)
    train = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (d / "test.jsonl").read_text().splitlines()]
    return d, res, train, test


def test_at_least_400_verified_pairs(demo):
    d, res, train, test = demo
    assert len(train) + len(test) >= 400
    assert res["n_train"] == len(train) and res["n_test"] == len(test)
    human = [json.loads(x) for x in (d / "human.jsonl").read_text().splitlines()]
    assert res["n_human"] == len(human) >= 60 and all(r["messages"] and r["difficulty"] for r in human)
    for r in train + test:
        result = execute(r["db_path"], r["sql"])
        assert result.ok, (r["id"], result.error)


def test_no_test_question_in_train(demo):
    _, _, train, test = demo
    assert not {r["question"] for r in test} & {r["question"] for r in train}
    assert len({r["question"] for r in train + test}) == len(train) + len(test)


def test_covers_the_sql_constructs(demo):
    _, _, train, test = demo
    for split in (train, test):
        feats = set().union(*(sql_features(r["sql"]) for r in split))
        assert {"join", "aggregate", "group_by", "having", "order_by", "limit", "nested", "set_op", "where"} <= feats
        assert {r["difficulty"] for r in split} == {"easy", "medium", "hard", "extra"}


def test_phrasings_vary(demo):
    _, _, train, _ = demo
    assert all(len(t.phrasings) >= 2 for t in TEMPLATES)
    starts = {r["question"].split()[0] for r in train}
    assert len(starts) >= 8


def test_deterministic(tmp_path):
    def digest(p):
        conn = sqlite3.connect(p)
        rows = []
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            rows.append(conn.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall())
        return hashlib.sha256(repr(rows).encode()).hexdigest()

    a = create_database(tmp_path / "a.sqlite", seed=0)
    b = create_database(tmp_path / "b.sqlite", seed=0)
    c = create_database(tmp_path / "c.sqlite", seed=1)
    assert digest(a) == digest(b) != digest(c)


def test_card_and_reports(demo):
    d, res, train, _ = demo
    card = (d / "card.md").read_text()
    assert f"**{len(train)} train**" in card and "orders(order_id PK" in card
    rep = json.loads((d / "train.report.json").read_text())
    assert rep["written"] == len(train) and rep["skipped"] == {}
    assert train[0]["messages"][0]["content"].startswith("You are a text to SQL query translator.")


# The demo as generated before its literals moved into data files (schema.sql, world.yaml,
# templates.yaml): same database rows, same 367 + 91 records (db_path and the gold facts aside).
DEMO_SHA256 = {
    "train": "3cf061789ed0a5cc8f01e659d588b45ed4dee2eb47d99de4e194dda9a7cd1a0f",
    "test": "ca1699e3435facd46d4d77858d94e1c84e25ba48f67c66e9793775a280bd61c2",
    "rows": "468997785dcd504e4d7f24d3dabc998eca5e9a10cbbd3707b1c76b8a804c3af8",
}


def test_same_demo_as_before_by_hash(demo):
    d, _, train, test = demo
    for name, recs in (("train", train), ("test", test)):
        stripped = [
            {k: v for k, v in r.items() if k not in ("db_path", "gold_hardness", "gold_ordered", "gold_normalized")}
            for r in recs
        ]
        digest = hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()
        assert digest == DEMO_SHA256[name], name
    conn = sqlite3.connect(d / "shop.sqlite")
    rows = [
        conn.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
    ]
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == DEMO_SHA256["rows"]


def test_the_demo_is_data_files_and_a_small_generator():
    from sqltune.data import demo as demo_mod

    assert {p.name for p in demo_mod.FILES.iterdir()} >= {"schema.sql", "world.yaml", "templates.yaml"}
    assert len(TEMPLATES) == 56
    assert len(Path(demo_mod.__file__).read_text().splitlines()) < 400


def _norm(text: str) -> str:
    """Lower case, words only: 'How many orders?' and 'how many orders' are one question."""
    import re

    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_handwritten_questions_are_new_phrasings_with_verified_gold(demo, tmp_path):
    """The human split: at least 60 questions about the shop written by hand, in phrasings the
    templates never use, covering every table and every difficulty: the measure of skill on the
    demo database beside the template test split (which measures recall)."""
    import re

    from sqltune.data.build import BuildConfig, build
    from sqltune.data.demo import HANDWRITTEN, human_examples
    from sqltune.sqlutil import skeleton

    d, _, train, test = demo
    rows = [json.loads(x) for x in HANDWRITTEN.read_text().splitlines()]
    assert len(rows) >= 60 and len({_norm(r["question"]) for r in rows}) == len(rows)
    assert len({r["id"] for r in rows}) == len(rows)
    templated = {_norm(r["question"]) for r in train + test}
    patterns = [  # every phrasing of every template in normalised words, its {parameters} matching anything
        re.compile("^" + ".*".join(re.escape(_norm(part)) for part in re.split(r"\{\w+\}", p)) + "$")
        for t in TEMPLATES
        for p in t.phrasings
    ]
    for r in train:  # the patterns do recognise every templated question
        assert any(pt.match(_norm(r["question"])) for pt in patterns), r["question"]
    for r in rows:
        assert _norm(r["question"]) not in templated, r["question"]
        assert not any(pt.match(_norm(r["question"])) for pt in patterns), r["question"]
        res = execute(d / "shop.sqlite", r["sql"])
        assert res.ok and res.rows, (r["id"], res.error)
    tables = {"categories", "suppliers", "products", "customers", "employees", "orders", "order_items"}
    assert tables <= {t for r in rows for t in re.findall(r"\b(\w+)\b", r["sql"].lower())}, "a table no question needs"
    hardness = {e.difficulty for e in human_examples(d / "shop.sqlite")}
    assert hardness == {"easy", "medium", "hard", "extra"}, hardness
    template_shapes = {skeleton(t.sql) for t in TEMPLATES}
    assert sum(skeleton(r["sql"]) not in template_shapes for r in rows) >= 0.75 * len(rows)  # shapes no template has
    built = build(
        BuildConfig(
            benchmark="pairs",
            data_dir=str(HANDWRITTEN),
            split="",
            db=str(d / "shop.sqlite"),
            out=str(tmp_path / "hand.jsonl"),
        )
    )
    assert built["written"] == len(rows)


def test_the_shop_pairs_train_beside_the_templates_in_as_many_steps_and_ask_no_handwritten_question(demo, tmp_path):
    """The quickstart's demo trains on its templates plus pairs synthesized from the shop database alone
    (``DEMO_PAIRS``), in the steps the templates alone take; none of those pairs asks a question of the human
    split, after normalisation, and each one's SQL runs on the shop database."""
    import shutil

    from sqltune.data.demo import HANDWRITTEN
    from sqltune.quickstart import DEMO_PAIRS, demo_train_file, same_steps

    d, _, train, _ = demo
    for name in ("shop.sqlite", "train.jsonl"):
        shutil.copy(d / name, tmp_path / name)
    lines: list[str] = []
    mixed = demo_train_file(tmp_path, DEMO_PAIRS, seed=0, log=lines.append)
    rows = [json.loads(x) for x in mixed.read_text().splitlines()]
    synth = [json.loads(x) for x in (tmp_path / "shop_pairs.jsonl").read_text().splitlines()]
    assert len(synth) == DEMO_PAIRS and len(rows) == len(train) + len(synth) and "synthesized 400" in lines[0]
    assert {r["question"] for r in train} < {r["question"] for r in rows}  # every template question kept
    assert all(r["messages"] for r in rows)
    handwritten = {_norm(json.loads(x)["question"]) for x in HANDWRITTEN.read_text().splitlines()}
    assert not handwritten & {_norm(r["question"]) for r in synth}
    shop = tmp_path / "shop.sqlite"
    assert all(execute(shop, r["sql"]).ok for r in synth[:: max(1, len(synth) // 40)])
    # the same steps: the recipe's epochs over the templates, spread over templates and pairs
    (epochs,) = same_steps(None, tmp_path / "train.jsonl", mixed)
    assert epochs.startswith("epochs=") and abs(float(epochs[7:]) * len(rows) - 2.5 * len(train)) < 1
    assert same_steps(["max_steps=5"], tmp_path / "train.jsonl", mixed) == ["max_steps=5"]
    assert same_steps(None, tmp_path / "train.jsonl", tmp_path / "train.jsonl") == []
    assert demo_train_file(tmp_path, DEMO_PAIRS, seed=0) == mixed  # made once: a rerun resumes
