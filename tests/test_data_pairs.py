"""A user's own pairs (JSON, JSONL, CSV, alpaca), bad input, the token budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqltune import prompts
from sqltune.data.build import BuildConfig, build, report_path
from sqltune.db.schema import introspect
from sqltune.errors import DataError
from sqltune.models.load import TokenCounter

PAIRS = [
    {"question": "How many teachers are there?", "sql": "SELECT count(*) FROM teacher", "db_path": "school.sqlite"},
    {
        "question": "Names of students in room Red?",
        "query": 'SELECT s.name FROM student s JOIN "class room" c ON s.room_id = c.room_id WHERE c."room name" = \'Red\'',
        "database": "school.sqlite",
        "id": "q2",
    },
    {
        "question": "Oldest teacher?",
        "SQL": "SELECT name FROM teacher ORDER BY age DESC LIMIT 1",
        "db_path": "school.sqlite",
        "evidence": "oldest = max age",
    },
]


def _cfg(path: Path, **kw) -> BuildConfig:
    return BuildConfig(benchmark="pairs", data_dir=str(path), split="", out=str(path.parent / "out.jsonl"), **kw)


def _write(path: Path, rows, fmt: str) -> Path:
    if fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        import csv

        keys = ["question", "sql", "db_path", "evidence"]
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow(
                    {
                        "question": r["question"],
                        "sql": r.get("sql") or r.get("query") or r.get("SQL"),
                        "db_path": r.get("db_path") or r.get("database"),
                        "evidence": r.get("evidence", ""),
                    }
                )
    return path


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_pairs_in_every_file_format(school_db, fmt):
    f = _write(school_db.parent / f"pairs.{fmt}", PAIRS, fmt)
    rep = build(_cfg(f))
    assert rep["written"] == 3 and rep["skipped"] == {}
    recs = [json.loads(x) for x in (f.parent / "out.jsonl").read_text().splitlines()]
    assert [r["question"] for r in recs] == [p["question"] for p in PAIRS]
    assert recs[2]["evidence"] == "oldest = max age"
    assert recs[0]["db_path"] == str(school_db.resolve())


def test_pairs_folder_and_split_name(school_db):
    _write(school_db.parent / "mine.jsonl", PAIRS, "jsonl")
    cfg = BuildConfig(
        benchmark="pairs", data_dir=str(school_db.parent), split="mine", out=str(school_db.parent / "o.jsonl")
    )
    assert build(cfg)["written"] == 3


def test_alpaca_input_records(school_db):
    rows = [
        {
            "instruction": "How many teachers are there?",
            "input": "CREATE TABLE teacher (...)",
            "output": "SELECT count(*) FROM teacher",
        }
    ]
    f = school_db.parent / "alpaca.json"
    f.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"record 1: missing field 'db_path'"):
        build(_cfg(f))
    rep = build(_cfg(f, db=str(school_db), format="alpaca"))
    rec = json.loads((f.parent / "out.jsonl").read_text())
    assert rep["written"] == 1 and rec["output"] == "SELECT count(*) FROM teacher"
    assert rec["input"].startswith("-- DB Schema: CREATE TABLE teacher")


def test_malformed_json_names_the_file(school_db):
    f = school_db.parent / "bad.json"
    f.write_text('[{"question": "x", "sql": "SELECT 1",]')
    with pytest.raises(DataError, match=r"bad.json: malformed JSON at line 1"):
        build(_cfg(f))


def test_malformed_jsonl_names_the_line(school_db):
    f = school_db.parent / "bad.jsonl"
    f.write_text(json.dumps(PAIRS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON"):
        build(_cfg(f))


def test_malformed_csv_names_the_record(school_db):
    f = school_db.parent / "bad.csv"
    f.write_text("question,sql,db_path\nHow many?,SELECT count(*) FROM teacher,school.sqlite,extra\n")
    with pytest.raises(DataError, match=r"bad.csv: record 1 .* more cells than the header"):
        build(_cfg(f))


def test_missing_fields_are_all_listed_and_nothing_is_written(school_db):
    out = school_db.parent / "out.jsonl"
    out.write_text("previous content\n")
    rows = [
        dict(PAIRS[0]),
        {"question": "no sql", "db_path": "school.sqlite"},
        {"sql": "SELECT 1", "db_path": "school.sqlite"},
    ]
    f = school_db.parent / "p.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError) as ei:
        build(_cfg(f))
    msg = str(ei.value)
    assert "record 2: missing field 'sql'" in msg and "record 3: missing field 'question'" in msg
    assert out.read_text() == "previous content\n"


def test_non_utf8_file(school_db):
    f = school_db.parent / "latin.jsonl"
    f.write_bytes(b'{"question": "caf\xe9", "sql": "SELECT 1", "db_path": "school.sqlite"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        build(_cfg(f))


def test_bad_databases_are_counted_skips(school_db, tmp_path):
    (tmp_path / "notes.sqlite").write_text("plain text, not a database")
    rows = [
        PAIRS[0],
        {"question": "q", "sql": "SELECT 1", "db_path": "missing.sqlite"},
        {"question": "q", "sql": "SELECT 1", "db_path": "notes.sqlite"},
        {"question": "q", "sql": "SELECT nope FROM teacher", "db_path": "school.sqlite"},
    ]
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    rep = build(_cfg(f))
    assert rep["written"] == 1
    assert rep["skipped"] == {"gold_failed": 1, "missing_database": 1, "unreadable_database": 1}
    reasons = {s["id"]: (s["reason"], s["error"]) for s in rep["skipped_examples"]}
    assert "not a SQLite database" in reasons["2"][1]
    assert "no such column: nope" in reasons["3"][1]


def test_unknown_spider_db_id_is_a_counted_skip(spider_dir, tmp_path):
    import shutil

    root = tmp_path / "spider"
    root.mkdir()
    shutil.copy(spider_dir / "tables.json", root / "tables.json")
    (root / "database").symlink_to(spider_dir / "database")
    (root / "dev.json").write_text(
        json.dumps(
            [
                {"db_id": "concert_singer", "question": "How many singers?", "query": "SELECT count(*) FROM singer"},
                {"db_id": "no_such_db", "question": "?", "query": "SELECT 1"},
                {"db_id": "wta_1", "question": "?", "query": "SELECT 1"},
            ]
        )
    )
    rep = build(BuildConfig(benchmark="spider", data_dir=str(root), split="dev", out=str(tmp_path / "o.jsonl")))
    assert rep["written"] == 1
    assert rep["skipped"] == {"missing_database": 1, "unknown_db_id": 1}


def test_gold_timeout_is_a_counted_skip(school_db):
    rows = [
        PAIRS[0],
        {
            "question": "forever",
            "db_path": "school.sqlite",
            "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        },
    ]
    f = school_db.parent / "p.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    rep = build(_cfg(f, timeout=0.3))
    assert rep["written"] == 1 and rep["skipped"] == {"gold_timeout": 1}


def test_token_budget_shrinks_rows_then_drops_or_links(school_db, tiny_tokenizer):
    counter = TokenCounter(tiny_tokenizer)
    q, sql = "How many teachers are there?", "SELECT count(*) FROM teacher"
    full = introspect(school_db, sample_rows=3)

    def n(schema):
        return counter.count(prompts.prompt_messages(prompts.render_schema(schema, "ddl"), q, ""))

    n_full, n_norows, n_pruned = n(full), n(full.without_rows()), n(full.without_rows().restrict({"teacher"}))
    assert n_full > n_norows > n_pruned
    f = school_db.parent / "p.jsonl"
    f.write_text(json.dumps({"question": q, "sql": sql, "db_path": "school.sqlite"}))

    # 1. a budget that fits once the sample rows are gone
    rep = build(_cfg(f, sample_rows=3, max_prompt_tokens=n_norows), counter=counter)
    rec = json.loads((f.parent / "out.jsonl").read_text())
    assert rep["written"] == 1 and rep["shrunk"] == {"sample_rows": 1} and rep["shrunk_examples"] == 1
    assert rec["prompt_tokens"] == n_norows and "example rows" not in rec["messages"][1]["content"]

    # 2. tighter: nothing is cut by what the gold query uses (serving could not do the same), on training data
    # too: the example is skipped and counted
    for split in ("train", "p"):
        rep = build(
            BuildConfig(
                benchmark="pairs",
                data_dir=str(f),
                split=split,
                out=str(f.parent / "train.jsonl"),
                sample_rows=3,
                max_prompt_tokens=n_pruned,
            ),
            counter=counter,
        )
        assert rep["written"] == 0 and rep["skipped"] == {"over_token_budget": 1}
        assert rep["prompt_tokens"] is None

    # 3. with schema linking's budget mode, the linker cuts the schema to fit, as serving will
    rep = build(
        BuildConfig(
            benchmark="pairs",
            data_dir=str(f),
            split="train",
            out=str(f.parent / "train.jsonl"),
            max_prompt_tokens=n_pruned,
            schema_filter="budget",
        ),
        counter=counter,
    )
    rec = json.loads((f.parent / "train.jsonl").read_text())
    assert rep["written"] == 1 and rec["prompt_tokens"] <= n_pruned
    assert "teacher" in rec["messages"][1]["content"] and "CREATE TABLE student" not in rec["messages"][1]["content"]
    assert rec["schema_filter"]["mode"] == "budget" and rec["schema_filter"]["budget"] == n_pruned
    assert rec["schema_recall"]["all_columns"] and rep["schema_linking"]["column_recall"] in (1.0, None)


def test_token_statistics(school_db, tiny_tokenizer):
    f = _write(school_db.parent / "pairs.jsonl", PAIRS, "jsonl")
    rep = build(_cfg(f), counter=TokenCounter(tiny_tokenizer))
    t = rep["prompt_tokens"]
    assert t["n"] == 3 and t["min"] <= t["median"] <= t["p90"] <= t["max"]
    saved = json.loads(report_path(f.parent / "out.jsonl").read_text())
    assert saved["prompt_tokens"] == t
