"""sqltune data cot: a real OpenAI-compatible teacher on loopback (fixed answers per question), the
builtin teacher, verification by execution, retries, leaks, teacher failures, and resume after SIGKILL."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from conftest import make_school_dataset
from sqltune import prompts
from sqltune.data.cot import CotConfig, build_cot, report_path
from sqltune.errors import ConfigError, DataError
from sqltune.io import read_jsonl
from test_serve import Server

FIXTURES = Path(__file__).parent / "fixtures"


def answer(sql: str, steps: str = "1. First, I need to consider the teacher table.") -> str:
    return f"Let me think through this step by step:\n\n{steps}\n\nFinally, the SQL statement for the text question is: \n```sql\n{sql}\n```"


class Teacher:
    """Answers by the question in the cookbook's prompt; a list is consumed one per call."""

    def __init__(self, script: dict, delay: float = 0.0):
        self.script = {k: list(v) if isinstance(v, list) else v for k, v in script.items()}
        self.delay = delay
        self.calls: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def app(self):
        app = FastAPI()
        app.state.close = lambda: None

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            import asyncio

            body = await request.json()
            prompt = body["messages"][-1]["content"]
            q = prompt.split("-- Text Question Input: ", 1)[1].split("\n", 1)[0].split(" (#", 1)[0]
            with self.lock:
                self.calls.append((q, body.get("temperature", 0)))
                a = self.script.get(q, answer("SELECT 1"))
                if isinstance(a, list):
                    a = a.pop(0) if len(a) > 1 else a[0]
            if self.delay:
                await asyncio.sleep(self.delay)
            if a == "SLOW":
                await asyncio.sleep(5)
            if a == "500":
                return JSONResponse({"error": {"message": "boom"}}, status_code=500)
            content = "" if a == "EMPTY" else a
            return {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            }

        return app


@pytest.fixture
def dataset(tmp_path, school_db):
    return make_school_dataset(tmp_path / "train.jsonl", school_db, n=4)


def serve(teacher: Teacher) -> Server:
    return Server(teacher.app())


def cfg(dataset, out, srv, **kw) -> CotConfig:
    base = dict(teacher="openai", teacher_url=srv.url + "/v1", teacher_model="teacher-70b", retries=1, backoff=0.01)
    base.update(kw)
    return CotConfig(dataset=str(dataset), out=str(out), **base)


def test_the_teacher_prompt_is_the_cookbooks_character_for_character():
    literal = (FIXTURES / "cookbook_teacher_prompt.py.txt").read_text()
    assert ast.literal_eval(literal) == prompts.TEACHER_PROMPT


def test_kept_by_result_rejected_retried_and_leaks(tmp_path, dataset):
    # the school dataset's four questions (make_school_dataset); the gold SQL is beside each
    script = {
        # same result as the gold "SELECT COUNT(*) FROM teacher", different text: kept
        "how many teacher are there": answer("select count(t.teacher_id)\nfrom teacher as t"),
        # a wrong result first, then (the retry at a higher temperature) the right one
        "what is the name of the student": [answer("SELECT name FROM teacher"), answer("SELECT name FROM student")],
        # talks about the answer it was shown: rejected every time
        "how many student are there": answer("SELECT COUNT(*) FROM student", "1. The gold SQL counts students."),
        # no SQL at all
        "what is the age of Ann": "I think the age is 40.",
    }
    teacher = Teacher(script)
    srv = serve(teacher)
    try:
        r = build_cot(cfg(dataset, tmp_path / "cot.jsonl", srv, retry_samples=1))
    finally:
        srv.stop()
    recs = {x["question"]: x for x in read_jsonl(tmp_path / "cot.jsonl")}
    assert set(recs) == {"how many teacher are there", "what is the name of the student"}
    kept = recs["how many teacher are there"]
    assert kept["cot_status"] == "kept" and kept["cot_samples"] == 1 and kept["sql"] == "SELECT COUNT(*) FROM teacher"
    assert kept["reasoning"].startswith("Let me think through this step by step")
    assert [m["role"] for m in kept["messages"]] == ["system", "user", "assistant"]
    assert kept["messages"][0]["content"] == prompts.COT_SYSTEM_PROMPT
    assert kept["messages"][2]["content"] == script["how many teacher are there"]
    assert recs["what is the name of the student"]["cot_samples"] == 2
    assert r["rejected_samples"] == {"wrong_result": 1, "mentions_gold": 2, "no_sql": 2}
    assert r["kept"] == 2 and r["dropped"] == 2 and r["by_difficulty"]["easy"]["kept"] == 2
    assert r["tokens"] == {"prompt": 700, "completion": 140}  # 7 requests
    temps = [t for q, t in teacher.calls if q == "what is the name of the student"]
    assert temps == [0.0, 0.8]
    assert r["teacher"]["model"] == "teacher-70b" and "api_key" not in json.dumps(r)
    assert json.loads(report_path(tmp_path / "cot.jsonl").read_text())["kept"] == 2


