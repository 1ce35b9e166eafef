"""The serve stage: the ask engine, and a real uvicorn server on loopback with real clients
(httpx, the openai package), hostile input, and the web page in a real headless browser.

The model behind most of these tests is a scripted generation backend (it answers each question
with a fixed SQL text, implementing the same Backend interface as hf/openai/vllm): the engine,
the judge, the server and the page are what is under test, and a scripted answer makes every
path (right, wrong, failing, writing, runaway) reachable on purpose. One test uses the real tiny
model end to end.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from sqltune.judge import Judge
from sqltune.models.backends import Completion
from sqltune.serve.app import ServeConfig, create_app
from sqltune.serve.ask import AskConfig, Database, ask

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


class ScriptedModel:
    """Answers the question in the prompt's last user turn with ``script[question]`` (a list is
    consumed one per call: first answer, then the repairs)."""

    name = "scripted"

    def __init__(self, script: dict[str, object]):
        self.script = {k: list(v) if isinstance(v, list) else v for k, v in script.items()}
        self.calls: list[int] = []

    def info(self):
        return {"backend": self.name}

    def _answer(self, messages):
        first_user = next(m["content"] for m in messages if m["role"] == "user")
        question = first_user.rsplit("-- Question: ", 1)[-1]
        a = self.script.get(question, "I am not sure.")
        if isinstance(a, list):
            return a.pop(0) if len(a) > 1 else a[0]
        return a

    def generate(self, prompts, params):
        self.calls.append(len(prompts))
        return [[Completion(self._answer(m), 10, 5) for _ in range(params.num_samples)] for m in prompts]


def make_shop(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, country TEXT, spent REAL);
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
        """
    )
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?)",
        [(1, "Ann", "Germany", 10.5), (2, "Bob", "France", 20.0), (3, "Cy", "Germany", 7.25), (4, "Di", "Spain", 3.0)],
    )
    conn.execute("INSERT INTO notes VALUES (1, '<script>window.pwned = 1</script><b>bold</b>')")
    conn.commit()
    conn.close()
    return path


SCRIPT = {
    "How many customers are from Germany?": "SELECT count(*) FROM customers WHERE country = 'Germany'",
    "Customers per country?": "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY country",
    "Fix me": ["SELECT nme FROM customers", "SELECT name FROM customers ORDER BY id"],
    "Never works": "SELECT nope FROM nowhere",
    "Drop it": "WITH a AS (SELECT 1) DELETE FROM customers",  # passes extraction; the engine refuses it
    "Show the notes": "SELECT body FROM notes",
    "Spin": RUNAWAY,
}


@pytest.fixture
def shop(tmp_path):
    return make_shop(tmp_path / "shop.sqlite")


def test_ask_answers_repairs_and_abstains(shop):
    db = Database(shop)
    model = ScriptedModel(SCRIPT)
    cfg = AskConfig(repairs=2, timeout=1.0)
    with Judge(workers=1, timeout=1.0) as judge:
        a = ask("How many customers are from Germany?", db, model, judge, cfg)
        assert a.answered and a.rows == [[2]] and a.columns == ["count(*)"] and a.vote_share == 1.0
        fixed = ask("Fix me", db, model, judge, cfg)
        assert fixed.answered and fixed.rows == [["Ann"], ["Bob"], ["Cy"], ["Di"]]
        assert [(x.ok, x.error_type, x.round) for x in fixed.attempts] == [
            (False, "unknown_column", 0),
            (True, None, 1),
        ]
        no = ask("Never works", db, model, judge, cfg)
        assert not no.answered and len(no.attempts) == 3 and "no candidate ran after 2 repair(s)" in no.abstain_reason
        before = shop.read_bytes()
        drop = ask("Drop it", db, model, judge, cfg)
        assert not drop.answered and drop.attempts[0].error_type == "write_attempt"
        assert shop.read_bytes() == before
        chatter = ask("Something else", db, model, judge, cfg)
        assert not chatter.answered and "no SQL in the model's answer" in chatter.abstain_reason


def test_votes_and_the_abstain_threshold(shop):
    class Split(ScriptedModel):
        def generate(self, prompts, params):
            sqls = ["SELECT 1", "SELECT 2", "SELECT 2", "SELECT nope"]
            return [[Completion(sqls[k % 4], 1, 1) for k in range(params.num_samples)] for _ in prompts]

    db = Database(shop)
    with Judge(workers=1) as judge:
        a = ask("q", db, Split({}), judge, AskConfig(samples=4))
        assert a.answered and a.sql == "SELECT 2" and a.vote_share == 0.5
        b = ask("q", db, Split({}), judge, AskConfig(samples=4, min_vote_share=0.6))
        assert not b.answered and "2 of 4 votes" in b.abstain_reason and b.sql == "SELECT 2"


