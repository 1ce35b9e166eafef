"""The one OpenAI-compatible client: its retry policy, against a real HTTP server on loopback."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sqltune.errors import ModelError
from sqltune.models.backend_config import make_backend
from sqltune.models.generation import GenParams
from sqltune.models.openai_client import ChatClient, RetryPolicy
from test_serve import Server


def _server(script: list[tuple[int, str]]) -> tuple[Server, list[int]]:
    """Answers the chat requests with ``script``'s (status, text) in turn (the last one repeats)."""
    app = FastAPI()
    app.state.close = lambda: None
    seen: list[int] = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):  # noqa: ANN202
        await request.json()
        status, text = script[min(len(seen), len(script) - 1)]
        seen.append(status)
        if status != 200:
            return JSONResponse({"error": {"message": f"status {status}", "type": "x"}}, status_code=status)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        return {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice], "usage": usage}

    return Server(app), seen


FAST = RetryPolicy(retries=2, backoff=0.01, timeout=5)
MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "script,status,calls",
    [
        ([(500, ""), (503, ""), (200, "SELECT 1")], "ok", 3),  # 5xx: asked again, then answered
        ([(429, ""), (200, "SELECT 1")], "ok", 2),  # rate limited: asked again
        ([(500, "")], "unavailable", 3),  # 1 + 2 retries, then given up
        ([(400, "")], "refused", 1),  # the server refuses this request: not asked again
        ([(200, "")], "ok", 1),  # an empty answer is a model's answer
    ],
)
def test_the_retry_policy(script, status, calls):
    srv, seen = _server(script)
    try:
        r = ChatClient("m", srv.url + "/v1", "sk-secret", FAST).complete(MSG, max_tokens=8, temperature=0)
    finally:
        srv.stop()
    assert (r.status, len(seen)) == (status, calls)
    assert "sk-secret" not in r.error
    if status == "ok":
        assert r.prompt_tokens == 3


def test_a_teacher_asks_again_after_an_empty_answer():
    srv, seen = _server([(200, " "), (200, "SELECT 1")])
    try:
        r = ChatClient("m", srv.url + "/v1", None, FAST).complete(MSG, max_tokens=8, temperature=0, require_text=True)
    finally:
        srv.stop()
    assert (r.status, r.text, len(seen)) == ("ok", "SELECT 1", 2)


def test_a_wrong_key_or_model_stops_at_once_naming_the_server():
    srv, seen = _server([(401, "")])
    try:
        with pytest.raises(ModelError, match=rf"{srv.url}/v1 answered 401.*API key"):
            ChatClient("m", srv.url + "/v1", "sk-secret", FAST).complete(MSG, max_tokens=8, temperature=0)
    finally:
        srv.stop()
    assert len(seen) == 1


def test_the_backend_stops_the_run_when_the_server_stays_down_and_reports_a_refusal_as_the_answers_error():
    srv, seen = _server([(400, "")])
    try:
        b = make_backend("openai", "m", base_url=srv.url + "/v1", retries=1)
        [[c]] = b.generate([MSG], GenParams(max_new_tokens=4))
    finally:
        srv.stop()
    assert c.status == "error" and "refused" in c.error
    srv, seen = _server([(502, "")])
    try:
        b = make_backend("openai", "m", base_url=srv.url + "/v1", retries=1)
        with pytest.raises(ModelError, match="did not answer after 2 attempts"):
            b.generate([MSG], GenParams(max_new_tokens=4))
    finally:
        srv.stop()
    assert len(seen) == 2
