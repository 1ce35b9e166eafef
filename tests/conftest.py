"""Shared fixtures: real benchmark folders, small real SQLite databases, a tiny real tokenizer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__import__("os").environ.get("SQLTUNE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"benchmark data not found at {path}; set SQLTUNE_SHARED_DATA to the folder with spider/ and bird/")
    return path


@pytest.fixture(scope="session")
def spider_dir() -> Path:
    return _need(SHARED / "spider")


@pytest.fixture(scope="session")
def bird_dir() -> Path:
    return _need(SHARED / "bird")


SCHOOL_DDL = """
CREATE TABLE teacher (
  teacher_id INTEGER PRIMARY KEY,
  name TEXT,
  age INTEGER
);
CREATE TABLE "class room" (
  room_id INTEGER PRIMARY KEY,
  "room name" TEXT,
  teacher_id INTEGER REFERENCES teacher(teacher_id)
);
CREATE TABLE student (
  student_id INTEGER PRIMARY KEY,
  name TEXT,
  room_id INTEGER,
  FOREIGN KEY (room_id) REFERENCES "class room"(room_id)
);
"""


def make_school_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHOOL_DDL)
    conn.executemany("INSERT INTO teacher VALUES (?, ?, ?)", [(1, "Ann", 40), (2, "Bob", 35), (3, "Cy", 50)])
    conn.executemany('INSERT INTO "class room" VALUES (?, ?, ?)', [(1, "Red", 1), (2, "Blue", 2)])
    conn.executemany("INSERT INTO student VALUES (?, ?, ?)", [(i, f"s{i}", 1 + i % 2) for i in range(1, 11)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def school_db(tmp_path: Path) -> Path:
    return make_school_db(tmp_path / "school.sqlite")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A real fast tokenizer (word-level, whitespace + punctuation split) with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "<eos>": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<eos>", pad_token="<eos>")
    fast.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} <eos>\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    return fast
