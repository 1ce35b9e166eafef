"""Metrics that mean their names: Spider's exact-set match against the official script's verdicts,
the LitGPT article's token match and exact match, and sqltune's normalized match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import SHARED
from sqltune.judge import spider_em
from sqltune.judge.match import normalized_match
from sqltune.judge.text import exact_match, token_match

FIXTURES = Path(__file__).parent / "fixtures"
_LINES = (FIXTURES / "spider_em_pairs.jsonl").read_text().splitlines()
META = json.loads(_LINES[0])["meta"]
PAIRS = [json.loads(x) for x in _LINES[1:]]


def _db(db_id: str) -> str:
    path = SHARED / "spider" / "database" / db_id / f"{db_id}.sqlite"
    if not path.is_file():
        pytest.fail(f"Spider database not found at {path}; set SQLTUNE_SHARED_DATA")
    return str(path)


def test_the_fixture_records_the_official_commit():
    assert META["official_commit"] == "b7b5b8c890cd30e35427348bb9eb8c6d1350ca7c"
    assert len(PAIRS) >= 900 and len({p["kind"] for p in PAIRS}) >= 12


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p['kind']}:{p['db_id']}")
def test_spider_em_agrees_with_the_official_script(pair):
    s = spider_em.score(pair["gold"], pair["pred"], _db(pair["db_id"]))
    official_parsed = pair["official_gold_parsed"] and pair["official_pred_parsed"]
    assert s["official"] == official_parsed  # says when the official script cannot score the pair
    if official_parsed:
        assert int(bool(s["spider_em"])) == pair["official_em"]
        assert {k: v["f1"] for k, v in s["partial"].items()} == pair["official_partial_f1"]


def test_spider_em_scores_what_the_official_parser_cannot():
    rows = [p for p in PAIRS if p["kind"] in ("alias_without_as", "neq_angle")]
    assert rows and all(not p["official_pred_parsed"] for p in rows)
    for p in rows:  # the official script counts these as misses; they are the gold, rewritten
        s = spider_em.score(p["gold"], p["pred"], _db(p["db_id"]))
        assert s["spider_em"] is True and s["official"] is False


ARTICLE = yaml.safe_load((FIXTURES / "article_metrics.yaml").read_text())


@pytest.mark.parametrize("case", ARTICLE, ids=lambda c: c["pred"][:40])
def test_the_articles_token_match_and_exact_match(case):
    assert abs(token_match(case["gold"], case["pred"]) - case["token_match"]) < 1e-9
    assert exact_match(case["gold"], case["pred"]) is case["exact_match"]


def test_normalized_match_unquotes_identifiers_and_keeps_string_case():
    assert normalized_match('SELECT "name" FROM "singer"', "SELECT name FROM singer")
    assert normalized_match("SELECT `Name` FROM [singer]", "select name from SINGER")
    assert not normalized_match('SELECT * FROM t WHERE c = "France"', 'SELECT * FROM t WHERE c = "FRANCE"')
    assert not normalized_match("SELECT * FROM t WHERE c = 'France'", "SELECT * FROM t WHERE c = 'FRANCE'")
    assert normalized_match('SELECT * FROM t WHERE c = "France"', "SELECT * FROM t WHERE c = 'France'")
    assert not normalized_match("SELECT * FROM t WHERE c IN ('a')", "SELECT * FROM t WHERE c IN ('A')")
    assert not normalized_match("SELECT 'a' FROM (", "SELECT 'A' FROM (")  # unparsable: literals still keep case


def test_eval_with_all_metrics_names_and_explains_each(tmp_path, spider_dir):
    from sqltune.evaluate.inputs import EvalItem
    from sqltune.evaluate.metrics import METRICS
    from sqltune.evaluate.report import write_outputs
    from sqltune.evaluate.run import EvalConfig, evaluate

    db = _db("concert_singer")
    gold = "SELECT count(*) FROM singer"
    items = [
        EvalItem("a", "concert_singer", db, gold, "SELECT count(*) FROM singer"),
        EvalItem("b", "concert_singer", db, gold, "select COUNT(*) from singer AS s"),
        EvalItem("c", "concert_singer", db, gold, "SELECT count(*) FROM stadium"),
    ]
    s, recs = evaluate(items, EvalConfig(cache=False, metrics="all"))
    assert s["metrics"] == list(METRICS)
    assert [r["correct"] for r in recs] == [True, True, False]
    assert [r["spider_em"] for r in recs] == [True, True, False]
    assert [r["normalized_match"] for r in recs] == [True, False, False]  # an alias counts here
    assert [r["exact_match"] for r in recs] == [True, False, False]
    assert recs[2]["token_match"] == 0.75 and recs[1]["spider_em_official"] is True
    assert (
        s["spider_em"] == round(2 / 3, 4)
        and s["spider_em_n"] == 3
        and set(s["spider_em_partial"]) == set(spider_em.PARTS)
    )
    files = write_outputs(tmp_path / "ev", s, recs)
    report = Path(files["report"]).read_text()
    for name, meaning in METRICS.items():
        assert f"- `{name}`: {meaning}" in report
    assert "_spider_partial" not in Path(files["results"]).read_text()
    default, drecs = evaluate(items, EvalConfig(cache=False))
    assert default["metrics"] == ["ex", "soft_f1", "normalized_match"]
    assert default["spider_em"] is None and drecs[0]["token_match"] is None


def test_unknown_metric_is_named():
    from sqltune.errors import ConfigError
    from sqltune.evaluate.run import EvalConfig

    with pytest.raises(ConfigError, match="unknown exact; choose from ex, soft_f1"):
        EvalConfig(metrics="ex,exact").validate()
