"""An OpenAI-compatible chat-completions API for any model sqltune loads.

``GET /v1/models`` and ``POST /v1/chat/completions``, non-streaming and streaming (server-sent
events, as the ``openai`` client and LangChain's ``ChatOpenAI`` use them), enough for those
clients and ``sqltune predict --backend openai``. Generation goes through the served backend
(hf, llamacpp, ...), so prompts are rendered by the model's own chat template exactly as in
``sqltune predict``; requests take turns on the model (a lock). A streamed request (``n`` = 1)
is sent token by token as the backend decodes it (hf: transformers' ``TextIteratorStreamer``;
llamacpp: llama.cpp's own stream); a backend without streaming sends its whole answer in pieces. ``sqltune serve`` mounts these routes beside its ask API; ``sqltune serve-openai`` serves
them alone.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel

from sqltune.models.backends import GenParams


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[Message]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = 0.0
    top_p: float | None = 1.0
    n: int | None = 1
    seed: int | None = None
    stream: bool | None = False


def add_openai_routes(app: Any, backend: Any, model_name: str, lock: threading.Lock | None = None) -> None:
    """Mount ``/v1/models`` and ``/v1/chat/completions`` on a FastAPI app."""
    from fastapi import HTTPException
    from fastapi.responses import StreamingResponse

    lock = lock or threading.Lock()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "sqltune"}]}

    @app.post("/v1/chat/completions", response_model=None)
    def chat(req: ChatRequest) -> Any:
        if not req.messages:
            raise HTTPException(status_code=400, detail="messages must not be empty")
        temperature = req.temperature or 0.0
        n = max(1, req.n or 1)
        if n > 16:
            raise HTTPException(status_code=400, detail="n must be at most 16")
        seed = req.seed if req.seed is not None else int.from_bytes(os.urandom(4), "little")

        def params(i: int) -> GenParams:
            # one seed per choice: n samples at temperature > 0 are n draws, not one draw n times
            return GenParams(
                max_new_tokens=min(req.max_completion_tokens or req.max_tokens or 256, 2048),
                temperature=temperature,
                top_p=req.top_p or 1.0,
                num_samples=1,
                seed=seed + 7919 * i,
            )

        msgs = [m.model_dump() for m in req.messages]
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

        def chunk(i: int, delta: dict[str, Any], finish: str | None) -> str:
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_name,
                "choices": [{"index": i, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(body)}\n\n"

        if req.stream and n == 1 and hasattr(backend, "stream"):
            # token by token, as the backend decodes: the first words reach the client while the rest is generated
            def live() -> Any:
                yield chunk(0, {"role": "assistant", "content": ""}, None)
                with lock:
                    for piece in backend.stream(msgs, params(0)):
                        yield chunk(0, {"content": piece}, None)
                yield chunk(0, {}, "stop")
                yield "data: [DONE]\n\n"

            return StreamingResponse(live(), media_type="text/event-stream")
        with lock:
            comps = [backend.generate([msgs], params(i))[0][0] for i in range(n)]
        if comps[0].status == "prompt_too_long":
            raise HTTPException(status_code=400, detail=comps[0].error)
        usage = {
            "prompt_tokens": comps[0].prompt_tokens,
            "completion_tokens": sum(c.completion_tokens for c in comps),
            "total_tokens": comps[0].prompt_tokens + sum(c.completion_tokens for c in comps),
        }
        if req.stream:

            def events() -> Any:  # n > 1, or a backend without token streaming: whole answers, then in pieces
                for i, c in enumerate(comps):
                    yield chunk(i, {"role": "assistant", "content": ""}, None)
                    # the text in word-sized pieces, as a streaming client expects several deltas
                    pieces = c.text.split(" ")
                    for k, piece in enumerate(pieces):
                        yield chunk(i, {"content": piece + (" " if k < len(pieces) - 1 else "")}, None)
                    yield chunk(i, {}, "stop")
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": "stop"}
                for i, c in enumerate(comps)
            ],
            "usage": usage,
        }


def create_app(backend: Any, model_name: str) -> Any:
    """The OpenAI-compatible routes alone (``sqltune serve-openai``)."""
    from fastapi import FastAPI

    app = FastAPI(title="sqltune OpenAI-compatible server")
    add_openai_routes(app, backend, model_name)
    return app
