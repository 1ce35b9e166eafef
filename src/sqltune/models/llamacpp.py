"""The ``llamacpp`` backend: a ``.gguf`` model run in-process on llama.cpp, on CPU, from a prebuilt wheel.

It uses ``xllamacpp`` (``pip install 'sqltune[llamacpp]'``): llama.cpp's own server compiled
into a Python extension, with continuous batching over ``slots`` parallel sequences and the
GIL released while it works. Every prompt (and every extra sample) is one request; ``slots``
requests run at once and llama.cpp batches their tokens together. The chat template is the
one stored in the GGUF (``sqltune export gguf`` checks that it renders sqltune's prompts
exactly as the Hugging Face tokenizer does).

``grammar="sql"`` constrains decoding so that the answer is a single ``SELECT``/``WITH``
statement (a GBNF grammar); any other GBNF text is passed through as is.

The embedded server also listens on a loopback port (``base_url``), so llama.cpp's own HTTP
endpoints (``/tokenize``, ``/apply-template``, ``/v1/chat/completions``) are there too; the
``openai`` backend keeps working against an external ``llama-server`` as before.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from sqltune.errors import ConfigError, ModelError
from sqltune.models.generation import LLAMACPP_SLOTS, Completion, GenParams, generate_per_request

SQL_GRAMMAR = r"""root ::= ("SELECT" | "select" | "WITH" | "with") [^;]* ";"?"""
"""An answer that is one SELECT or WITH statement (what sqltune's prompts ask for)."""


def physical_cores() -> int:
    """Physical CPU cores (hyper-threads share one core's arithmetic units: llama.cpp runs best on cores)."""
    try:
        seen = set()
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                phys = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not line.strip():
                if core is not None:
                    seen.add((phys, core))
                phys = core = None
        if core is not None:
            seen.add((phys, core))
        if seen:
            return len(seen)
    except OSError:
        pass
    return max(1, (os.cpu_count() or 2) // 2)


def _xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise ModelError(
            "the llamacpp backend needs xllamacpp (prebuilt llama.cpp wheels): pip install 'sqltune[llamacpp]'"
        ) from None
    return xllamacpp


def cpu_features(xl: Any) -> str:
    """The instruction sets this llama.cpp build uses (``AVX2 FMA ...``): a prebuilt wheel may lack the CPU's best."""
    try:
        info = xl.get_system_info()
    except AttributeError:  # an older wheel without it
        return "?"
    return " ".join(re.findall(r"(\w+) = 1", info))


def gguf_path(model: str) -> str:
    """The ``.gguf`` file for a path: the file itself, or the one ``.gguf`` in a folder."""
    p = Path(model)
    if p.is_file() and p.suffix == ".gguf":
        return str(p)
    if p.is_dir():
        found = sorted(p.glob("*.gguf"))
        if len(found) == 1:
            return str(found[0])
        if len(found) > 1:
            names = ", ".join(f.name for f in found)
            raise ConfigError(f"{p} has several .gguf files ({names}); pass the one to load")
    raise ConfigError(
        f"{model}: the llamacpp backend loads a .gguf file; make one with "
        f"'sqltune export gguf RUN_OR_MODEL --out model.gguf', or use --backend hf for a model folder"
    )


class LlamaCppBackend:
    """In-process llama.cpp: ``slots`` sequences decoded together, ``threads`` physical cores."""

    name = "llamacpp"
    continuous = True
    """llama.cpp batches requests from any number of threads over its slots as they free."""

    def __init__(
        self,
        model: str,
        slots: int = LLAMACPP_SLOTS,
        threads: int | None = None,
        context: int = 2048,
        grammar: str | None = None,
        verbose: bool = False,
    ):
        xl = _xllamacpp()
        self.model_name = model
        self.where = gguf_path(model)
        if slots < 1 or context < 64:
            raise ConfigError(f"llamacpp: slots={slots} must be >= 1 and context={context} >= 64")
        self.slots = slots
        self.parallel = slots
        self.threads = threads or physical_cores()
        self.context = context
        self.grammar = SQL_GRAMMAR if grammar == "sql" else grammar
        params = xl.CommonParams()
        params.model.path = self.where
        params.n_parallel = slots
        params.n_ctx = context * slots  # llama.cpp shares the context among the slots
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.port = 0  # any free loopback port: the in-process calls do not need it
        params.warmup = False
        params.cache_ram_mib = 0  # no host-side prompt cache: a batch of distinct prompts gains nothing
        params.use_jinja = True
        params.verbosity = 1 if verbose else -1
        t0 = time.perf_counter()
        try:
            self.server = xl.Server(params)
        except Exception as e:  # llama.cpp says why in its own words
            raise ModelError(f"{self.where}: llama.cpp could not load it ({e})") from None
        self.load_seconds = time.perf_counter() - t0
        self.version = getattr(xl, "__version__", "?")
        self.cpu_features = cpu_features(xl)
        self.base_url = self.server.listening_address

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "path": self.where,
            "threads": self.threads,
            "slots": self.slots,
            "context_per_slot": self.context,
            "grammar": "sql" if self.grammar == SQL_GRAMMAR else bool(self.grammar),
            "xllamacpp": self.version,
            "cpu_features": self.cpu_features,
        }

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """One chat-completions request, answered by llama.cpp (a dict, as the OpenAI API's)."""
        answer: dict[str, Any] = self.server.handle_chat_completions(request)
        return answer

    def _request(
        self, messages: list[dict[str, str]], temperature: float, params: GenParams, seed: int
    ) -> dict[str, Any]:
        req: dict[str, Any] = {
            "messages": messages,
            "max_tokens": params.max_new_tokens,
            "temperature": temperature,
            "top_p": params.top_p,
            "top_k": params.top_k if temperature > 0 else 1,  # top_k 1: greedy
            "seed": seed,
        }
        if self.grammar:
            req["grammar"] = self.grammar
        return req

    def stream(self, messages: list[dict[str, str]], params: GenParams) -> Any:
        """One prompt's answer as llama.cpp decodes it: an iterator of text pieces, token by token."""
        import queue
        import threading

        pieces: queue.Queue[Any] = queue.Queue()
        done = object()
        req = {**self._request(messages, params.temperature, params, params.seed), "stream": True}

        def on_chunk(chunk: Any) -> bool:
            if isinstance(chunk, dict):
                for c in chunk.get("choices") or []:
                    text = (c.get("delta") or {}).get("content")
                    if text:
                        pieces.put(text)
                if "error" in chunk:
                    pieces.put(ModelError(f"llama.cpp: {chunk['error']}"))
            return False  # False: keep streaming

        def run() -> None:
            try:
                self.server.handle_chat_completions(req, on_chunk)
            finally:
                pieces.put(done)

        threading.Thread(target=run, daemon=True).start()
        while (item := pieces.get()) is not done:
            if isinstance(item, Exception):
                raise item
            yield item

    def _one(self, messages: list[dict[str, str]], temperature: float, params: GenParams, seed: int) -> Completion:
        r = self.chat(self._request(messages, temperature, params, seed))
        if "choices" not in r:
            err = r.get("error", r)
            msg = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            status = "prompt_too_long" if "context" in msg.lower() or "exceed" in msg.lower() else "error"
            if status == "prompt_too_long":
                msg = (
                    f"{msg} (each slot holds {self.context} tokens: raise --context, or use a shorter schema style "
                    "(--schema compact), or lower --max-new-tokens)"
                )
            return Completion("", 0, 0, status, msg)
        usage = r.get("usage") or {}
        return Completion(
            r["choices"][0]["message"].get("content") or "",
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )

    def generate(self, prompts: list[list[dict[str, str]]], params: GenParams) -> list[list[Completion]]:
        return generate_per_request(self._one, prompts, params, self.slots)

    def close(self) -> None:
        self.server = None
