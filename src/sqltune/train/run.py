"""The train stage's entry: ``objective: sft`` (:mod:`sqltune.train.sft`) or ``objective: grpo``
(:mod:`sqltune.train.grpo`), one config, one run folder layout."""

from __future__ import annotations

from typing import Any

from sqltune.train.config import TrainConfig


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one training run of either objective; return its manifest."""
    if cfg.objective == "grpo":
        from sqltune.train.grpo import train_grpo

        return train_grpo(cfg)
    from sqltune.train.sft import train as train_sft

    return train_sft(cfg)