def test_real_tiny_model_end_to_end(shop, tiny_model):
    from sqltune.models.backends import HFBackend

    backend = HFBackend(str(tiny_model), device="cpu", precision="fp32")
    with Judge(workers=1) as judge:
        a = ask("how many customers are there", Database(shop), backend, judge, AskConfig(max_new_tokens=8, repairs=1))
    assert a.timings["generate_s"] > 0 and all(x.raw is not None for x in a.attempts)
    if a.answered:  # a random model: either SQL that really ran, with its rows ...
        assert a.sql and a.attempts[-1].ok and a.columns
    else:  # ... or an honest "I don't know" after the first try and the one repair
        assert len(a.attempts) == 2 and [x.round for x in a.attempts] == [0, 1]
        assert a.abstain_reason.startswith("no candidate ran after 1 repair(s)")


# ----------------------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app):
        import uvicorn

        self.app = app
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.close()  # the judges' worker processes stop with the server


@pytest.fixture
def served(tmp_path, shop):
    other = make_shop(tmp_path / "other.sqlite")
    model = ScriptedModel(SCRIPT)
    app = create_app(
        model,
        "scripted",
        [Database(shop), Database(other)],
        AskConfig(timeout=1.0, max_rows=50),
        "compact",
        ServeConfig(log_dir=str(tmp_path / "logs"), judges=4, batch_wait=0.2),
    )
    srv = Server(app)
    yield srv, model, tmp_path, app
    srv.stop()


def test_http_api(served):
    srv, model, tmp, app = served
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/health").json()["databases"] == ["shop", "other"]
        assert [d["name"] for d in c.get("/v1/databases").json()["databases"]] == ["shop", "other"]
        schema = c.get("/v1/schema", params={"db": "shop"}).json()
        assert schema["style"] == "compact" and "customers(id PK, name, country, spent)" in schema["schema"]
        a = c.post("/v1/ask", json={"question": "How many customers are from Germany?", "db": "shop"}).json()
        assert a["answered"] and a["rows"] == [[2]] and a["sql"].startswith("SELECT count(*)") and a["id"]
        r = c.post("/v1/sql", json={"sql": "SELECT name FROM customers WHERE spent > 8 ORDER BY name", "db": "shop"})
        assert r.json()["rows"] == [["Ann"], ["Bob"]] and r.json()["ok"]
        # feedback closes the loop: a confirmed and a corrected answer become verified pairs
        assert c.post("/v1/feedback", json={"id": a["id"], "verdict": "right"}).json()["pair"]
        b = c.post("/v1/ask", json={"question": "Customers per country?", "db": "shop"}).json()
        fix = "SELECT country, count(*) FROM customers GROUP BY country"
        assert c.post("/v1/feedback", json={"id": b["id"], "verdict": "wrong", "corrected_sql": fix}).json()["pair"]
        # 4xx for bad input, each with a message
        assert c.post("/v1/ask", json={"question": "x"}).status_code == 400  # two databases: name one
        assert c.post("/v1/ask", json={"question": "x", "db": "nope"}).status_code == 404
        bad = c.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 422 and "bad request" in bad.json()["error"]
        big = c.post("/v1/sql", json={"sql": "SELECT 1 -- " + "x" * 70000, "db": "shop"})
        assert big.status_code == 413
        assert c.post("/v1/feedback", json={"id": "unknown", "verdict": "right"}).status_code == 404
    pairs = [json.loads(x) for x in (tmp / "logs" / "feedback.jsonl").read_text().splitlines()]
    assert [p["verdict"] for p in pairs] == ["confirmed", "corrected"] and pairs[1]["sql"] == fix
    log = [json.loads(x) for x in (tmp / "logs" / "requests.jsonl").read_text().splitlines()]
    asks = [x for x in log if x["path"] == "/v1/ask" and x["status"] == 200]
    assert asks and {"question", "sql", "answered", "attempts", "latency_s"} <= set(asks[0])

    from sqltune.data.build import BuildConfig, build

    rep = build(
        BuildConfig(
            benchmark="pairs", data_dir=str(tmp / "logs" / "feedback.jsonl"), split="", out=str(tmp / "fb.jsonl")
        )
    )
    assert rep["written"] == 2 and rep["skipped"] == {}


