"""Models: the registry of named offline models (:mod:`.registry`) and the one loader (:mod:`.load`)."""

from sqltune.models.load import (
    PRECISIONS,
    TokenCounter,
    cpu_supports_bf16,
    encode_prompt,
    load_causal_lm,
    load_tokenizer,
    pick_device,
    pick_precision,
)
from sqltune.models.registry import (
    DEFAULT_MODEL,
    REGISTRY,
    cache_dir,
    is_pulled,
    list_models,
    model_dir,
    pull_model,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "PRECISIONS",
    "REGISTRY",
    "TokenCounter",
    "cache_dir",
    "cpu_supports_bf16",
    "encode_prompt",
    "is_pulled",
    "list_models",
    "load_causal_lm",
    "load_tokenizer",
    "model_dir",
    "pick_device",
    "pick_precision",
    "pull_model",
    "resolve_model",
]
