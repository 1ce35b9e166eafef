"""Shared fixtures: real benchmark folders, small real SQLite databases, a tiny real tokenizer."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    """$SQLTUNE_SHARED_DATA, else ``shared/data`` beside this checkout, else beside the checkout it was
    cloned from (a clone in /tmp of a working tree that sits next to the data)."""
    import os
    import subprocess

    if os.environ.get("SQLTUNE_SHARED_DATA"):
        return Path(os.environ["SQLTUNE_SHARED_DATA"])
    here = ROOT.parent / "shared" / "data"
    if here.exists():
        return here
    try:
        origin = subprocess.run(
            ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    source = Path(origin.removeprefix("file://")) if origin and "://" not in origin.removeprefix("file://") else None
    if source is not None and source.is_dir() and (source.resolve().parent / "shared" / "data").exists():
        return source.resolve().parent / "shared" / "data"
    return here


SHARED = _shared_data()


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


TINY_WORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "LIMIT",
    "COUNT",
    "(",
    ")",
    "*",
    ",",
    "=",
    ">",
    "<",
    ";",
    ".",
    "AND",
    "OR",
    "AS",
    "JOIN",
    "ON",
    "DESC",
    "ASC",
    "teacher",
    "student",
    "name",
    "age",
    "room_id",
    "teacher_id",
    "student_id",
    "1",
    "2",
    "3",
    "10",
    "Ann",
    "Bob",
    "'",
    "the",
    "of",
    "how",
    "many",
    "what",
    "is",
    "are",
    "You",
    "text",
    "to",
    "SQL",
    "query",
    "translator",
    "Using",
    "SQLite",
    "DB",
    "Schema",
    "External",
    "Knowledge",
    "translate",
    "following",
    "question",
    "into",
    "a",
    "select",
    "statement",
    "-",
    ":",
    "system",
    "user",
    "assistant",
]


def make_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A real (randomly initialised) 2-layer Llama with a word-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<eos>": 1, "<|im_start|>": 2, "<|im_end|>": 3}
    for w in TINY_WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token="<|im_start|>",
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.chat_template = (
        "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    )
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=3,
        pad_token_id=3,
        bos_token_id=2,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))


def make_school_dataset(path: Path, db: Path, n: int = 12, style: str = "compact") -> Path:
    """A chat dataset over the school database, built by sqltune's own prompt module."""
    import json

    from sqltune.db.schema import introspect
    from sqltune.prompts import chat_record, render_schema

    schema = render_schema(introspect(db, "school"), style)
    qa = [
        ("how many teacher are there", "SELECT COUNT(*) FROM teacher"),
        ("what is the name of the student", "SELECT name FROM student"),
        ("how many student are there", "SELECT COUNT(*) FROM student"),
        ("what is the age of Ann", "SELECT age FROM teacher WHERE name = 'Ann'"),
    ]
    with open(path, "w") as fh:
        for i in range(n):
            q, sql = qa[i % len(qa)]
            rec = {
                "id": f"s-{i}",
                "db_id": "school",
                "db_path": str(db),
                "question": q,
                "evidence": "",
                "sql": sql,
                "difficulty": "easy",
                "source": "pairs",
                "schema_style": style,
                **chat_record(schema, q, "", sql),
            }
            fh.write(json.dumps(rec) + "\n")
    return path


FIXTURES = Path(__file__).parent / "fixtures"