def test_writes_never_change_a_database(served):
    srv, _, tmp, _ = served
    shop = tmp / "shop.sqlite"
    before = shop.read_bytes()
    hostile = [
        "DROP TABLE customers",
        "UPDATE customers SET name = 'x'",
        "INSERT INTO customers VALUES (9, 'x', 'y', 1)",
        "REPLACE INTO customers VALUES (1, 'x', 'y', 1)",
        "WITH a AS (SELECT 1) DELETE FROM customers",
        f"ATTACH DATABASE '{tmp / 'evil.sqlite'}' AS evil",
        "PRAGMA user_version = 7",
        "PRAGMA journal_mode = DELETE",
        f"VACUUM INTO '{tmp / 'copy.sqlite'}'",
        "CREATE TABLE t (a)",
        "SELECT 1; DROP TABLE customers",
    ]
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for sql in hostile:
            r = c.post("/v1/sql", json={"sql": sql, "db": "shop"}).json()
            assert not r["ok"], sql
        a = c.post("/v1/ask", json={"question": "Drop it", "db": "shop"}).json()
        assert not a["answered"] and a["attempts"][0]["error_type"] == "write_attempt"
    assert shop.read_bytes() == before
    assert not (tmp / "evil.sqlite").exists() and not (tmp / "copy.sqlite").exists()


def test_a_runaway_query_stops_in_time_and_blocks_no_one(served):
    srv, *_ = served
    with httpx.Client(base_url=srv.url, timeout=30) as c, cf.ThreadPoolExecutor(12) as pool:
        t0 = time.monotonic()
        spin = pool.submit(c.post, "/v1/sql", json={"sql": RUNAWAY, "db": "shop"})
        time.sleep(0.1)
        others = [pool.submit(c.post, "/v1/sql", json={"sql": f"SELECT {i}", "db": "other"}) for i in range(10)]
        answered = [f.result().json() for f in others]
        others_done = time.monotonic() - t0
        r = spin.result().json()
        spin_done = time.monotonic() - t0
    assert [x["rows"] for x in answered] == [[[i]] for i in range(10)]
    assert others_done < 1.0  # answered while the runaway query was still running
    assert r["error_type"] == "timeout" and spin_done < 1.0 + 1.0


def test_a_ten_million_row_result_is_capped(served):
    srv, *_ = served
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) SELECT x FROM c"
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/v1/sql", json={"sql": sql, "db": "shop"}).json()
    assert r["ok"] and r["truncated"] and len(r["rows"]) == 50 and r["rows"][:2] == [[1], [2]]


def test_concurrent_asks_are_batched(served):
    srv, model, _, app = served
    q = "How many customers are from Germany?"
    with httpx.Client(base_url=srv.url, timeout=30) as c, cf.ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda _: c.post("/v1/ask", json={"question": q, "db": "shop"}).json(), range(8)))
    assert all(r["answered"] and r["rows"] == [[2]] for r in rs)
    assert max(app.state.batcher.batches) > 1 and max(model.calls) > 1  # one generate call served several


def _scripted_app(shop, tmp_path, **serve):
    """The app over one database with the scripted model and default ask settings."""
    cfg = ServeConfig(log_dir=str(tmp_path / "logs"), **serve)
    return create_app(ScriptedModel(SCRIPT), "scripted", [Database(shop)], AskConfig(), "ddl", cfg)


