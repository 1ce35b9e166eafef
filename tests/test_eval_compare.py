"""Comparison verdicts from the fixture table, Spider hardness against the official rules, metrics."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from sqltune.evaluate.inputs import EvalItem
from sqltune.evaluate.metrics import pass_at_k
from sqltune.evaluate.run import EvalConfig, evaluate
from sqltune.judge.compare import has_outer_order_by, results_equal, strip_distinct
from sqltune.judge.hardness import spider_hardness
from sqltune.judge.match import normalized_match
from sqltune.judge.score import soft_f1
from sqltune.judge.text import token_match

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "compare_cases.yaml").read_text())


@pytest.fixture(scope="module")
def case_db(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cases") / "t.sqlite"
    conn = sqlite3.connect(p)
    conn.executescript("""
        CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, grp TEXT);
        CREATE TABLE u (grp TEXT, label TEXT);
        INSERT INTO t VALUES (1, 'ann', 1.0, 'a'), (2, 'bob', 2.0, 'a'), (3, 'cy', 4.0, 'b'), (4, 'dee', NULL, 'b'),
                             (5, 'eve', 2.0, 'a'), (6, 'fay', 3.6, 'c'), (7, 'value', 1.0, 'c');
        INSERT INTO u VALUES ('a', 'alpha'), ('b', 'beta');
    """)
    conn.commit()
    conn.close()
    return p


@pytest.fixture(scope="module")
def verdicts(case_db, tmp_path_factory):
    """Run every case in every mode once (the runaway case costs one timeout per mode)."""
    before = hashlib.sha256(case_db.read_bytes()).hexdigest()
    cache = tmp_path_factory.mktemp("cache") / "c.sqlite"
    out = {}
    for mode in ("set", "multiset", "ordered"):
        for strip in (False, True):
            items = [
                EvalItem(id=c["name"], db_id="t", db_path=str(case_db), gold=c["gold"], pred=c["pred"])
                for c in CASES
                if bool(c.get("strip_distinct")) == strip
            ]
            _, recs = evaluate(items, EvalConfig(match=mode, timeout=0.5, strip_distinct=strip, cache_path=str(cache)))
            for r in recs:
                out[(r["id"], mode)] = r
    assert hashlib.sha256(case_db.read_bytes()).hexdigest() == before, "a prediction changed the database"
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("mode", ["set", "multiset", "ordered"])
def test_fixture_verdicts(verdicts, case, mode):
    r = verdicts[(case["name"], mode)]
    assert r["correct"] is case["expect"][mode]
    assert (r["error_type"] is None) is r["correct"]
    expected_error = case.get("error", {}).get(mode)
    if expected_error:
        assert r["error_type"] == expected_error


def test_outer_order_by_detection():
    assert has_outer_order_by("SELECT a FROM t ORDER BY a")
    assert not has_outer_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a)")
    assert not has_outer_order_by("SELECT a FROM t WHERE b IN (SELECT b FROM u ORDER BY b LIMIT 1)")
    assert has_outer_order_by("SELECT a FROM t UNION SELECT a FROM u ORDER BY a")
    assert has_outer_order_by("SELEC a FROM t ORDER BY a")  # unparsable: parenthesis-depth fallback
    assert not has_outer_order_by("SELEC a FROM (SELECT a FROM t ORDER BY a)")


def test_strip_distinct_removes_every_distinct():
    assert strip_distinct("SELECT DISTINCT a, count(DISTINCT b) FROM t") == "SELECT a, count( b) FROM t"
    assert strip_distinct("SELECT 'distinct' FROM t") == "SELECT 'distinct' FROM t"


def test_results_equal_rows_directly():
    assert results_equal([(1, "a"), (2, "b")], [("b", 2), ("a", 1)], "multiset")
    assert not results_equal([(1, "a"), (2, "b")], [("b", 2), ("a", 1)], "multiset", order_matters=True)
    assert results_equal([(1, "a"), (2, "b")], [("a", 1), ("b", 2)], "multiset", order_matters=True)
    assert not results_equal([(1,), (1,)], [(1,)], "multiset")
    assert results_equal([(1,), (1,)], [(1,)], "set")
    assert results_equal([(5,)], [(5.0,)], "ordered")
    # a column permutation must be one permutation for all rows
    assert not results_equal([(1, 2), (3, 4)], [(2, 1), (3, 4)], "multiset")


sys.path.insert(0, str(Path(__file__).parent / "reference"))


def test_spider_hardness_agrees_with_the_official_rules(spider_dir):
    from spider_hardness import eval_hardness

    dev = json.loads((spider_dir / "dev.json").read_text())
    agree = sum(eval_hardness(e["sql"]) == spider_hardness(e["query"]) for e in dev)
    assert agree / len(dev) >= 0.995, agree


def test_hardness_parses_what_spider_cannot():
    assert spider_hardness("SELECT name FROM t WHERE score IS NULL") == "easy"
    assert spider_hardness('SELECT "first name" FROM "my table" WHERE NOT a = 1') == "easy"
    assert spider_hardness("SELECT a FROM t WHERE x IN (SELECT x FROM u)") == "hard"
    assert spider_hardness("not sql at all (") == ""


def test_metrics():
    assert normalized_match("SELECT  Name FROM T", "select name from t;")
    assert not normalized_match("SELECT name FROM t", "SELECT name FROM t WHERE 1")
    assert token_match("SELECT name FROM t", "SELECT name FROM u") == 0.75
    assert soft_f1([(1, "a")], [(1, "a")]) == 1.0
    assert soft_f1([], []) == 1.0
    assert soft_f1([(1, "a")], [(1, "b")]) == 0.5
    assert soft_f1([(1,), (2,)], []) == 0.0
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 2) == 1.0 and pass_at_k(4, 1, 1) == 0.25