def make_gguf_test_model(folder: Path, seed: int = 0) -> Path:
    """A tiny random Llama (2 layers, width 64) with SmolLM2's real tokenizer: what llama.cpp's converter takes."""
    import gzip
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    src = FIXTURES / "smollm2_tokenizer"
    (folder / "tokenizer.json").write_bytes(gzip.decompress((src / "tokenizer.json.gz").read_bytes()))
    for name in ("tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(src / name, folder / name)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
        initializer_range=0.3,  # varied greedy text (at 0.02 a random model says "\n" forever)
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def gguf_test_model(tmp_path_factory) -> Path:
    return make_gguf_test_model(tmp_path_factory.mktemp("gguf_test_model"))


@pytest.fixture(scope="session")
def gguf_converter() -> Path:
    """llama.cpp's converter, fetched by 'sqltune export converter' (CI does it before the tests)."""
    from sqltune.export.converter import find_converter

    folder = find_converter()
    if folder is None:
        pytest.skip(
            "llama.cpp's converter is not cached here: run 'sqltune export converter' (needs the package index)"
        )
    return folder


# ---------------------------------------------------------------- real database servers
# PostgreSQL and MariaDB/MySQL run on the development and CI machines (127.0.0.1:5432, trust auth;
# 127.0.0.1:3306, root with no password). Each test gets a database of its own, dropped after. Where
# a server cannot be reached, its tests are skipped saying so, except under CI=true, where that fails.
PG_ADMIN = os.environ.get("SQLTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN = os.environ.get("SQLTUNE_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def _unreachable(what: str, e: Exception) -> None:
    msg = f"{what} is not reachable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + "; CI must run every engine test")
    pytest.skip(msg)


def _server_database(admin: str, engine: str):
    import uuid

    import sqlalchemy as sa

    from sqltune.db.target import resolve

    name = f"sqltune_t_{uuid.uuid4().hex[:10]}"
    t = resolve(admin)
    try:
        eng = t.sqlalchemy_engine(isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            if engine == "postgresql":
                c.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                c.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    except Exception as e:  # server down, driver missing
        _unreachable(f"{engine} at {t.host}:{t.port}", e)
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with eng.connect() as c:
            if engine == "postgresql":
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                c.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        eng.dispose()


@pytest.fixture
def pg_db():
    """An empty PostgreSQL database (its admin URL), dropped after the test."""
    yield from _server_database(PG_ADMIN, "postgresql")


@pytest.fixture
def mysql_db():
    """An empty MariaDB/MySQL database (its admin URL), dropped after the test."""
    yield from _server_database(MYSQL_ADMIN, "mysql")


SHOP_DDL = """
CREATE TABLE category (category_id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE products (
  id INTEGER PRIMARY KEY, name TEXT, price REAL, category_id INTEGER REFERENCES category(category_id)
);
"""


def make_shop_db(path: Path) -> Path:
    """A small SQLite shop: categories and products, with a foreign key."""
    conn = sqlite3.connect(path)
    conn.executescript(SHOP_DDL)
    conn.executemany("INSERT INTO category VALUES (?, ?)", [(1, "Tools"), (2, "Toys"), (3, "Books")])
    conn.executemany(
        "INSERT INTO products VALUES (?, ?, ?, ?)",
        [(i, f"item {i}", round(1.5 * i, 2), 1 + i % 3) for i in range(1, 21)],
    )
    conn.commit()
    conn.close()
    return path


# ---------------------------------------------------------------- the query bank
@pytest.fixture(autouse=True)
def _query_bank_off(request, monkeypatch):
    """The query bank (on by default in predict and ask) draws and encodes a thousand queries or more for each
    new database, seconds per test database; in-process tests of other features run without it. Tests marked
    ``bank`` (tests/test_bank.py) run it, and so does every test that starts sqltune in a subprocess."""
    if request.node.get_closest_marker("bank") is None:
        monkeypatch.setattr("sqltune.linking.bank.bank_for", lambda *a, **k: None)


# ---------------------------------------------------------------- nothing left running
# Every process the test run starts carries this tag in its environment (or names the run's temporary
# folder on its command line); at the end of the run none may still be alive: a leftover fails the run.
_RUN_TAG = f"{os.getpid()}-{os.urandom(4).hex()}"
os.environ["SQLTUNE_TEST_RUN"] = _RUN_TAG


def _leftovers(session) -> list[str]:
    import psutil

    base = str(session.config._tmp_path_factory.getbasetemp()) if hasattr(session.config, "_tmp_path_factory") else ""
    me = os.getpid()
    out = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        if p.pid == me or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            tagged = p.environ().get("SQLTUNE_TEST_RUN") == _RUN_TAG
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.Error, OSError):
            continue
        if tagged or (base and base in cmd):
            out.append(f"{p.pid}: {cmd[:200]}")
    return out


def pytest_sessionfinish(session, exitstatus):
    import time

    deadline = time.time() + 5  # processes told to stop get a few seconds
    left = _leftovers(session)
    while left and time.time() < deadline:
        time.sleep(0.2)
        left = _leftovers(session)
    if left:
        import psutil

        for line in left:
            with __import__("contextlib").suppress(psutil.Error):
                psutil.Process(int(line.split(":")[0])).kill()
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            "processes the tests left running (now killed):\n  " + "\n  ".join(left), red=True
        )
        session.exitstatus = 1