def test_api_key_and_binding(tmp_path, shop):
    from sqltune.errors import ConfigError

    with pytest.raises(ConfigError, match="needs an API key"):
        ServeConfig(host="0.0.0.0").validate()
    app = _scripted_app(shop, tmp_path, api_key="s3cret")
    srv = Server(app)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/v1/databases").status_code == 401
            assert c.get("/v1/databases", headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = c.post("/v1/sql", json={"sql": "SELECT 1"}, headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200 and ok.json()["rows"] == [[1]]  # one database: db may be left out
            assert "access-control-allow-origin" not in {k.lower() for k in ok.headers}
    finally:
        srv.stop()


def test_openai_routes_stream_and_not(served, tiny_model, tmp_path, shop):
    import openai

    from sqltune.models.backends import HFBackend

    backend = HFBackend(str(tiny_model), device="cpu", precision="fp32", batch_size=4)
    app = create_app(
        backend, "tiny", [Database(shop)], AskConfig(max_new_tokens=8), "ddl", ServeConfig(log_dir=str(tmp_path / "l2"))
    )
    srv = Server(app)
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x")
        assert [m.id for m in client.models.list().data] == ["tiny"]
        msgs = [{"role": "user", "content": "how many teacher are there"}]
        whole = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=6, temperature=0)
        stream = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=6, temperature=0, stream=True)
        parts = [ch.choices[0].delta.content or "" for ch in stream if ch.choices]
        assert len(parts) >= 2 and "".join(parts) == whole.choices[0].message.content
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- the page, in a browser
def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no chromium/chromedriver on this machine: apt-get install -y chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.mark.browser
def test_the_page_in_a_real_browser(served):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    srv, _, tmp, _ = served
    b = _browser()
    try:
        wait = WebDriverWait(b, 20, ignored_exceptions=[StaleElementReferenceException])  # tables are redrawn
        b.get(srv.url + "/")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#db option")) == 2)
        Select(b.find_element(By.ID, "db")).select_by_value("shop")
        b.find_element(By.ID, "question").send_keys("Customers per country?")
        b.find_element(By.ID, "ask-button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "answered"))
        assert "GROUP BY country" in b.find_element(By.ID, "sql").get_attribute("value")
        want = ["France", "1", "Germany", "2", "Spain", "1"]
        wait.until(lambda d: [td.text for td in d.find_elements(By.CSS_SELECTOR, "#result td")] == want)
        assert b.find_element(By.ID, "chart").is_displayed()  # a label column and a number column
        shot = Path(os.environ.get("SQLTUNE_SCREENSHOT", tmp / "serve_page.png"))
        b.save_screenshot(str(shot))
        # edit the SQL and run it again
        box = b.find_element(By.ID, "sql")
        box.clear()
        box.send_keys("SELECT name FROM customers WHERE country = 'Germany' ORDER BY name")
        b.find_element(By.ID, "run-button").click()
        wait.until(lambda d: [td.text for td in d.find_elements(By.CSS_SELECTOR, "#result td")] == ["Ann", "Cy"])
        # feedback: the edited SQL is the correction
        b.find_element(By.ID, "wrong-button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "feedback-status"), "training pair"))
        pair = json.loads((tmp / "logs" / "feedback.jsonl").read_text().splitlines()[-1])
        assert pair["verdict"] == "corrected" and "country = 'Germany'" in pair["sql"]
        # a stored XSS payload is shown as text, never run
        box = b.find_element(By.ID, "sql")
        box.clear()
        box.send_keys("SELECT body FROM notes")
        b.find_element(By.ID, "run-button").click()
        wait.until(lambda d: "<script>" in " ".join(td.text for td in d.find_elements(By.CSS_SELECTOR, "#result td")))
        assert b.execute_script("return window.pwned === undefined")
        assert not b.find_elements(By.CSS_SELECTOR, "#result b")
        # an abstention shows its reason
        q = b.find_element(By.ID, "question")
        q.clear()
        q.send_keys("Never works")
        b.find_element(By.ID, "ask-button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "abstain")))
        assert "I don't know" in b.find_element(By.ID, "abstain").text
        assert len(b.find_elements(By.CSS_SELECTOR, "#history li")) == 2
    finally:
        b.quit()


def test_chain_of_thought_answers_carry_their_reasoning(shop):
    cot = "First count the German customers.\n```sql\nSELECT count(*) FROM customers WHERE country = 'Germany'\n```"
    with Judge(workers=1) as judge:
        a = ask("q", Database(shop), ScriptedModel({"q": cot}), judge, AskConfig(cot=True))
    assert a.answered and a.rows == [[2]] and a.reasoning == "First count the German customers."


def test_rate_limit_and_cors(tmp_path, shop):
    app = _scripted_app(shop, tmp_path, rate_limit=3, cors="http://localhost:3000")
    srv = Server(app)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            origin = {"Origin": "http://localhost:3000"}
            codes = [c.get("/v1/databases", headers=origin) for _ in range(4)]
            assert [r.status_code for r in codes] == [200, 200, 200, 429]
            assert codes[0].headers["access-control-allow-origin"] == "http://localhost:3000"
            assert "rate limit" in codes[3].json()["error"]
    finally:
        srv.stop()


class SlowStreamingModel(ScriptedModel):
    """Streams its answer in three pieces, 0.4 s apart, as a backend that decodes token by token does."""

    def stream(self, messages, params):
        for piece in ("SELECT ", "COUNT(*) ", "FROM customers"):
            time.sleep(0.4)
            yield piece


def test_chat_streaming_sends_each_piece_as_it_is_generated(tmp_path, shop):
    app = create_app(
        SlowStreamingModel({}), "slow", [Database(shop)], AskConfig(), "ddl", ServeConfig(log_dir=str(tmp_path))
    )
    srv = Server(app)
    try:
        body = {"model": "slow", "messages": [{"role": "user", "content": "count"}], "stream": True}
        arrivals = []
        with httpx.Client(timeout=30) as c, c.stream("POST", srv.url + "/v1/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                    if delta:
                        arrivals.append((time.perf_counter(), delta))
    finally:
        srv.stop()
    assert "".join(d for _, d in arrivals) == "SELECT COUNT(*) FROM customers"
    assert arrivals[-1][0] - arrivals[0][0] > 0.6  # the first piece came while the rest was being generated
