"""Question phrasing in other forms (sqltune.data.phrasing) and the demo's train split with them."""

from __future__ import annotations

import json
import random
import re

import pytest

from sqltune.data.phrasing import (
    FORMS,
    diversify,
    elliptic,
    forms,
    imperative,
    informal,
    interrogative,
    normalise,
    polite,
    units,
)


def test_each_form_reads_as_its_kind():
    rng = random.Random(0)
    assert imperative("Which customers are based in London?") == "Show me which customers are based in London."
    assert imperative("What is the unit price of Webcam?") == "Tell me what the unit price of Webcam is."
    assert imperative("How many customers are there?") == "Count the customers."
    assert imperative("List the names of products.") is None  # already a command
    assert imperative("Which category does Webcam belong to?") is None  # its auxiliary would have to move
    assert interrogative("List the names of products under 10 dollars.") == (
        "What are the names of products under 10 dollars?"
    )
    assert interrogative("Count the orders placed in 2023.") == "How many orders placed in 2023 are there?"
    assert interrogative("How many orders are there?") is None  # already a question
    assert elliptic("What is the unit price of Webcam?") == "unit price of Webcam?"
    assert elliptic("Show the names of suppliers from Japan.") == "names of suppliers from Japan, please"
    assert elliptic("Which suppliers are located in France?") == "suppliers located in France?"
    casual = informal("What is the unit price of Webcam?", rng)
    assert casual and casual.startswith(("what's the unit price", "hey, what's", "quick one: what's")), casual
    assert polite("What is the unit price of Webcam?", rng) in {
        "Could you tell me what the unit price of Webcam is?",
        "I'd like to know what the unit price of Webcam is.",
        "Do you know what the unit price of Webcam is?",
    }
    assert polite("Show the names of suppliers.", rng) == "Could you show me the names of suppliers?"
    assert units("products under 10 dollars", random.Random(1)) in {
        "products under $10",
        "products under 10 bucks",
        "products under 10",
    }
    assert {units("salary above 70000", random.Random(s)) for s in range(20)} == {
        "salary above 70000",
        "salary above 70k",
    }
    assert units("orders in 2000", random.Random(0)) == "orders in 2000"  # a year stays a year


@pytest.fixture(scope="module")
def with_forms(tmp_path_factory):
    from sqltune.data.demo import build_demo

    d = tmp_path_factory.mktemp("demo_forms")
    res = build_demo(d, forms=1)
    rows = {s: [json.loads(x) for x in (d / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "test", "human")}
    return res, rows


def test_the_demo_train_split_gains_a_form_of_each_question_with_its_sql_and_values(with_forms):
    res, rows = with_forms
    train = rows["train"]
    by_id = {r["id"]: r for r in train}
    added = [r for r in train if re.search(r"-f\d+$", r["id"])]
    originals = [r for r in train if not re.search(r"-f\d+$", r["id"])]
    assert res["n_train"] == len(train) and len(added) >= 0.8 * len(originals)
    for r in added:
        src = by_id[r["id"].rsplit("-f", 1)[0]]
        assert r["sql"] == src["sql"] and r["question"] != src["question"]
        for lit in re.findall(r"'((?:[^']|'')*)'", r["sql"]):
            if lit and not lit.startswith("%") and not re.fullmatch(r"[\d%Y\-m]+", lit):
                assert lit.replace("''", "'").lower() in r["question"].lower(), (lit, r["question"])
        for num in re.findall(r"(?<![\w'])(\d+)(?![\w'])", src["question"]):
            k = f"{int(num) // 1000}k" if num.endswith("000") else None
            assert num in r["question"] or (k and k in r["question"]), (num, r["question"])
    # the split's questions stay apart: no form is a test or human question
    train_norm = {normalise(r["question"]) for r in train}
    assert not train_norm & {normalise(r["question"]) for r in rows["test"] + rows["human"]}
    assert len(train_norm) == len(train)


def test_every_form_is_made_and_diversify_keeps_new_ones_only(with_forms):
    _, rows = with_forms
    rng = random.Random(0)
    qs = [r["question"] for r in rows["train"] if "-f" not in r["id"]]
    made = {name: 0 for name in FORMS}
    for q in qs[:60]:
        for name in FORMS:
            f = {"informal": lambda q: informal(q, rng), "polite": lambda q: polite(q, rng)}.get(
                name, {"imperative": imperative, "interrogative": interrogative, "elliptic": elliptic}.get(name)
            )(q)
            made[name] += bool(f)
    assert all(made.values()), made
    assert all(forms(q, rng) for q in qs[:60])
    out = diversify(["Which suppliers are located in France?"] * 2, 3, taken=["suppliers located in France?"])
    assert len(out[0]) == 3 and "suppliers located in France?" not in out[0]
    assert not {normalise(x) for x in out[0]} & {normalise(x) for x in out[1]}  # the second gets other forms


def test_data_synth_adds_forms_of_its_questions_on_any_database(tmp_path):
    from sqltune.data.demo import create_database
    from sqltune.data.synth import SynthConfig, synthesize
    from sqltune.io import read_jsonl

    db = create_database(tmp_path / "shop.sqlite")
    plain = synthesize(SynthConfig(db=[str(db)], out=str(tmp_path / "plain.jsonl"), n=40, seed=3))
    rep = synthesize(SynthConfig(db=[str(db)], out=str(tmp_path / "forms.jsonl"), n=40, seed=3, forms=2))
    base, rows = read_jsonl(tmp_path / "plain.jsonl"), read_jsonl(tmp_path / "forms.jsonl")
    assert plain["written"] == 40 and rep["written"] == len(rows) > 40 + 40
    assert rows[:40] == base  # the pairs themselves are the same
    by_id = {r["id"]: r for r in rows}
    for r in rows[40:]:
        src = by_id[r["id"].rsplit("-f", 1)[0]]
        assert r["sql"] == src["sql"] and normalise(r["question"]) != normalise(src["question"])
    assert len({normalise(r["question"]) for r in rows}) == len(rows)
