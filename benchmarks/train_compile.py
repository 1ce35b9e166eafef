"""Is ``torch.compile`` worth it for CPU training? Shared-prefix steps of the default model on the
demo data, eager vs compiled (``model.model.compile(dynamic=True)``: every batch has another
prefix and suffix length), same batches, bf16 autocast, fused AdamW.

Prints each step's seconds (the compiled run's first step includes compilation) and the mean
of the last five; run it once per mode, alone on the machine:

    python benchmarks/train_compile.py eager|compile [--data runs/quickstart/data/train.jsonl]
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from transformers import AutoModelForCausalLM

from sqltune.models import DEFAULT_MODEL, pull_model, resolve_model
from sqltune.models.load import load_tokenizer
from sqltune.train.data import tokenize_file
from sqltune.train.prefix import PrefixCollator, shared_prefix_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["eager", "compile"])
    ap.add_argument("--data", default="runs/quickstart/data/train.jsonl")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    pull_model(DEFAULT_MODEL)
    where = resolve_model(DEFAULT_MODEL)
    tok = load_tokenizer(where, chat_template=True, resolve=False)
    ex, _ = tokenize_file(args.data, tok, 1024)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    if args.mode == "compile":
        model.model.compile(dynamic=True)
    rng = random.Random(0)
    collate = PrefixCollator(tok.pad_token_id)
    times = []
    for step in range(args.steps):
        batch = collate([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in rng.sample(ex, args.batch_size)])
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = shared_prefix_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
        print(step, f"{times[-1]:.2f} s", flush=True)
    print(args.mode, f"mean of the last 5 steps: {sum(times[-5:]) / 5:.3f} s")


if __name__ == "__main__":
    main()
