"""The causal-LM loss with the LM head applied only on labelled positions (the answer's tokens).

Used by the trainer (:mod:`sqltune.train.loss`) on padded batches and, under the shared prompt prefix,
by :mod:`sqltune.train.prefix`.
"""

from __future__ import annotations

from typing import Any


def labelled_head_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> tuple[Any, dict]:
    """Causal-LM loss with the LM head applied only where some row has a label.

    The answer is ~10% of a text-to-SQL example's tokens (the schema prompt is the rest), so
    projecting every position onto the vocabulary wastes most of the head's work, forward and
    backward. ``logits_to_keep`` (a tensor of positions, supported by transformers' causal LMs)
    keeps the positions whose next token is labelled in at least one row of the batch.
    Returns the loss (summed answer-token NLL over ``num_items_in_batch``, or the mean) and
    token statistics: ``label_tokens``, ``entropy_sum``, ``correct``.
    """
    import torch

    labels = inputs["labels"]
    shifted = labels[:, 1:]
    keep = (shifted != -100).any(dim=0).nonzero().squeeze(-1)
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    kwargs.setdefault("use_cache", False)
    out = model(**kwargs, logits_to_keep=keep)
    target = shifted[:, keep]
    mask = target != -100
    logp = torch.log_softmax(out.logits[mask].float(), dim=-1)
    gold = target[mask]
    nll = -logp.gather(1, gold[:, None]).squeeze(1)
    denom = mask.sum() if num_items_in_batch is None else num_items_in_batch
    loss = nll.sum() / torch.as_tensor(denom).clamp(min=1)
    with torch.no_grad():
        stats = {
            "label_tokens": mask.sum(),
            "entropy_sum": -(logp.exp() * logp).sum(),
            "correct": (logp.argmax(-1) == gold).sum(),
        }
    return loss, stats
