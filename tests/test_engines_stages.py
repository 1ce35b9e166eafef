"""Every stage that runs SQL, on PostgreSQL, MariaDB and DuckDB: eval (the CLI), ask, the HTTP API's
/v1/sql and /v1/ask (a real uvicorn server, httpx), and MCP's run_sql (the SDK's client over stdio),
with the hostile statements through each, as a read-only role and as a write-capable role under
--allow-privileged-role. A planted password never appears in anything a run writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sqltune.db import roles
from sqltune.db.load import load_sqlite
from sqltune.serve.app import ServeConfig, create_app
from sqltune.serve.ask import AskConfig, Database
from test_db_engines import HOSTILE, _admin_run, _state
from test_serve import SCRIPT, ScriptedModel, Server, make_shop

PLANTED = "pw-planted-7f3a9c"


def _statements(engine: str) -> list[str]:
    """The single-call hostile statements (each alone is what a client can send in one request), on the shop's
    customers table."""
    return [
        e.replace("{file}", "/tmp/sqltune_evil_stage.out")
        .replace("products", "customers")
        .replace("price", "spent")
        .replace("VALUES (99, 'x', 1)", "VALUES (99, 'x', 'y', 1)")
        for e in HOSTILE[engine]
        if isinstance(e, str)
    ]


@pytest.fixture(params=["postgresql", "mysql", "duckdb"])
def engine_shop(request, tmp_path):
    """The serve tests' shop loaded into an engine; yields (engine, admin URL, reader URL, writer URL)."""
    engine = request.param
    src = make_shop(tmp_path / "shop.sqlite")
    if engine == "duckdb":
        url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
        load_sqlite(src, url)
        yield engine, url, url, url
        return
    admin = request.getfixturevalue("pg_db" if engine == "postgresql" else "mysql_db")
    load_sqlite(src, admin)
    tag = int(time.time() * 1000) % 10**8
    reader = roles.create_reader(admin, role=f"sqltune_t_r{tag}")
    writer = roles.create_reader(admin, role=f"sqltune_t_w{tag}", write=True)
    try:
        yield engine, admin, reader, writer
    finally:
        for r in (f"sqltune_t_r{tag}", f"sqltune_t_w{tag}"):
            if engine == "postgresql":
                _admin_run(admin, [f"DROP OWNED BY {r}"])
            roles.drop_reader(admin, role=r)


def _snapshot(engine: str, admin: str) -> object:
    if engine == "duckdb":
        return Path(admin.removeprefix("duckdb:///")).read_bytes()
    return _state(engine, admin)


@pytest.mark.parametrize("privileged", [False, True], ids=["reader", "writer-allowed"])
def test_http_api_on_engines(engine_shop, privileged, tmp_path):
    engine, admin, reader, writer = engine_shop
    url = writer if privileged else reader
    before = _snapshot(engine, admin)
    hostile = {f"hostile {i}": sql for i, sql in enumerate(_statements(engine))}
    app = create_app(
        ScriptedModel({**SCRIPT, **hostile}),
        "scripted",
        [Database(url, allow_privileged_role=privileged)],
        AskConfig(timeout=1.0, max_rows=50, allow_privileged_role=privileged),
        "compact",
        ServeConfig(log_dir=str(tmp_path / "logs"), judges=2, batch_wait=0.05),
    )
    srv = Server(app)
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            a = c.post("/v1/ask", json={"question": "How many customers are from Germany?"}).json()
            assert a["answered"] and a["rows"] == [[2]], a
            r = c.post("/v1/sql", json={"sql": "SELECT name FROM customers WHERE spent > 8 ORDER BY name"}).json()
            assert r["ok"] and r["rows"] == [["Ann"], ["Bob"]], r
            for sql in _statements(engine):
                r = c.post("/v1/sql", json={"sql": sql}).json()
                assert _snapshot(engine, admin) == before, f"{sql!r} changed the database"
            for question, sql in hostile.items():  # the same statements written by the model, through ask
                a = c.post("/v1/ask", json={"question": question}).json()
                assert _snapshot(engine, admin) == before, f"{sql!r} (asked) changed the database"
                assert "answered" in a
            t0 = time.monotonic()
            spin = {"postgresql": "SELECT pg_sleep(30)", "mysql": "SELECT SLEEP(30)"}.get(
                engine, "SELECT count(*) FROM range(100000000000)"
            )
            r = c.post("/v1/sql", json={"sql": spin}).json()
            assert not r["ok"] and r["error_type"] == "timeout" and time.monotonic() - t0 < 3, r
    finally:
        srv.stop()
    assert not Path("/tmp/sqltune_evil_stage.out").exists()
    assert _snapshot(engine, admin) == before


