"""One description of how to run a model, for every command that runs one: :class:`BackendConfig`.

``predict``'s config extends it; ``ask``, ``serve`` and ``mcp`` take it as options; ``serve-openai``,
the LangChain chat model, export's checks and the benchmarks build one. Each setting belongs to the
backends it names in :data:`APPLIES`; left unset (None) it takes that backend's default (:data:`DEFAULTS`),
and set for a backend it does not apply to it is an error naming both — never silently dropped.
:func:`open_backend` is the one place a backend object is made from settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sqltune.errors import ConfigError
from sqltune.models.generation import BACKENDS, LLAMACPP_SLOTS, Backend

APPLIES: dict[str, tuple[str, ...]] = {
    "device": ("hf",),
    "precision": ("hf", "vllm"),
    "load_in_4bit": ("hf",),
    "batch_size": ("hf",),
    "static_cache": ("hf",),
    "shared_prefix": ("hf",),
    "base_url": ("openai",),
    "openai_api_key": ("openai",),
    "concurrency": ("openai",),
    "retries": ("openai",),
    "request_timeout": ("openai",),
    "slots": ("llamacpp",),
    "threads": ("llamacpp",),
    "context": ("llamacpp",),
    "grammar": ("llamacpp",),
}
"""The backends each setting applies to."""

DEFAULTS: dict[str, Any] = {
    "device": "auto",
    "precision": "auto",
    "load_in_4bit": False,
    "batch_size": 16,
    "static_cache": True,
    "shared_prefix": True,
    "concurrency": 8,
    "retries": 4,
    "request_timeout": 120.0,
    "slots": LLAMACPP_SLOTS,
    "context": 2048,
}
"""What an unset setting means for the backends it applies to."""

_KWARG = {"request_timeout": "timeout"}
"""Settings whose backend argument has another name."""


@dataclass(frozen=True, kw_only=True)
class BackendConfig:
    """How to run a model (each is also a ``--option``; unset settings take the backend's default)."""

    model: str = "smollm2-135m"
    """Registry name, model folder, .gguf file, hub id, a 'sqltune train' run, or the server's model name (openai)."""
    backend: str = "hf"
    """hf (transformers) | openai (any OpenAI-compatible server) | vllm | llamacpp (a .gguf, in-process on CPU)."""
    device: str | None = None
    """hf: auto | cpu | cuda | cuda:N | mps (default auto)."""
    precision: str | None = None
    """hf, vllm: auto (bf16 where the hardware computes it natively, fp16 on older GPUs and MPS, else fp32) | bf16 |
    fp16 | fp32 (default auto)."""
    load_in_4bit: bool | None = None
    """hf: NF4 weights via bitsandbytes (CUDA only)."""
    batch_size: int | None = None
    """hf: prompts decoded together in one generate call (default 16; a server gathers this many)."""
    static_cache: bool | None = None
    """hf: static KV cache (default on)."""
    shared_prefix: bool | None = None
    """hf: batch prompts by their common prefix (system prompt and schema) and compute it once per batch (default
    on)."""
    base_url: str | None = None
    """openai: server URL, e.g. http://localhost:8000/v1 (default $OPENAI_BASE_URL)."""
    openai_api_key: str | None = field(default=None, repr=False)
    """openai: the server's API key (default $OPENAI_API_KEY); never written to a manifest or log."""
    concurrency: int | None = None
    """openai: requests in flight (default 8)."""
    retries: int | None = None
    """openai: retries of a request that failed for a reason that may pass, with exponential backoff (default 4)."""
    request_timeout: float | None = None
    """openai: seconds per request (default 120)."""
    slots: int | None = None
    """llamacpp: sequences decoded together, each keeping its last prompt's KV cache (default 8)."""
    threads: int | None = None
    """llamacpp: CPU threads (default: the physical cores)."""
    context: int | None = None
    """llamacpp: tokens per slot, prompt and answer (default 2048)."""
    grammar: str | None = None
    """llamacpp: 'sql' forces one SELECT/WITH statement per answer, or a GBNF grammar's text."""

    def backend_problems(self) -> list[str]:
        """What is wrong with the backend settings (empty when nothing is)."""
        if self.backend not in BACKENDS:
            return [f"backend={self.backend!r}: choose one of {', '.join(BACKENDS)}"]
        problems = []
        for name, backends in APPLIES.items():
            if getattr(self, name) is not None and self.backend not in backends:
                flag = "--" + name.replace("_", "-")
                problems.append(
                    f"{flag} ({name}) applies to the {' and '.join(backends)} backend{'s' if len(backends) > 1 else ''}, "
                    f"not to --backend {self.backend}; drop it"
                )
        s = self.backend_settings()
        for name in ("batch_size", "concurrency", "slots", "threads"):
            if name in s and s[name] is not None and s[name] < 1:
                problems.append(f"{name}={s[name]}: must be at least 1")
        if s.get("retries") is not None and s["retries"] < 0:
            problems.append(f"retries={s['retries']}: must be 0 or more")
        if s.get("context") is not None and s["context"] < 64:
            problems.append(f"context={s['context']}: must be at least 64")
        if "precision" in s:
            from sqltune.models.load import normalize_precision

            try:
                normalize_precision(s["precision"])
            except ConfigError as e:
                problems.append(f"precision: {e}")
        return problems

    def validate(self) -> None:
        self.validate_backend()

    def validate_backend(self) -> None:
        problems = self.backend_problems()
        if problems:
            raise ConfigError("invalid model settings: " + "; ".join(problems))

    def backend_settings(self) -> dict[str, Any]:
        """The settings of the chosen backend, defaults filled in (the API key left out)."""
        out = {}
        for name, backends in APPLIES.items():
            if self.backend in backends and name != "openai_api_key":
                v = getattr(self, name)
                out[name] = DEFAULTS.get(name) if v is None else v
        return out

    def backend_only(self) -> BackendConfig:
        """This config's model settings alone (a stage config that extends this class carries more)."""
        names = {f.name for f in dataclasses.fields(BackendConfig)}
        return BackendConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


def backend_config(backend: str = "hf", model: str = "smollm2-135m", **settings: Any) -> BackendConfig:
    """A validated :class:`BackendConfig` (unknown setting names are errors too)."""
    names = {f.name for f in dataclasses.fields(BackendConfig)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ConfigError(f"unknown model settings: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    cfg = BackendConfig(backend=backend, model=model, **settings)
    cfg.validate_backend()
    return cfg


def open_backend(cfg: BackendConfig, model: str | None = None, **objects: Any) -> Backend:
    """The backend ``cfg`` describes, loaded. ``model``: where to load from when it differs from ``cfg.model``
    (a run's resolved model folder); ``objects``: an already loaded ``model_obj``/``tokenizer`` (hf)."""
    cfg.validate_backend()
    where = model or cfg.model
    kwargs = {_KWARG.get(k, k): v for k, v in cfg.backend_settings().items() if v is not None}
    if cfg.backend == "hf":
        from sqltune.models.backends import HFBackend

        return HFBackend(where, **kwargs, **objects)
    if cfg.backend == "openai":
        from sqltune.models.backends import OpenAIBackend

        return OpenAIBackend(where, api_key=cfg.openai_api_key, **kwargs)
    if cfg.backend == "vllm":
        from sqltune.models.backends import VLLMBackend

        return VLLMBackend(where, **kwargs)
    from sqltune.models.llamacpp import LlamaCppBackend

    return LlamaCppBackend(where, **kwargs)


def make_backend(name: str, model: str, **settings: Any) -> Backend:
    """``open_backend(backend_config(name, model, **settings))``: for scripts and tests."""
    return open_backend(backend_config(name, model, **settings))