def test_on_fail_plain_keeps_the_record_without_reasoning(tmp_path, dataset):
    srv = serve(Teacher({}))  # every answer is SELECT 1: wrong for every record
    try:
        r = build_cot(cfg(dataset, tmp_path / "cot.jsonl", srv, retry_samples=0, on_fail="plain"))
    finally:
        srv.stop()
    recs = read_jsonl(tmp_path / "cot.jsonl")
    assert r["kept"] == 0 and r["kept_without_reasoning"] == 4 and len(recs) == 4
    a = recs[0]["messages"][2]["content"]
    assert a.endswith(f"```sql\n{recs[0]['sql']}\n```") and recs[0]["reasoning"] == ""


def test_a_teacher_that_times_out_or_returns_garbage_is_retried_then_reported(tmp_path, dataset):
    script = {
        "how many teacher are there": "SLOW",
        "what is the name of the student": "EMPTY",
        "how many student are there": ["500", answer("SELECT COUNT(*) FROM student")],  # recovers on retry
    }
    teacher = Teacher(script)
    srv = serve(teacher)
    try:
        r = build_cot(cfg(dataset, tmp_path / "cot.jsonl", srv, timeout=0.5, retry_samples=0))
    finally:
        srv.stop()
    asked = [q for q, _ in teacher.calls]
    assert asked.count("how many teacher are there") == 2 and asked.count("what is the name of the student") == 2
    assert r["teacher_errors"] == 2 and r["rejected_samples"]["teacher_error"] == 2
    kept = {x["question"] for x in read_jsonl(tmp_path / "cot.jsonl")}
    assert kept == {"how many student are there"}  # the 500 was retried; "age of Ann" got SELECT 1: wrong


