"""A minimal OpenAI-compatible chat-completions server for any model sqltune loads.

``GET /v1/models`` and ``POST /v1/chat/completions`` (non-streaming), enough for the ``openai``
client, LangChain's ``ChatOpenAI`` and ``sqltune predict --backend openai``. Generation goes
through :class:`sqltune.models.backends.HFBackend`, so prompts are rendered by the model's
own chat template exactly as in ``sqltune predict --backend hf``. Requests are served one at a
time (a lock around the model).

Run it with ``sqltune serve-openai --model smollm2-135m --port 8000``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel

from sqltune.models.backends import GenParams, HFBackend


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


def create_app(backend: HFBackend, model_name: str) -> Any:
    from fastapi import FastAPI, HTTPException

    app = FastAPI(title="sqltune OpenAI-compatible server")
    lock = threading.Lock()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "sqltune"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        if not req.messages:
            raise HTTPException(status_code=400, detail="messages must not be empty")
        temperature = req.temperature or 0.0
        n = max(1, req.n or 1)
        seed = req.seed if req.seed is not None else int.from_bytes(os.urandom(4), "little")

        def params(i: int) -> GenParams:
            # one seed per choice: n samples at temperature > 0 are n draws, not one draw n times
            return GenParams(
                max_new_tokens=req.max_completion_tokens or req.max_tokens or 256,
                temperature=temperature,
                top_p=req.top_p or 1.0,
                num_samples=1,
                seed=seed + 7919 * i,
            )

        msgs = [m.model_dump() for m in req.messages]
        with lock:
            comps = [backend.generate([msgs], params(i))[0][0] for i in range(n)]
        if comps[0].status == "prompt_too_long":
            raise HTTPException(status_code=400, detail=comps[0].error)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": "stop"}
                for i, c in enumerate(comps)
            ],
            "usage": {
                "prompt_tokens": comps[0].prompt_tokens,
                "completion_tokens": sum(c.completion_tokens for c in comps),
                "total_tokens": comps[0].prompt_tokens + sum(c.completion_tokens for c in comps),
            },
        }

    return app
