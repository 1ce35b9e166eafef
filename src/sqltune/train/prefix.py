"""Shared-prefix batches: a prompt prefix that every example of a batch shares is computed once.

In text-to-SQL data most of an example is its prompt's prefix: the system prompt and the
database's schema (~170 of ~210 tokens in the demo; on Spider every database's questions share
theirs). The plain path runs, and back-propagates, that prefix once per example. Here a batch
is made of examples with the same prefix (the sampler groups them by database), the collator
cuts their longest common token prefix off, and :func:`shared_prefix_loss`

1. runs the prefix once (batch of one) and keeps its keys and values,
2. broadcasts them to the batch (``expand``: no copy; autograd sums the examples' gradients
   back into the one prefix computation),
3. runs each example's suffix (the rest of its prompt and its answer) against them, with
   positions continuing after the prefix and right padding masked out,
4. scores the labelled positions only, as :func:`sqltune.train.loss.labelled_head_loss` does.

Loss and gradients equal the plain padded batch's (``tests/test_train.py`` checks it logit by
logit and gradient by gradient on the tiny model). The common prefix is taken on the token ids
themselves, so it is exact whatever the tokenizer does at the boundary, and it always stops
before the first labelled token, so every prediction of the answer comes from a suffix position.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from sqltune.models.kvcache import cache_kwarg, common_length, expand_cache, prefill
from sqltune.train.head import labelled_head_loss

IGNORE = -100
MIN_PREFIX = 8
"""A shorter common prefix is not worth a separate forward: the batch runs the plain way."""


def common_prefix_length(examples: Sequence[dict[str, list[int]]]) -> int:
    """Longest common prefix of the examples' ids, ending before any example's first labelled
    token's predecessor (so that position P-1 never has to predict a label)."""
    if len(examples) < 2:
        return 0
    ids = [e["input_ids"] for e in examples]
    first_label = min(next((i for i, x in enumerate(e["labels"]) if x != IGNORE), len(e["labels"])) for e in examples)
    n = common_length(ids, max(0, first_label - 1))
    return n if n >= MIN_PREFIX else 0


class PrefixCollator:
    """Collate a batch as ``prefix_ids`` [1, P] + right-padded suffixes ``input_ids``/``labels``/
    ``attention_mask`` [B, S] (P = 0: a plain padded batch). ``num_tokens`` counts each example's
    real tokens, prefix included, so that tokens/s stays comparable with the plain path."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        p = common_prefix_length(examples)
        suffixes = [e["input_ids"][p:] for e in examples]
        labels = [e["labels"][p:] for e in examples]
        width = max(len(s) for s in suffixes)
        ids = torch.full((len(examples), width), self.pad, dtype=torch.long)
        lab = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, (s, lb) in enumerate(zip(suffixes, labels, strict=True)):
            ids[i, : len(s)] = torch.tensor(s)
            lab[i, : len(s)] = torch.tensor(lb)
            mask[i, : len(s)] = 1
        return {
            "prefix_ids": torch.tensor([examples[0]["input_ids"][:p]], dtype=torch.long),
            "input_ids": ids,
            "attention_mask": mask,
            "labels": lab,
            "num_tokens": torch.tensor(sum(len(e["input_ids"]) for e in examples)),
        }


class PrefixGroupedSampler:
    """Indices in an order whose consecutive ``batch_size`` chunks share a prefix key.

    Each epoch (``set_epoch``, called by the Trainer) reshuffles: within every key the examples
    are shuffled and cut into full batches; the remainders of all keys are pooled and cut into
    batches of similar length (those share only the system prompt, so padding is what they would
    waste); then the batches are shuffled. Every
    example is seen once per epoch, every batch but the last has ``batch_size`` examples, and a
    resumed run sees the same order (it depends only on the seed and the epoch).
    """

    def __init__(self, keys: Sequence[str], batch_size: int, seed: int = 0, lengths: Sequence[int] | None = None):
        self.keys = list(keys)
        self.lengths = list(lengths) if lengths is not None else [0] * len(self.keys)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.keys)

    def batches(self) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{self.epoch}")
        by_key: dict[str, list[int]] = defaultdict(list)
        for i, k in enumerate(self.keys):
            by_key[k].append(i)
        full: list[list[int]] = []
        rest: list[int] = []
        b = self.batch_size
        for k in sorted(by_key):
            idx = by_key[k]
            rng.shuffle(idx)
            cut = len(idx) - len(idx) % b
            full.extend(idx[j : j + b] for j in range(0, cut, b))
            rest.extend(idx[cut:])
        rng.shuffle(rest)
        rest.sort(key=lambda i: self.lengths[i])  # stable: equal lengths stay shuffled
        tail = [rest[j : j + b] for j in range(0, len(rest), b)]
        out = full + [t for t in tail if len(t) == b]
        rng.shuffle(out)
        return out + [t for t in tail if len(t) < b]  # at most one short batch, last

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch


def shared_prefix_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, dict]:
    """The loss of a :class:`PrefixCollator` batch: the prefix once, the suffixes against its cache.

    Same value and gradients as :func:`sqltune.train.head.labelled_head_loss` on the unsplit batch.
    """
    import torch

    prefix = inputs["prefix_ids"]
    rest = {k: v for k, v in inputs.items() if k not in ("prefix_ids", "num_tokens")}
    p = prefix.shape[1]
    if p == 0:
        return labelled_head_loss(model, rest, num_items_in_batch)
    ids = rest["input_ids"]
    b, s = ids.shape
    cache, _ = prefill(model, prefix)
    positions = torch.arange(p, p + s, device=ids.device)
    extra = {
        cache_kwarg(model): expand_cache(cache, b),
        "attention_mask": torch.cat([rest["attention_mask"].new_ones(b, p), rest["attention_mask"]], dim=1),
        "position_ids": positions.expand(b, -1),
        "use_cache": True,
    }
    return labelled_head_loss(model, {**rest, **extra}, num_items_in_batch)


__all__ = [
    "PrefixCollator",
    "PrefixGroupedSampler",
    "common_prefix_length",
    "expand_cache",
    "shared_prefix_loss",
]