@pytest.mark.parametrize("privileged", [False, True], ids=["reader", "writer-allowed"])
def test_eval_cli_on_engines_keeps_passwords_out(engine_shop, tmp_path, privileged):
    """sqltune eval on a dataset whose records name the engine's URL, the hostile suite as predictions; with
    PGPASSWORD and MYSQL_PWD planted (trust authentication ignores them), no file the run writes holds the
    password."""
    engine, admin, reader, writer = engine_shop
    if privileged:
        reader = writer  # the write-capable role, run under --allow-privileged-role
    data = [
        {
            "id": "q1",
            "db_id": "shop",
            "db_path": reader,
            "question": "Germans?",
            "sql": "SELECT count(*) FROM customers WHERE country = 'Germany'",
        },
        {
            "id": "q2",
            "db_id": "shop",
            "db_path": reader,
            "question": "Names?",
            "sql": "SELECT name FROM customers ORDER BY id",
        },
        {"id": "q3", "db_id": "shop", "db_path": reader, "question": "Drop", "sql": "SELECT 1"},
    ]
    preds = [
        {"id": "q1", "pred_sql": "SELECT COUNT(*) FROM customers WHERE country = 'Germany'"},
        {"id": "q2", "pred_sql": "SELECT name FROM customers"},
        {"id": "q3", "pred_sql": "DROP TABLE customers"},
    ]
    for i, sql in enumerate(_statements(engine)):  # the hostile suite as predictions: scored, never run as writes
        data.append({"id": f"h{i}", "db_id": "shop", "db_path": reader, "question": "?", "sql": "SELECT 'gold'"})
        preds.append({"id": f"h{i}", "pred_sql": sql})
    before = _snapshot(engine, admin)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(x) + "\n" for x in data))
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in preds))
    out = tmp_path / "ev"
    env = {"PATH": "/usr/bin:/bin", "SQLTUNE_HOME": str(tmp_path / "home"), "PGPASSWORD": PLANTED, "MYSQL_PWD": ""}
    if engine == "mysql":
        env["MYSQL_PWD"] = ""  # root/readers have no password here; a wrong one would be refused
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqltune",
            "eval",
            "--dataset",
            str(tmp_path / "d.jsonl"),
            "--pred",
            str(tmp_path / "p.jsonl"),
            "--out",
            str(out),
            *(["--allow-privileged-role"] if privileged else []),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["n"] == len(data) and s["correct"] == 2, s
    res = {x["id"]: x for x in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert res["q3"]["error_type"] == "write_attempt"
    assert _snapshot(engine, admin) == before
    for f in [*out.rglob("*"), *(tmp_path / "home").rglob("*")]:
        if f.is_file():
            assert PLANTED.encode() not in f.read_bytes(), f
    assert PLANTED not in r.stdout + r.stderr


def test_a_password_in_the_url_is_refused_without_echo(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqltune",
            "ask",
            "hi",
            "--db",
            f"postgresql://alice:{PLANTED}@127.0.0.1/x",
            "--model",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "PGPASSWORD" in r.stderr and PLANTED not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("privileged", [False, True], ids=["reader", "writer-allowed"])
def test_mcp_run_sql_on_engines(engine_shop, tmp_path, tiny_model, privileged):
    pytest.importorskip("mcp")
    import anyio
    from mcp import Client, StdioServerParameters

    from test_mcp import _payload

    engine, admin, reader, writer = engine_shop
    before = _snapshot(engine, admin)
    url = writer if privileged else reader
    extra = ["--allow-privileged-role"] if privileged else []
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "sqltune",
            "mcp",
            "--db",
            url,
            "--model",
            str(tiny_model),
            "--max-new-tokens",
            "8",
            "--timeout",
            "1",
            *extra,
        ],
        env={"SQLTUNE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )

    async def session() -> dict:
        got: dict = {"hostile": []}
        async with Client(params, read_timeout_seconds=120) as c:
            got["describe"] = _payload(await c.call_tool("describe_table", {"table": "customers"}))
            got["sql"] = _payload(await c.call_tool("run_sql", {"sql": "SELECT COUNT(*) FROM customers"}))
            for sql in _statements(engine):
                got["hostile"].append(_payload(await c.call_tool("run_sql", {"sql": sql})))
        return got

    got = anyio.run(session)
    assert got["sql"]["ok"] and got["sql"]["rows"] == [[4]]
    assert [c["name"] for c in got["describe"]["columns"]] == ["id", "name", "country", "spent"]
    assert len(got["describe"]["sample"]["rows"]) == 3
    assert got["hostile"] and all(not h["ok"] or h["rows"] is not None for h in got["hostile"])
    assert _snapshot(engine, admin) == before


def test_data_build_for_an_engine(engine_shop, tmp_path):
    """data build --target: golds transpiled, run on the engine and kept only when they return the SQLite
    gold's result; records carry the engine's URL, dialect and prompt; the failures are named in the report."""
    from sqltune.data.build import BuildConfig, build

    engine, admin, reader, writer = engine_shop
    src = make_shop(tmp_path / "shop_src.sqlite")
    pairs = [
        {"question": "Germans?", "sql": 'SELECT count(*) FROM customers WHERE country = "Germany"', "db_id": "shop"},
        {"question": "Per country?", "sql": "SELECT Country, Name FROM Customers GROUP BY country ORDER BY country"},
        {"question": "Big spenders?", "sql": "SELECT name FROM customers WHERE spent > 8 ORDER BY spent DESC"},
        {"question": "A-names?", "sql": "SELECT name FROM customers WHERE name LIKE 'a%'"},  # SQLite: any case
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({**p, "db_path": str(src)}) + "\n" for p in pairs))
    target = reader  # one database; several are named by a template: postgresql://reader@host/spider_{db_id}
    out = tmp_path / "built.jsonl"
    report = build(
        BuildConfig(
            benchmark="pairs",
            data_dir=str(tmp_path / "pairs.jsonl"),
            split="",
            out=str(out),
            target=target,
            schema="compact",
        )
    )
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    qs = {r["question"]: r for r in recs}
    assert set(qs) == {"Germans?", "Per country?", "Big spenders?"}, report["failed_transpiled"]
    for r in recs:
        assert r["db_path"] == target and r["dialect"] == engine
        assert {"postgresql": "PostgreSQL", "mysql": "MySQL", "duckdb": "DuckDB"}[engine] in r["messages"][0]["content"]
        assert r["messages"][-1]["content"] == r["sql"]
    assert "'Germany'" in qs["Germans?"]["sql"] and "customers" in qs["Per country?"]["sql"]
    failed = report["failed_transpiled"]  # LIKE compares case on every engine but SQLite
    assert [f["reason"] for f in failed] == ["target_differs"] and "A-names" not in json.dumps(recs)


def test_data_synth_on_engines(engine_shop, tmp_path):
    """data synth --db URL: pairs written in the engine's dialect, each one run there by the judge."""
    from sqltune.data.synth import SynthConfig, synthesize
    from sqltune.db.engine import connect

    engine, admin, reader, writer = engine_shop
    out = tmp_path / "pairs.jsonl"
    r = synthesize(SynthConfig(db=[reader], out=str(out), n=25, seed=0))
    pairs = [json.loads(x) for x in out.read_text().splitlines()]
    assert r["written"] == len(pairs) >= 15, r
    ex = connect(reader)
    try:
        for p in pairs:
            assert p["db_path"] == reader
            res = ex.run(p["sql"])
            assert res.ok and res.rows, (p["sql"], res.error)
    finally:
        ex.close()
    if engine == "mysql":
        assert any("`customers`" in p["sql"] for p in pairs)  # MySQL's quoting: the dialect's own
    else:
        assert any('"customers"' in p["sql"] for p in pairs)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_quickstart_on_a_postgresql_database(request, tmp_path):
    """quickstart --db postgresql://…: the demo job end to end on a server database (slow: the real model)."""
    from test_quickstart import run_quickstart

    admin = request.getfixturevalue("pg_db")
    load_sqlite(make_shop(tmp_path / "shop.sqlite"), admin)
    tag = int(time.time() * 1000) % 10**8
    reader = roles.create_reader(admin, role=f"sqltune_t_r{tag}")
    try:
        out = tmp_path / "qs"
        r = run_quickstart(out, "--db", reader, "--pairs", "40", "--limit", "6", "max_steps=2", "logging_steps=1")
        s = json.loads((out / "summary.json").read_text())
        assert s["benchmark"] == "db" and s["databases"] == [reader]
        recs = [json.loads(x) for x in (out / "data" / "train.jsonl").read_text().splitlines()]
        assert recs and all(x["dialect"] == "postgresql" and x["db_path"] == reader for x in recs)
        assert "PostgreSQL" in recs[0]["messages"][0]["content"]
        assert f"--db {reader}" in " ".join(r.stdout.split())
    finally:
        _admin_run(admin, [f"DROP OWNED BY sqltune_t_r{tag}"])
        roles.drop_reader(admin, role=f"sqltune_t_r{tag}")


def test_langchain_chain_on_a_sqldatabase_over_postgresql(request, tmp_path):
    """LangChain's SQLDatabase.from_uri on PostgreSQL (psycopg 3): the chain answers there, read-only."""
    pytest.importorskip("langchain_community")
    from langchain_community.utilities import SQLDatabase

    from sqltune.serve.langchain import SqltuneChatModel, sql_chain

    admin = request.getfixturevalue("pg_db")
    load_sqlite(make_shop(tmp_path / "shop.sqlite"), admin)
    tag = int(time.time() * 1000) % 10**8
    reader = roles.create_reader(admin, role=f"sqltune_t_r{tag}")
    try:
        before = _snapshot("postgresql", admin)
        llm = SqltuneChatModel.from_backend(ScriptedModel(SCRIPT))
        db = SQLDatabase.from_uri(reader.replace("postgresql://", "postgresql+psycopg://"))
        chain = sql_chain(llm, db, AskConfig(repairs=0))
        a = chain.invoke("How many customers are from Germany?")
        assert a["answered"] and a["rows"] == [[2]], a
        d = chain.invoke("Drop it")
        assert not d["answered"] and d["attempts"][0]["error_type"] == "write_attempt", d
        assert _snapshot("postgresql", admin) == before
        db._engine.dispose()
    finally:
        _admin_run(admin, [f"DROP OWNED BY sqltune_t_r{tag}"])
        roles.drop_reader(admin, role=f"sqltune_t_r{tag}")


def test_the_value_index_and_schema_linking_on_engines(engine_shop, tmp_path, monkeypatch):
    """The value index reads through the engine's read-only executor, as the reader role; its values find
    their columns on every engine, in another case or with a typo."""
    from sqltune import prompts
    from sqltune.db.schema import introspect
    from sqltune.linking.link import LinkSettings
    from sqltune.linking.values import ValueIndex

    monkeypatch.setenv("SQLTUNE_HOME", str(tmp_path / "home"))
    engine, _, reader, _ = engine_shop
    index = ValueIndex.open(reader)
    assert index.info["values"] >= 3 and not index.info["partial"]
    hits = {(h.table, h.column, h.value) for h in index.lookup("customers from GERMANY")}
    assert ("customers", "country", "Germany") in hits
    assert ("customers", "country", "Germany") in {(h.table, h.column, h.value) for h in index.lookup("gremany")}
    assert ValueIndex.open(reader).path == index.path  # the same database version: the same index
    schema = introspect(reader)
    text, linked = prompts.question_schema(
        schema, "names of customers from germany", "", "compact", LinkSettings("top-k", 2, values=True), index
    )
    assert {("customers", "name"), ("customers", "country")} <= linked.kept() and "notes" not in linked.kept_tables()
    assert "customers.country has values such as: 'Germany'" in text
