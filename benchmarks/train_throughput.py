"""Training throughput: examples/s of sqltune's default training vs its previous path and vs a
cookbook-style setup, on the demo data (one database) and on Spider train (many), in one run.

Every arm is a full fine-tune of the default model for ``--steps`` optimizer steps of
``--batch-size`` examples, same precision, on this machine, one after the other:

* ``sqltune (default)``: shared-prefix batches (each batch from one database, its common prompt
  prefix run once) and the fused AdamW step;
* ``sqltune (previous)``: ``shared_prefix=false optim=adamw_torch`` (random batches grouped by
  length, every example runs its whole prompt), the path before shared prefixes;
* ``cookbook-style`` (Spider only): plain ``SFTTrainer`` defaults on the chat messages.

Then a profile of the default path's steps outside the Trainer (collation, forward, backward,
optimizer), the Trainer's own overhead per step (its s/step minus the profiled one), the FLOPs
those steps executed (matmuls, attention, LM head on labelled positions; x3 for training) as
achieved GFLOP/s, beside this machine's bf16 and fp32 matmul peak measured in the same run.

Targets: default >= 2x previous on the demo data, >= 1.3x on Spider train, >= 1.3x cookbook.

    python benchmarks/train_throughput.py [--data-dir ../shared/data/spider] [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from sqltune.data.build import BuildConfig, build
from sqltune.data.demo import build_demo
from sqltune.models import DEFAULT_MODEL, pull_model, resolve_model
from sqltune.models.load import matmul_gflops
from sqltune.train.config import load_config
from sqltune.train.sft import train


def step_flops(cfg, prefix_len: int, rows: int, width: int, head_positions: int) -> float:  # type: ignore[no-untyped-def]
    """FLOPs of one training step (forward x3) of a batch: the prefix once, ``rows`` suffixes of
    ``width`` (pads included: they are computed), attention over prefix + suffix, the LM head
    on ``head_positions`` positions."""
    d, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = d * cfg.num_key_value_heads // cfg.num_attention_heads
    linear = layers * (2 * d * d + 2 * d * kv + 3 * d * f)  # q, o, k, v, gate/up/down
    tokens = prefix_len + rows * width
    attn = layers * 4 * d * (prefix_len * prefix_len / 2 + rows * width * (prefix_len + width / 2))
    head = 2 * d * cfg.vocab_size * head_positions
    return 3 * (2 * linear * tokens + attn + head)


def profile(examples_file: Path, batch: int, steps: int, seed: int = 0) -> dict:
    """The default path's steps by phase, outside the Trainer, on batches its sampler makes."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from sqltune.models.load import load_tokenizer
    from sqltune.train.data import tokenize_file
    from sqltune.train.prefix import PrefixCollator, PrefixGroupedSampler, shared_prefix_loss

    where = resolve_model(DEFAULT_MODEL)
    tok = load_tokenizer(where, chat_template=True, resolve=False)
    ex, _ = tokenize_file(examples_file, tok, 1024)
    cfg = AutoConfig.from_pretrained(where)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    sampler = PrefixGroupedSampler([e["prefix_key"] for e in ex], batch, seed, [len(e["input_ids"]) for e in ex])
    order = list(sampler)
    batches = [order[i : i + batch] for i in range(0, len(order) - batch + 1, batch)]
    random.Random(seed).shuffle(batches)
    collate = PrefixCollator(tok.pad_token_id)
    phases = {"collate": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    flops = 0.0
    for n, idx in enumerate(batches[: steps + 1]):
        t0 = time.perf_counter()
        b = collate([{"input_ids": ex[i]["input_ids"], "labels": ex[i]["labels"]} for i in idx])
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = shared_prefix_loss(model, b)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        if n == 0:
            continue  # warm-up
        for k, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[k] += dt
        keep = int((b["labels"][:, 1:] != -100).any(dim=0).sum()) * b["labels"].shape[0]
        flops += step_flops(cfg, b["prefix_ids"].shape[1], *b["input_ids"].shape, keep)
    total = sum(phases.values())
    return {
        "steps": steps,
        "phases": {k: v / steps for k, v in phases.items()},
        "s_per_step": total / steps,
        "gflops": flops / total / 1e9,
    }


def cookbook(dataset: Path, out: Path, steps: int, batch: int, lr: float, bf16: bool) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    where = resolve_model(DEFAULT_MODEL)
    rows = [{"messages": json.loads(x)["messages"]} for x in dataset.read_text().splitlines()]
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=lr,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        seed=0,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(where),
    )
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def run_sqltune(data: Path, out: Path, steps: int, batch: int, lr: float, extra: list[str]) -> dict:
    overrides = [
        f"train_file={data}",
        f"output_dir={out}",
        "method=full",
        f"max_steps={steps}",
        f"batch_size={batch}",
        f"learning_rate={lr}",
        "report_to=[]",
        "save_steps=100000",
        "logging_steps=5",
        "max_length=2048",
        *extra,
    ]
    m = train(load_config(None, overrides))
    return {"seconds": m["train_minutes"] * 60, "manifest": m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--profile-steps", type=int, default=6)
    ap.add_argument("--skip-cookbook", action="store_true", help="the slowest arm (~1.5x the previous path)")
    args = ap.parse_args()
    pull_model(DEFAULT_MODEL)
    lr, b = 1e-4, args.batch_size
    peak_bf16 = matmul_gflops("bf16", reps=20)
    peak_fp32 = matmul_gflops("fp32", reps=20)
    rows = []
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_demo(work / "demo", schema="compact", fmt="chat", seed=0, tokenizer=DEFAULT_MODEL)
        spider = work / "spider_train.jsonl"
        build(
            BuildConfig(
                benchmark="spider",
                data_dir=args.data_dir,
                split="train",
                out=str(spider),
                schema="compact",
                max_prompt_tokens=512,
                tokenizer=DEFAULT_MODEL,
            )
        )
        sets = {"demo (1 database)": work / "demo" / "train.jsonl", "Spider train (140 databases)": spider}
        for name, data in sets.items():
            tag = name.split()[0].lower()
            new = run_sqltune(data, work / f"{tag}_new", args.steps, b, lr, [])
            old = run_sqltune(
                data, work / f"{tag}_old", args.steps, b, lr, ["shared_prefix=false", "optim=adamw_torch"]
            )
            bf16 = new["manifest"]["precision"] == "bf16"
            row = {"data": name, "default": new["seconds"], "previous": old["seconds"]}
            if tag == "spider" and not args.skip_cookbook:
                row["cookbook"] = cookbook(data, work / "cookbook", args.steps, b, lr, bf16)
            rows.append(row)
            profiles[name] = profile(data, b, args.profile_steps)

    n = args.steps * b
    print(
        f"{args.steps} steps x batch {b} per arm, full fine-tune of {DEFAULT_MODEL}, precision "
        f"{new['manifest']['precision']}, device {new['manifest']['device']}, torch threads {torch.get_num_threads()}"
    )
    print(f"measured matmul peak (1024^3, best of 3): bf16 {peak_bf16:.0f} GFLOP/s, fp32 {peak_fp32:.0f} GFLOP/s")
    print()
    print("| data | setup | seconds | examples/s |")
    print("| --- | --- | ---: | ---: |")
    for r in rows:
        for key, label in (
            ("cookbook", "cookbook-style SFTTrainer defaults"),
            ("previous", "sqltune, previous path"),
            ("default", "sqltune default (shared prefix, fused AdamW)"),
        ):
            if key in r:
                print(f"| {r['data']} | {label} | {r[key]:.1f} | {n / r[key]:.2f} |")
    print()
    print("profile of the default path (mean per step, outside the Trainer):")
    print(
        "| data | collate | forward | backward | optimizer | s/step | Trainer overhead/step | achieved GFLOP/s | of bf16 peak |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        p = profiles[r["data"]]
        ph = p["phases"]
        overhead = r["default"] / args.steps - p["s_per_step"]
        print(
            f"| {r['data']} | {ph['collate']:.3f} | {ph['forward']:.2f} | {ph['backward']:.2f} | {ph['optimizer']:.2f} "
            f"| {p['s_per_step']:.2f} | {overhead:+.2f} | {p['gflops']:.0f} | {100 * p['gflops'] / peak_bf16:.0f}% |"
        )
    print()
    targets = (("demo", "previous", 2.0), ("spider", "previous", 1.3), ("spider", "cookbook", 1.3))
    for tag, base, goal in targets:
        r = next(x for x in rows if x["data"].lower().startswith(tag))
        if base not in r:
            continue
        ratio = r[base] / r["default"]
        print(
            f"{r['data']}: default vs {base}: {ratio:.2f}x examples/s (target >= {goal}x): "
            f"{'MET' if ratio >= goal else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
