"""The two calls into transformers' ``from_pretrained`` for tokenizers and causal LMs, with sqltune's errors.

The lowest part of the models layer: :mod:`sqltune.models.load` (the one loader every stage uses) and
:mod:`sqltune.models.registry` (which dequantizes a GGUF into a folder) both build on it, so neither imports
the other's internals."""

from __future__ import annotations

from typing import Any

from sqltune.errors import ModelError


def tokenizer_from(where: str, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained`` on a resolved folder or hub id, with sqltune's error."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load a tokenizer from {where!r}: {e}") from None


def encoder_from(where: str, **kwargs: Any) -> Any:
    """``AutoModel.from_pretrained`` (an encoder such as a sentence-embedding model) with sqltune's error."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(where, **kwargs)
    except Exception as e:
        raise ModelError(f"cannot load an encoder from {where!r}: {type(e).__name__}: {e}") from None


def causal_lm_from(where: str, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` on a resolved folder or hub id, with sqltune's error."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except Exception as e:
        raise ModelError(f"cannot load model weights from {where!r}: {type(e).__name__}: {e}") from None
