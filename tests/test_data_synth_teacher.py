"""``sqltune data synth --teacher openai``: a real OpenAI-compatible teacher on loopback writes each
question and derives SQL back from it; the question is kept only when that SQL returns the pair's result."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from sqltune import prompts
from sqltune.cli import app as cli_app
from sqltune.data.synth import SynthConfig, report_path, synthesize
from sqltune.data.synth_teacher import clean_question
from sqltune.db.execute import execute
from sqltune.errors import ConfigError
from sqltune.io import read_jsonl
from sqltune.judge.score import result_key
from test_data_synth import star_db
from test_serve import Server

QUESTION = "Which rows answer riddle number {k}?"


class Teacher:
    """Writes "riddle number k" for the k-th distinct SQL it is shown; derives SQL back by k's remainder:
    0 the same SQL, 1 a different text with the same result, 2 a wrong query, 3 (writer) SQL as the question."""

    def __init__(self):
        self.numbers: dict[str, int] = {}
        self.sql_of: dict[int, str] = {}
        self.calls = {"write": 0, "check": 0}
        self.models: set[str] = set()
        self.lock = threading.Lock()

    def app(self):
        app = FastAPI()
        app.state.close = lambda: None

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            msgs = body["messages"]
            self.models.add(body["model"])
            with self.lock:
                if msgs[0]["content"].startswith("You write the questions"):
                    self.calls["write"] += 1
                    sql = re.search(r"-- SQL: (.*?)\n\n-- Its result", msgs[0]["content"], re.S).group(1)
                    k = self.numbers.setdefault(sql, len(self.numbers))
                    self.sql_of[k] = sql
                    text = "SELECT name FROM t" if k % 4 == 3 else "Question: " + QUESTION.format(k=k)
                else:
                    assert msgs[0] == {"role": "system", "content": prompts.SYSTEM_PROMPT}
                    self.calls["check"] += 1
                    k = int(re.search(r"riddle number (\d+)", msgs[1]["content"]).group(1))
                    sql = self.sql_of[k]
                    # k % 4 == 1: another text, the same rows in the same order (a subquery may reorder them)
                    other = sql.replace("SELECT ", "SELECT  ", 1) if "ORDER BY" in sql else f"SELECT * FROM ({sql})"
                    sql = {0: sql, 1: other, 2: "SELECT -987654321"}[k % 4]  # a result no pair has
                    text = f"```sql\n{sql}\n```"
            return {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
            }

        return app


@pytest.fixture
def teacher():
    t = Teacher()
    srv = Server(t.app())
    yield t, srv
    srv.stop()


def cfg(db, out, srv, **kw) -> SynthConfig:
    base = dict(teacher="openai", teacher_url=srv.url + "/v1", teacher_model="teacher-70b", api_key="sk-secret")
    base.update(teacher_retries=1, teacher_backoff=0.01)
    base.update(kw)
    return SynthConfig(db=[str(db)], out=str(out), n=24, seed=3, **base)


def test_teacher_questions_are_kept_only_when_the_back_check_returns_the_same_result(tmp_path, teacher):
    t, srv = teacher
    db = star_db(tmp_path / "shop.sqlite")
    out = tmp_path / "pairs.jsonl"
    r = synthesize(cfg(db, out, srv))
    pairs = list(read_jsonl(out))
    assert len(pairs) == r["written"] == 24  # on_reject=builtin: every pair stays
    part = r["teacher"]
    by_k = {t.numbers[p["sql"]] % 4: 0 for p in pairs}
    assert set(by_k) == {0, 1, 2, 3}
    for p in pairs:
        k = t.numbers[p["sql"]]
        if k % 4 in (0, 1):  # the same SQL, or another text with the same result: the teacher's question
            assert p["question_source"] == "teacher" and p["question"] == QUESTION.format(k=k)
            assert p["builtin_question"] and p["builtin_question"] != p["question"]
        else:  # a wrong back-check, or SQL written as the question: the built-in question stays
            assert p["question_source"] == "builtin" and "riddle" not in p["question"]
        res = execute(p["db_path"], p["sql"])  # the SQL itself is untouched and runs
        assert res.ok and len(res.rows) == p["rows"]
    kept = sum(p["question_source"] == "teacher" for p in pairs)
    assert part["teacher_questions_kept"] == kept == sum(t.numbers[p["sql"]] % 4 < 2 for p in pairs)
    assert part["rejected"] == {
        "check_wrong_result": sum(t.numbers[p["sql"]] % 4 == 2 for p in pairs),
        "sql_in_question": sum(t.numbers[p["sql"]] % 4 == 3 for p in pairs),
    }
    assert t.calls == {"write": 24, "check": 24 - part["rejected"]["sql_in_question"]}
    text = report_path(out).read_text()
    assert "sk-secret" not in text and json.loads(text)["teacher"]["asked"] == 24

    # a rerun asks the teacher nothing (every answer cached) and writes the same file
    before = dict(t.calls)
    first = out.read_bytes()
    synthesize(cfg(db, out, srv))
    assert t.calls == before and out.read_bytes() == first


def test_on_reject_drop_writes_only_verified_teacher_questions(tmp_path, teacher):
    t, srv = teacher
    db = star_db(tmp_path / "shop.sqlite")
    out = tmp_path / "pairs.jsonl"
    r = synthesize(cfg(db, out, srv, on_reject="drop", check_model="student-135m"))
    pairs = list(read_jsonl(out))
    assert pairs and all(p["question_source"] == "teacher" for p in pairs)
    assert r["teacher"]["dropped"] == 24 - len(pairs) > 0
    assert t.models == {"teacher-70b", "student-135m"}  # the back-check asked the named model
    keys = [result_key(execute(p["db_path"], p["sql"]).rows) for p in pairs]
    assert len(set(keys)) == len(keys)


def test_clean_question_and_bad_settings():
    assert clean_question('Question: "How many shops are in Lyon?"\n\nExplanation: ...') == (
        None,
        "How many shops are in Lyon?",
    )
    assert clean_question("**Q:** Who sells the most?") == (None, "Who sells the most?")
    assert clean_question("")[0] == "no_question"
    assert clean_question("SELECT a FROM b")[0] == "sql_in_question"
    assert clean_question("why " * 100)[0] == "too_long"
    with pytest.raises(ConfigError, match="teacher-model"):
        SynthConfig(db=["x.sqlite"], out="p.jsonl", teacher="openai").validate()
    with pytest.raises(ConfigError, match="on_reject"):
        SynthConfig(db=["x.sqlite"], out="p.jsonl", on_reject="keep").validate()


def test_cli_synth_with_a_teacher(tmp_path, teacher):
    t, srv = teacher
    db = star_db(tmp_path / "shop.sqlite")
    out = tmp_path / "pairs.jsonl"
    res = CliRunner().invoke(
        cli_app,
        ["data", "synth", "--db", str(db), "--out", str(out), "--n", "12", "--teacher", "openai"]
        + ["--teacher-url", srv.url + "/v1", "--teacher-model", "teacher-70b"],
    )
    assert res.exit_code == 0, res.output
    assert "passed the back-check" in res.output and len(list(read_jsonl(out))) == 12
    cmd = [sys.executable, "-m", "sqltune", "data", "synth", "--db", str(db), "--out", str(tmp_path / "q.jsonl")]
    r = subprocess.run([*cmd, "--teacher", "openai"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "teacher-model" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "q.jsonl").exists()
