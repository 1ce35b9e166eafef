"""LangChain: real langchain-core / langchain-community / langchain-classic / langchain-openai objects
against real SQLite files, in-process and through ChatOpenAI against a loopback 'sqltune serve'.

The model is the scripted backend of test_serve (what is under test is the wiring, the parser,
the read-only execution and the "I don't know" path); one test loads the real tiny model."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_community")

from langchain_community.utilities import SQLDatabase  # noqa: E402

from sqltune.models.backends import Completion  # noqa: E402
from sqltune.serve.app import ServeConfig, create_app  # noqa: E402
from sqltune.serve.ask import AskConfig, Database  # noqa: E402
from sqltune.serve.langchain import (  # noqa: E402
    SQLOutputParser,
    SqltuneChatModel,
    ask_database_tool,
    sql_chain,
)
from test_serve import ScriptedModel, Server, make_shop  # noqa: E402

SCRIPT = {
    "How many customers are from Germany?": "SELECT COUNT(*) FROM customers WHERE country = 'Germany'",
    "Who spent the most?": "```sql\nSELECT name FROM customers ORDER BY spent DESC LIMIT 1\n```",
    # first a wrong column, then (the repair, which sees the engine's error) the right one
    "What is the total spent?": ["SELECT SUM(amount) FROM customers", "SELECT SUM(spent) FROM customers"],
    "Delete everything": "WITH x AS (SELECT 1) DELETE FROM customers",
    "What is the meaning of life?": "SELECT meaning FROM life",
}


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def shop(tmp_path):
    return make_shop(tmp_path / "shop.sqlite")


def test_output_parser_strips_fences_prefixes_and_prose():
    p = SQLOutputParser()
    assert p.parse("SQLQuery: SELECT 1") == "SELECT 1"
    assert p.parse('SQLQuery: "SELECT name FROM t"') == "SELECT name FROM t"
    assert p.parse("Here you go:\n```sql\nSELECT a FROM b;\n```\nHope it helps") == "SELECT a FROM b"
    assert p.parse("The query is SELECT 2") == "SELECT 2"
    assert p.parse("I cannot answer that.") == ""


def _check_chain_answers(chain, shop):
    before = sha(shop)
    a = chain.invoke("How many customers are from Germany?")
    assert a["answered"] and a["rows"] == [[2]] and a["answer"] == "2"
    b = chain.invoke({"question": "Who spent the most?"})
    assert b["sql"].startswith("SELECT name") and b["answer"] == "Bob"
    c = chain.invoke("What is the total spent?")  # an error, repaired with the error message
    assert c["answered"] and c["rows"] == [[40.75]] and len(c["attempts"]) == 2
    assert "no such column: amount" in c["attempts"][0]["error"]
    d = chain.invoke("What is the meaning of life?")  # nothing runs: an honest "I don't know"
    assert not d["answered"] and d["answer"].startswith("I don't know: ") and d["rows"] == []
    e = chain.invoke("Delete everything")  # the engine refuses the write; the file is untouched
    assert not e["answered"] and e["attempts"][0]["error_type"] == "write_attempt"
    assert sha(shop) == before


def test_the_chain_in_process_on_a_sqldatabase(shop):
    llm = SqltuneChatModel.from_backend(ScriptedModel(SCRIPT))
    db = SQLDatabase.from_uri(f"sqlite:///{shop}")
    _check_chain_answers(sql_chain(llm, db, AskConfig(repairs=1)), shop)


def test_the_chain_with_chatopenai_against_sqltune_serve(shop, tmp_path):
    from langchain_openai import ChatOpenAI

    app = create_app(
        ScriptedModel(SCRIPT), "scripted", [Database(shop)], AskConfig(), "ddl", ServeConfig(log_dir=str(tmp_path))
    )
    srv = Server(app)
    try:
        llm = ChatOpenAI(base_url=srv.url + "/v1", api_key="unused", model="scripted", temperature=0, max_retries=0)
        db = SQLDatabase.from_uri(f"sqlite:///{shop}")
        _check_chain_answers(sql_chain(llm, db, AskConfig(repairs=1)), shop)
        # the article's last step: the result phrased by an LLM, here the same served model
        chain = sql_chain(llm, db, answer_llm=llm)
        assert chain.invoke("How many customers are from Germany?")["answer"] == "I am not sure."
    finally:
        srv.stop()


def test_chat_model_works_where_langchain_expects_one(shop):
    from langchain_classic.chains import create_sql_query_chain

    class Fenced:
        name = "fenced"

        def info(self):
            return {"backend": "fenced", "model": "fenced"}

        def generate(self, prompts, params):
            text = "SQLQuery: ```sql\nSELECT COUNT(*) FROM customers\n```\nSQLResult: 4"
            return [[Completion(text, 50, 9)] for _ in prompts]

    llm = SqltuneChatModel.from_backend(Fenced())
    reply = llm.invoke([("system", "You write SQL."), ("human", "How many customers?")], stop=["\nSQLResult:"])
    assert reply.content == "SQLQuery: ```sql\nSELECT COUNT(*) FROM customers\n```"
    assert reply.usage_metadata["input_tokens"] == 50
    assert [m.content for m in llm.batch(["a", "b"])] == [reply.content + "\nSQLResult: 4"] * 2
    db = SQLDatabase.from_uri(f"sqlite:///{shop}")
    chain = create_sql_query_chain(llm, db) | SQLOutputParser()
    sql = chain.invoke({"question": "How many customers are there?"})
    assert sql == "SELECT COUNT(*) FROM customers" and db.run(sql) == "[(4,)]"


def test_ask_database_tool(shop):
    tool = ask_database_tool(SqltuneChatModel.from_backend(ScriptedModel(SCRIPT)), str(shop))
    assert tool.name == "ask_database" and "customers" in tool.description
    r = tool.invoke({"question": "How many customers are from Germany?"})
    assert r["answered"] and r["rows"] == [[2]] and r["sql"].startswith("SELECT COUNT(*)")
    before = sha(shop)
    w = tool.invoke({"question": "Delete everything"})
    assert not w["answered"] and sha(shop) == before


def test_the_real_tiny_model_in_process(tiny_model, school_db):
    llm = SqltuneChatModel(model=str(tiny_model), max_new_tokens=6, backend_options={"precision": "fp32"})
    reply = llm.invoke("how many teacher are there")
    assert isinstance(reply.content, str) and 0 < reply.usage_metadata["output_tokens"] <= 6
    out = sql_chain(llm, str(school_db), AskConfig(max_new_tokens=6, repairs=0)).invoke("how many teacher are there")
    assert out["answered"] or out["answer"].startswith("I don't know: ")
    assert len(out["attempts"]) >= 1 and out["timings"]["total_s"] > 0
