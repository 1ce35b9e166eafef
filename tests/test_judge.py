"""The judge: one meaning of "correct", killable execution for voting and verification, one error list."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sqltune.db.execute import ROW_CAP, classify_error
from sqltune.judge import ERROR_TYPES, Judge
from sqltune.judge.compare import diagnose_miss

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def test_every_error_type_is_listed_once():
    assert len(set(ERROR_TYPES)) == len(ERROR_TYPES)
    for msg in (
        "no such table: x",
        "no such column: y",
        "near 'x': syntax error",
        "attempt to write a readonly database",
        "interrupted",
        "other",
    ):
        assert classify_error(msg) in ERROR_TYPES
    for gold, pred in (([(1,)], [(1, 2)]), ([(1,)], [(2,)]), ([(1,), (2,)], [(2,), (1,)])):
        assert diagnose_miss(gold, pred, ["a"], ["a"] * len(pred[0]), "ordered", True) in ERROR_TYPES


def test_vote_takes_the_majority_result_and_ignores_failures(school_db):
    with Judge(workers=1, timeout=5) as judge:
        out = judge.vote(
            [
                (
                    str(school_db),
                    [
                        "SELECT name FROM teacher",
                        "SELECT nme FROM teacher",
                        "SELECT age FROM teacher",
                        "SELECT age FROM teacher ORDER BY age",
                    ],
                ),
                (str(school_db), ["SELECT 1", "DROP TABLE teacher", "SELECT 2"]),
            ]
        )
    assert out == [(2, 2), (0, 1)]  # a tie (1 vs 1) goes to the earliest candidate


def test_a_runaway_candidate_is_stopped_and_the_rest_go_on(school_db):
    before = Path(school_db).read_bytes()
    with Judge(workers=1, timeout=0.5) as judge:
        t0 = time.monotonic()
        res = judge.run([(str(school_db), [RUNAWAY, "DELETE FROM teacher", "SELECT count(*) FROM teacher"])])[0]
        assert time.monotonic() - t0 < 3
    assert res.ok == [False, False, True]
    assert res.error_types[:2] == ["timeout", "write_attempt"]
    assert Path(school_db).read_bytes() == before


def test_one_row_cap(school_db):
    with Judge(workers=1, timeout=5, max_rows=3) as judge:
        res = judge.run([(str(school_db), ["SELECT * FROM student"])])[0]
    assert res.rows == [3] and res.truncated == [True]
    assert Judge().max_rows == ROW_CAP == 100_000


def test_data_stage_verifies_through_the_judge_and_writes_gold_facts(tmp_path, school_db):
    from sqltune.data.build import BuildConfig, build

    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"question": "ages", "sql": "SELECT age FROM teacher ORDER BY age"},
        {"question": "runaway", "sql": RUNAWAY},
        {"question": "bad", "sql": "SELECT nope FROM teacher"},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = build(
        BuildConfig(
            benchmark="pairs",
            data_dir=str(pairs),
            split="",
            db=str(school_db),
            out=str(tmp_path / "o.jsonl"),
            timeout=0.5,
        )
    )
    assert rep["written"] == 1 and rep["skipped"] == {"gold_failed": 1, "gold_timeout": 1}
    rec = json.loads((tmp_path / "o.jsonl").read_text())
    assert (rec["gold_hardness"], rec["gold_ordered"]) == ("easy", True)
    assert rec["gold_normalized"] == "SELECT age FROM teacher ORDER BY age"


def test_db_path_is_absolute_from_a_relative_data_dir(tmp_path, spider_dir, monkeypatch):
    import os

    from sqltune.data.build import BuildConfig, build

    monkeypatch.chdir(tmp_path)
    rel = os.path.relpath(spider_dir, tmp_path)  # e.g. ../../work/shared/data/spider
    assert not Path(rel).is_absolute()
    build(BuildConfig(benchmark="spider", data_dir=rel, split="dev", out="dev.jsonl", limit=3, schema="compact"))
    recs = [json.loads(x) for x in (tmp_path / "dev.jsonl").read_text().splitlines()]
    assert len(recs) == 3
    for r in recs:
        assert Path(r["db_path"]).is_absolute() and Path(r["db_path"]).is_file()
        assert r["db_path"] == str((spider_dir / "database" / r["db_id"] / f"{r['db_id']}.sqlite").resolve())


def test_a_failing_vote_database_does_not_crash(tmp_path):
    with Judge(workers=1) as judge:
        assert judge.vote([(str(tmp_path / "none.sqlite"), ["SELECT 1", "SELECT 1"])]) == [(0, 0)]


@pytest.mark.parametrize("n", [1, 3])
def test_the_pool_outlives_a_run(school_db, n):
    import multiprocessing

    with Judge(workers=1) as judge:
        for _ in range(n):
            judge.run([(str(school_db), ["SELECT 1"])])
        assert len(multiprocessing.active_children()) == 1
    assert multiprocessing.active_children() == []


def test_normalized_match_prefilter_never_changes_a_verdict(spider_dir, bird_dir):
    """Exact match skips normalizing a pair whose clause keywords differ; that is sound only if
    normalization keeps every query's clause keywords, which holds on every real gold query here."""
    from sqltune.judge.match import _clauses, normalize_sql, normalized_match

    queries = [line.rsplit("\t", 1)[0] for line in (spider_dir / "dev_gold.sql").read_text().splitlines() if line]
    queries += [x["SQL"] for x in json.loads(next(bird_dir.rglob("dev.json")).read_text())]
    checked = 0
    for q in queries:
        norm = normalize_sql(q)
        if norm is not None:
            assert _clauses(q) == _clauses(norm), q
            checked += 1
    assert checked > 2000
    assert normalized_match("SELECT a FROM t WHERE b = 1", "select A from T where b=1")
    assert not normalized_match("SELECT a FROM t", "SELECT DISTINCT a FROM t")