def test_sigkill_midway_then_rerun_loses_and_duplicates_nothing(tmp_path, school_db):
    data = make_school_dataset(tmp_path / "train.jsonl", school_db, n=40)
    # distinct questions: identical prompts would be answered from the cache after the first four
    recs = read_jsonl(data)
    data.write_text(
        "".join(json.dumps({**r, "question": f"{r['question']} (#{i})"}) + "\n" for i, r in enumerate(recs))
    )
    gold = {"how many teacher are there": "SELECT COUNT(*) FROM teacher"}
    gold["what is the name of the student"] = "SELECT name FROM student"
    gold["how many student are there"] = "SELECT COUNT(*) FROM student"
    gold["what is the age of Ann"] = "SELECT age FROM teacher WHERE name = 'Ann'"
    teacher = Teacher({q: answer(s) for q, s in gold.items()}, delay=0.15)
    srv = serve(teacher)
    out = tmp_path / "cot.jsonl"
    args = [sys.executable, "-m", "sqltune", "data", "cot", "--dataset", str(data), "--out", str(out)]
    args += ["--teacher", "openai", "--teacher-url", srv.url + "/v1", "--teacher-model", "t", "--concurrency", "2"]
    try:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 8):
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        first = len(read_jsonl(out))
        assert 8 <= first < 40
        before = len(teacher.calls)
        r = subprocess.run(args, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        srv.stop()
    ids = [x["id"] for x in read_jsonl(out)]
    assert sorted(ids) == sorted(f"s-{i}" for i in range(40)) and len(ids) == len(set(ids))
    rerun_calls = len(teacher.calls) - before
    assert rerun_calls <= 40 - first  # answers already cached (the requests in flight) are not asked again
    rep = json.loads(report_path(out).read_text())
    assert rep["resumed_from"] == first and rep["kept"] == 40


def test_builtin_teacher_keeps_every_record_without_an_llm(tmp_path, school_db):
    data = make_school_dataset(tmp_path / "train.jsonl", school_db, n=8)
    r = build_cot(CotConfig(dataset=str(data), out=str(tmp_path / "cot.jsonl")))
    recs = read_jsonl(tmp_path / "cot.jsonl")
    assert r["kept"] == 8 and len(recs) == 8 and r["teacher"] == {"teacher": "builtin"}
    ann = next(x for x in recs if x["question"] == "what is the age of Ann")
    assert "teacher" in ann["reasoning"] and "name equals 'Ann'" in ann["reasoning"]
    assert ann["cot"].endswith("```sql\nSELECT age FROM teacher WHERE name = 'Ann'\n```")
    assert ann["messages"][1] == prompts.messages_from_record(read_jsonl(data)[3])[1]  # the record's own prompt


def test_bad_input_is_a_clear_error(tmp_path, dataset):
    with pytest.raises(DataError, match="no such dataset"):
        build_cot(CotConfig(dataset=str(tmp_path / "nope.jsonl"), out=str(tmp_path / "o.jsonl")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "1", "question": "q", "db_path": "x"}) + "\n")
    with pytest.raises(DataError, match="line 1: missing field 'sql'"):
        build_cot(CotConfig(dataset=str(bad), out=str(tmp_path / "o.jsonl")))
    with pytest.raises(ConfigError, match="teacher-model"):
        build_cot(CotConfig(dataset=str(dataset), out=str(tmp_path / "o.jsonl"), teacher="openai"))
    assert not (tmp_path / "o.jsonl").exists()


def test_cot_records_train_unchanged_and_the_quickstart_files(tmp_path, school_db, tiny_model):
    from sqltune.quickstart import cot_files
    from sqltune.train.config import load_config
    from sqltune.train.sft import train

    tr = make_school_dataset(tmp_path / "train.jsonl", school_db, n=8)
    te = make_school_dataset(tmp_path / "test.jsonl", school_db, n=4)
    cot_train, cot_test = cot_files(tr, te, log=lambda m: None)
    test_recs = read_jsonl(cot_test)
    assert all(r["messages"][0]["content"] == prompts.COT_SYSTEM_PROMPT for r in test_recs)
    over = {"model": str(tiny_model), "train_file": str(cot_train), "output_dir": str(tmp_path / "run")}
    over.update(method="full", batch_size=4, max_steps=2, save_steps=100, report_to="[]", precision="fp32")
    m = train(load_config(None, [f"{k}={v}" for k, v in over.items()]))
    assert m["global_steps"] == 2 and (Path(m["output"]) / "config.json").is_file()


def test_cot_prompts_replace_the_system_turn_only(dataset):
    rec = read_jsonl(dataset)[0]
    plain = prompts.messages_from_record(rec)
    cot = prompts.messages_from_record(rec, cot=True)
    assert plain[0]["content"] == prompts.SYSTEM_PROMPT and cot[0]["content"] == prompts.COT_SYSTEM_PROMPT
    assert cot[1:] == plain[1:]
    alpaca = {"instruction": prompts.SYSTEM_PROMPT, "input": plain[1]["content"], "output": "SELECT 1"}
    assert prompts.messages_from_record(alpaca, cot=True) == cot
    assert prompts.prompt_messages("t(a)", "q", cot=True)[0]["content"] == prompts.COT_SYSTEM_PROMPT
