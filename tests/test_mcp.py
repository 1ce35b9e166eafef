"""sqltune mcp: the official MCP SDK's client spawns 'sqltune mcp' over stdio and calls the four tools."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

pytest.importorskip("mcp")

import anyio  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402

from test_serve import make_shop  # noqa: E402


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _payload(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def test_four_read_only_tools_over_stdio(tmp_path, tiny_model):
    shop = make_shop(tmp_path / "shop.sqlite")
    before = sha(shop)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sqltune", "mcp", "--db", str(shop), "--model", str(tiny_model), "--max-new-tokens", "8"],
        env={"SQLTUNE_HOME": str(tmp_path / "home")},
    )

    async def session() -> dict:
        got: dict = {}
        async with Client(params, read_timeout_seconds=120) as c:
            tools = (await c.list_tools()).tools
            got["tools"] = {t.name: t for t in tools}
            got["list"] = _payload(await c.call_tool("list_tables", {}))
            got["describe"] = _payload(await c.call_tool("describe_table", {"table": "customers"}))
            got["sql"] = _payload(await c.call_tool("run_sql", {"sql": "SELECT COUNT(*) FROM customers"}))
            got["write"] = _payload(await c.call_tool("run_sql", {"sql": "DELETE FROM customers"}))
            got["sneaky"] = _payload(
                await c.call_tool("run_sql", {"sql": "WITH x AS (SELECT 1) DELETE FROM customers"})
            )
            got["pragma"] = _payload(await c.call_tool("run_sql", {"sql": "PRAGMA journal_mode = DELETE"}))
            got["missing"] = await c.call_tool("describe_table", {"table": "nope"})
            got["ask"] = _payload(await c.call_tool("ask", {"question": "How many customers are there?"}))
        return got

    got = anyio.run(session)
    assert set(got["tools"]) == {"list_tables", "describe_table", "ask", "run_sql"}
    for t in got["tools"].values():
        assert t.annotations.read_only_hint is True and t.annotations.destructive_hint is False
    assert got["list"]["tables"][0] == {"name": "customers", "columns": ["id", "name", "country", "spent"]}
    d = got["describe"]
    assert d["columns"][0] == {"name": "id", "type": "INTEGER", "primary_key": True}
    assert d["ddl"].startswith("CREATE TABLE customers") and len(d["sample"]["rows"]) == 3
    assert got["sql"]["ok"] and got["sql"]["rows"] == [[4]]
    for k in ("write", "sneaky", "pragma"):
        assert not got[k]["ok"] and got[k]["error_type"] == "write_attempt", got[k]
    assert got["missing"].is_error and "no table 'nope'" in got["missing"].content[0].text
    a = got["ask"]  # the real tiny model: an answer or an honest "I don't know", with its attempts
    assert a["question"] == "How many customers are there?" and a["attempts"]
    assert a["answered"] or a["abstain_reason"]
    assert sha(shop) == before  # byte-identical after every write attempt


def test_streamable_http_transport(tmp_path, tiny_model):
    import socket
    import subprocess
    import time

    import httpx

    shop = make_shop(tmp_path / "shop.sqlite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "sqltune", "mcp", "--db", str(shop), "--model", str(tiny_model)]
    cmd += ["--transport", "streamable-http", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)

        async def session() -> dict:
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                names = {t.name for t in (await c.list_tools()).tools}
                r = _payload(await c.call_tool("run_sql", {"sql": "SELECT name FROM customers ORDER BY id LIMIT 2"}))
                w = _payload(await c.call_tool("run_sql", {"sql": "DROP TABLE customers"}))
            return {"names": names, "r": r, "w": w}

        got = anyio.run(session)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert got["names"] == {"list_tables", "describe_table", "ask", "run_sql"}
    assert got["r"]["rows"] == [["Ann"], ["Bob"]]
    assert not got["w"]["ok"] and got["w"]["error_type"] == "write_attempt"
