"""The eval stage end to end: official formats, gold against itself, bad input, runaway queries, outputs."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from sqltune.db.pool import WorkerPool
from sqltune.errors import DataError
from sqltune.evaluate.inputs import EvalItem, load_bird_files, load_spider_files, load_sqltune_files
from sqltune.evaluate.report import compare_runs, write_outputs
from sqltune.evaluate.run import EvalConfig, evaluate


@pytest.fixture(scope="module")
def spider_gold_as_pred(spider_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("sp")
    lines = (spider_dir / "dev_gold.sql").read_text().splitlines()
    (d / "pred.sql").write_text("\n".join(x.rsplit("\t", 1)[0] for x in lines) + "\n")
    return d


@pytest.mark.parametrize("mode", ["set", "multiset", "ordered"])
def test_spider_dev_gold_against_itself(spider_dir, spider_gold_as_pred, mode, tmp_path):
    items = load_spider_files(spider_dir / "dev_gold.sql", spider_gold_as_pred / "pred.sql", spider_dir / "database")
    summary, recs = evaluate(items, EvalConfig(match=mode, cache_path=str(spider_gold_as_pred / "cache.sqlite")))
    assert summary["ex"] == 1.0 and summary["n"] == 972
    assert summary["excluded"] == {"missing_database": 62}
    assert {g["db_id"] for g in summary["gold_problems"]} == {"wta_1"}
    assert len(recs) == 1034 and [r["id"] for r in recs] == [str(i) for i in range(1034)]
    assert set(summary["by_hardness"]) == {"easy", "medium", "hard", "extra"}


@pytest.fixture(scope="module")
def bird_files(bird_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("bird")
    dev = json.loads((bird_dir / "dev.json").read_text())
    (d / "gold.sql").write_text("\n".join(f"{x['SQL']}\t{x['db_id']}" for x in dev) + "\n")
    (d / "predict_dev.json").write_text(
        json.dumps({str(i): f"{x['SQL']}\t----- bird -----\t{x['db_id']}" for i, x in enumerate(dev)})
    )
    return d


@pytest.mark.parametrize("mode", ["set", "multiset", "ordered"])
def test_bird_superhero_gold_against_itself(bird_dir, bird_files, mode):
    items = load_bird_files(
        bird_files / "predict_dev.json", bird_files / "gold.sql", bird_dir / "dev_databases", bird_dir / "dev.json"
    )
    summary, recs = evaluate(items, EvalConfig(match=mode, cache_path=str(bird_files / "c.sqlite")), family="bird")
    assert summary["n"] == 129 and summary["ex"] == 1.0
    assert set(summary["by_difficulty"]) == {"simple", "moderate", "challenging"}
    assert summary["excluded"] == {"missing_database": 1534 - 129}


def test_bird_default_mode_is_set(bird_dir, bird_files):
    items = load_bird_files(bird_files / "predict_dev.json", bird_files / "gold.sql", bird_dir / "dev_databases")
    summary, _ = evaluate(items[:5], EvalConfig(cache=False), family="bird")
    assert summary["mode"] == "set"


def test_bird_pairs_by_key_not_file_order(bird_dir, bird_files, tmp_path):
    preds = json.loads((bird_files / "predict_dev.json").read_text())
    shuffled = dict(reversed(list(preds.items())))
    (tmp_path / "p.json").write_text(json.dumps(shuffled))
    items = load_bird_files(tmp_path / "p.json", bird_files / "gold.sql", bird_dir / "dev_databases")
    assert all(it.gold == it.pred for it in items)


def test_bird_missing_and_extra_keys_are_named(bird_files, bird_dir, tmp_path):
    preds = json.loads((bird_files / "predict_dev.json").read_text())
    del preds["7"]
    preds["99999"] = "SELECT 1"
    (tmp_path / "p.json").write_text(json.dumps(preds))
    with pytest.raises(
        DataError,
        match=r"1 gold question\(s\) have no prediction \(keys 7\).*1 prediction\(s\) match no gold question \(keys 99999\)",
    ):
        load_bird_files(tmp_path / "p.json", bird_files / "gold.sql", bird_dir / "dev_databases")


def test_spider_short_prediction_file_is_an_error_not_truncation(spider_dir, spider_gold_as_pred, tmp_path):
    lines = (spider_gold_as_pred / "pred.sql").read_text().splitlines()
    (tmp_path / "short.sql").write_text("\n".join(lines[:1000]) + "\n")
    with pytest.raises(DataError, match=r"has 1034 lines but .* has 1000: the prediction file is short by 34"):
        load_spider_files(spider_dir / "dev_gold.sql", tmp_path / "short.sql", spider_dir / "database")


def test_non_utf8_prediction_file(spider_dir, tmp_path):
    (tmp_path / "p.sql").write_bytes(b"SELECT '\xff'\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_spider_files(spider_dir / "dev_gold.sql", tmp_path / "p.sql", spider_dir / "database")


def _dataset(tmp_path: Path, school_db: Path, n: int = 3) -> Path:
    recs = [
        {
            "id": f"q{i}",
            "db_id": "school",
            "db_path": str(school_db),
            "question": f"q{i}",
            "sql": "SELECT name FROM teacher WHERE age > 30",
            "difficulty": "easy",
        }
        for i in range(n)
    ]
    p = tmp_path / "ds.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return p


def _preds(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "pred.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def test_sqltune_files_bad_input(school_db, tmp_path):
    ds = _dataset(tmp_path, school_db)
    ok = [{"id": "q0", "pred_sql": "SELECT 1"}, {"id": "q1", "pred_sql": "SELECT 1"}, {"id": "q2", "pred_sql": "x"}]
    assert len(load_sqltune_files(ds, _preds(tmp_path, ok))) == 3
    with pytest.raises(DataError, match="duplicate id 'q0'"):
        load_sqltune_files(ds, _preds(tmp_path, [*ok, {"id": "q0", "pred_sql": "SELECT 2"}]))
    with pytest.raises(DataError, match="ids not in .*: zz"):
        load_sqltune_files(ds, _preds(tmp_path, [*ok, {"id": "zz", "pred_sql": "SELECT 2"}]))
    with pytest.raises(DataError, match="no prediction for 1 of 3 dataset ids \\(first: q2\\)"):
        load_sqltune_files(ds, _preds(tmp_path, ok[:2]))
    items = load_sqltune_files(ds, _preds(tmp_path, ok[:2]), allow_missing=True)
    summary, recs = evaluate(items, EvalConfig(cache=False))
    assert summary["n"] == 3 and recs[2]["error_type"] == "missing_prediction" and not recs[2]["correct"]


def test_unknown_db_id_is_a_counted_status(spider_dir, tmp_path):
    (tmp_path / "gold.sql").write_text("SELECT count(*) FROM singer\tconcert_singer\nSELECT 1\tno_such_db\n")
    (tmp_path / "pred.sql").write_text("SELECT count(*) FROM singer\nSELECT 1\n")
    items = load_spider_files(tmp_path / "gold.sql", tmp_path / "pred.sql", spider_dir / "database")
    summary, recs = evaluate(items, EvalConfig(cache=False))
    assert summary["n"] == 1 and summary["ex"] == 1.0 and summary["excluded"] == {"missing_database": 1}
    assert recs[1]["gold_status"] == "missing_database"


def test_gold_errors_excluded_by_default_or_counted(school_db, tmp_path):
    items = [
        EvalItem("a", "s", str(school_db), "SELECT name FROM teacher", "SELECT name FROM teacher"),
        EvalItem("b", "s", str(school_db), "SELECT nope FROM teacher", "SELECT name FROM teacher"),
    ]
    s1, r1 = evaluate(items, EvalConfig(cache=False))
    assert s1["n"] == 1 and s1["ex"] == 1.0 and s1["excluded"] == {"failed": 1}
    assert s1["gold_problems"][0]["id"] == "b" and "no such column" in s1["gold_problems"][0]["error"]
    s2, _ = evaluate(items, EvalConfig(cache=False, count_gold_errors=True))
    assert s2["n"] == 2 and s2["ex"] == 0.5


def test_runaway_query_stopped_run_continues_no_cpu_left(school_db):
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    items = [
        EvalItem("slow", "s", str(school_db), "SELECT 1", forever),
        EvalItem("fine", "s", str(school_db), "SELECT name FROM teacher", "SELECT name FROM teacher"),
    ]
    t0 = time.monotonic()
    summary, recs = evaluate(items, EvalConfig(timeout=1.0, cache=False, workers=1))
    assert time.monotonic() - t0 < 1.0 + 1.0 + 1.5  # timeout + 1 s, plus worker start-up
    assert recs[0]["error_type"] == "timeout" and recs[1]["correct"]
    assert multiprocessing.active_children() == []


def _sleepy(job):
    time.sleep(job)
    return job


def test_a_worker_that_hangs_is_killed():
    with WorkerPool(_sleepy, workers=2) as pool:
        t0 = time.monotonic()
        out = dict(pool.run([0.0, 30.0, 0.1], seconds_allowed=lambda j: 1.0, on_timeout=lambda j: "killed"))
        assert out == {0: 0.0, 1: "killed", 2: 0.1}
        assert time.monotonic() - t0 < 3.0
        assert pool.killed == 1
        pids = {p.pid for p in multiprocessing.active_children()}
        assert len(pids) == 2  # the pool lives on: a second run reuses its two workers
        assert dict(pool.run([0.0, 0.1], seconds_allowed=lambda j: 1.0, on_timeout=lambda j: "killed")) == {
            0: 0.0,
            1: 0.1,
        }
        assert {p.pid for p in multiprocessing.active_children()} == pids
    assert multiprocessing.active_children() == []


def test_gold_cache_warm_run_executes_no_gold(school_db, tmp_path):
    items = [
        EvalItem(str(i), "s", str(school_db), f"SELECT name FROM teacher WHERE age > {i}", "SELECT name FROM teacher")
        for i in range(5)
    ]
    cfg = EvalConfig(cache_path=str(tmp_path / "c.sqlite"))
    s1, r1 = evaluate(items, cfg)
    s2, r2 = evaluate(items, cfg)
    assert (s1["gold_executed"], s1["gold_cached"]) == (5, 0)
    assert (s2["gold_executed"], s2["gold_cached"]) == (0, 5)
    assert [r["correct"] for r in r1] == [r["correct"] for r in r2]


def test_candidates_pass_at_k_and_majority_vote(school_db):
    good, bad = "SELECT name FROM teacher", "SELECT age FROM teacher"
    items = [
        EvalItem("a", "s", str(school_db), good, bad, candidates=[bad, good, good]),  # vote fixes it
        EvalItem("b", "s", str(school_db), good, good, candidates=[good, bad, "SELEC x"]),  # tie: greedy wins
        EvalItem("c", "s", str(school_db), good, bad, candidates=[bad, bad, good]),
    ]
    summary, recs = evaluate(items, EvalConfig(cache=False))
    assert [r["vote_correct"] for r in recs] == [True, True, False]
    assert summary["ex"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["majority_ex"] == pytest.approx(2 / 3, abs=1e-3)
    assert summary["pass_at_k"]["3"] == 1.0


def test_outputs_and_compare(school_db, tmp_path):
    items = [
        EvalItem("a", "s", str(school_db), "SELECT name FROM teacher", "SELECT name FROM teacher", question="who?"),
        EvalItem("b", "s", str(school_db), "SELECT age FROM teacher", "SELECT name FROM teacher", question="ages?"),
    ]
    s, r = evaluate(items, EvalConfig(cache=False))
    files = write_outputs(tmp_path / "A", s, r)
    summary = json.loads(Path(files["summary"]).read_text())
    assert summary["ex"] == 0.5 and summary["n"] == 2
    lines = [json.loads(x) for x in Path(files["results"]).read_text().splitlines()]
    assert [(x["correct"], x["error_type"]) for x in lines] == [(True, None), (False, "wrong_rows")]
    assert "EX 50.00%" in Path(files["report"]).read_text()
    assert Path(files["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    items[1].pred = "SELECT age FROM teacher"
    items[0].pred = "SELECT nope FROM teacher"
    write_outputs(tmp_path / "B", *evaluate(items, EvalConfig(cache=False)))
    c = compare_runs(tmp_path / "A", tmp_path / "B")
    assert [f["id"] for f in c["fixed"]] == ["b"] and [b["id"] for b in c["broken"]] == ["a"]
    assert c["broken"][0]["error_b"] == "unknown_column"


def test_compare_reports_ex_on_the_common_questions(school_db, tmp_path):
    from typer.testing import CliRunner

    from sqltune.cli import app

    right, wrong = "SELECT name FROM teacher", "SELECT age FROM teacher"
    a = [
        EvalItem(i, "s", str(school_db), right, p) for i, p in (("a", right), ("b", wrong), ("c", right), ("d", right))
    ]
    write_outputs(tmp_path / "A", *evaluate(a, EvalConfig(cache=False)))  # EX 3/4
    write_outputs(tmp_path / "B", *evaluate(a[:2], EvalConfig(cache=False)))  # EX 1/2, on a and b only
    c = compare_runs(tmp_path / "A", tmp_path / "B")
    assert (c["ex_a"], c["ex_b"], c["common"]) == (0.75, 0.5, 2)
    assert (c["ex_a_common"], c["ex_b_common"]) == (0.5, 0.5)
    r = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "A"), str(tmp_path / "B")], terminal_width=300)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "on the 2 questions in both runs: EX 50.00% -> 50.00%" in text
    assert "EX 75.00% on 4" in text and "2 questions only in the first" in text


def test_a_hanging_job_inside_a_chunk_is_found_and_the_rest_rerun():
    with WorkerPool(_sleepy, workers=1, chunk_size=4) as pool:
        t0 = time.monotonic()
        out = dict(pool.run([0.0, 0.01, 30.0, 0.02, 0.0], seconds_allowed=lambda j: 0.5, on_timeout=lambda j: "killed"))
        assert out == {0: 0.0, 1: 0.01, 2: "killed", 3: 0.02, 4: 0.0}
        assert time.monotonic() - t0 < 4.0
        assert pool.killed == 2  # once with its chunk, once alone
    assert multiprocessing.active_children() == []


def test_ves_times_correct_predictions(school_db):
    slow_same = "SELECT name FROM teacher WHERE (SELECT count(*) FROM student a, student b, student c) > 0"
    items = [
        EvalItem("a", "s", str(school_db), slow_same, "SELECT name FROM teacher"),
        EvalItem("b", "s", str(school_db), "SELECT name FROM teacher", "SELECT age FROM teacher"),
    ]
    summary, recs = evaluate(items, EvalConfig(cache=False, ves_repeats=3))
    assert recs[0]["correct"] and recs[0]["ves"] > 1.0  # the prediction is faster than its gold
    assert "ves" not in recs[1]
    assert summary["ves"] == pytest.approx(100 * recs[0]["ves"] / 2, abs=0.01)
