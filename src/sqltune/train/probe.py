"""How fast will a run train here? A few real optimizer steps of a config, timed by phase.

:func:`probe_steps` loads the config's model as ``train`` does, takes the first batches the run
itself will see (the same sampler and collator, the same seed), and times collation, forward,
backward and the optimizer step for ``steps`` steps after one warm-up step. The quickstart uses
it to say up front how long it will take on this machine; ``benchmarks/train_throughput.py``
uses it for its profile (and the difference to the Trainer's own step time is the Trainer's
overhead).
"""

from __future__ import annotations

import time
from typing import Any

from sqltune.io import read_jsonl
from sqltune.train.config import TrainConfig


def probe_steps(cfg: TrainConfig, steps: int = 2) -> dict[str, Any]:
    """Mean seconds per step by phase (``collate``, ``forward``, ``backward``, ``optimizer``),
    ``s_per_step``, and per batch the shapes (``prefix``, ``rows``, ``width``, ``head``: labelled
    positions the LM head scores) that FLOP counts need."""
    import contextlib

    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from sqltune.models.load import load_tokenizer
    from sqltune.models.registry import resolve_model
    from sqltune.train.data import tokenize_file
    from sqltune.train.loss import labelled_head_loss
    from sqltune.train.prefix import PrefixCollator, PrefixGroupedSampler, shared_prefix_loss
    from sqltune.train.sft import _device_precision, load_model, peft_config, use_shared_prefix

    device, precision = _device_precision(cfg)
    where = resolve_model(cfg.model)
    tok = load_tokenizer(where, chat_template=True, resolve=False)
    records = read_jsonl(cfg.train_file)
    ex, _ = tokenize_file(cfg.train_file, tok, cfg.max_length, cfg.overlong, records)
    shared = use_shared_prefix(cfg, device, padding_free=False)
    b = cfg.batch_size
    if shared:
        sampler = PrefixGroupedSampler([e["prefix_key"] for e in ex], b, cfg.seed, [len(e["input_ids"]) for e in ex])
        order = list(sampler)
        collate: Any = PrefixCollator(tok.pad_token_id)
        loss_fn: Any = shared_prefix_loss
    else:
        order = list(range(len(ex)))
        collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)
        loss_fn = labelled_head_loss
    batches = [order[i : i + b] for i in range(0, len(order) - b + 1, b)][:steps] or [order]
    batches = batches[:1] + batches  # the first twice: once to warm up
    model = load_model(cfg, where, precision).to(device).train()
    if cfg.method != "full":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(cfg))
    fused = cfg.optim == "adamw_torch_fused"
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, fused=fused or None)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    phases = {"collate": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    shapes = []
    for n, idx in enumerate(batches):
        t0 = time.perf_counter()
        batch = collate([{"input_ids": ex[i]["input_ids"], "labels": ex[i]["labels"]} for i in idx])
        batch = {k: v.to(device) for k, v in dict(batch).items()}
        t1 = time.perf_counter()
        with autocast:
            loss, _ = loss_fn(model, batch)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if n == 0:
            continue
        for k, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[k] += dt
        labels = batch["labels"]
        head = int((labels[:, 1:] != -100).any(dim=0).sum()) * labels.shape[0]
        prefix = batch["prefix_ids"].shape[1] if "prefix_ids" in batch else 0
        shapes.append({"prefix": prefix, "rows": labels.shape[0], "width": labels.shape[1], "head": head})
    steps = len(shapes)
    total = sum(phases.values())
    return {
        "steps": steps,
        "shared_prefix": shared,
        "phases": {p: v / steps for p, v in phases.items()},
        "s_per_step": total / steps,
        "shapes": shapes,
    }


__all__ = ["probe_steps"]
