"""The one OpenAI-compatible chat client: the ``openai`` backend, the CoT teacher and the synthesis teacher
all talk to servers (``vllm serve``, llama.cpp's server, OpenAI) through it, with one retry policy.

The policy: a request that fails for a reason that may pass — no connection, a timeout, 429, a 5xx, a body
that cannot be read — is asked again ``retries`` times, waiting ``backoff`` seconds and doubling; a 400
(the server refuses this request, e.g. a prompt over its context) is answered at once as ``refused``; any
other 4xx (a wrong key, an unknown model) stops at once with a :class:`ModelError` naming the server,
since every later request would fail alike. After the last retry the reply says ``unavailable``; the
caller decides whether that stops its run (the backend) or counts as a rejection (the teachers).

The API key is read here and never returned, logged or put in :meth:`ChatClient.info`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from sqltune.errors import ModelError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4
    """Requests asked again after a failure that may pass."""
    backoff: float = 0.5
    """Seconds before the first retry (doubling each time)."""
    timeout: float = 120.0
    """Seconds per request."""


@dataclass
class ChatReply:
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    status: str = "ok"
    """ok | refused (the server answered 400) | unavailable (no answer after the retries)."""
    error: str = ""


class ChatClient:
    """``complete(messages, …)`` → :class:`ChatReply`, under the module's retry policy."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        policy: RetryPolicy = RetryPolicy(),
    ):
        try:
            import openai
        except ImportError:
            raise ModelError(
                "talking to an OpenAI-compatible server needs the 'openai' package: pip install openai"
            ) from None
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.policy = policy
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            max_retries=0,
            timeout=policy.timeout,
        )

    def info(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "retries": self.policy.retries}

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float | None = None,
        seed: int | None = None,
        require_text: bool = False,
    ) -> ChatReply:
        """One answer. ``require_text``: an empty answer counts as a failure that may pass (a teacher's
        garbage), asked again under the policy; without it an empty answer is an answer (a model's)."""
        import openai

        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if top_p is not None:
            request["top_p"] = top_p
        if seed is not None:
            request["seed"] = seed
        last = ""
        for attempt in range(self.policy.retries + 1):
            try:
                r = self._client.chat.completions.create(**request)
                if not r.choices:
                    raise ValueError("the answer holds no choices")
                if require_text and not (r.choices[0].message.content or "").strip():
                    raise ValueError("the answer holds no text")
                usage = r.usage
                return ChatReply(
                    r.choices[0].message.content or "",
                    usage.prompt_tokens if usage else 0,
                    usage.completion_tokens if usage else 0,
                )
            except openai.BadRequestError as e:
                return ChatReply(status="refused", error=f"the server at {self.base_url} refused the request: {e}")
            except (
                openai.APIConnectionError,
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APIResponseValidationError,
                ValueError,
            ) as e:
                last = f"{type(e).__name__}: {e}"  # APITimeoutError is an APIConnectionError
            except openai.APIStatusError as e:
                raise ModelError(
                    f"the server at {self.base_url} answered {e.status_code} ({e.message}); check the model name "
                    "and the API key ($OPENAI_API_KEY)"
                ) from None
            if attempt < self.policy.retries:
                time.sleep(self.policy.backoff * 2**attempt)
        return ChatReply(
            status="unavailable",
            error=f"the server at {self.base_url} did not answer after {self.policy.retries + 1} attempts ({last})",
        )
