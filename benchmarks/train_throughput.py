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
import tempfile
import time
from pathlib import Path

import torch

from sqltune.data.build import BuildConfig, build
from sqltune.data.demo import build_demo
from sqltune.models import DEFAULT_MODEL, pull_model, resolve_model
from sqltune.models.load import matmul_gflops
from sqltune.train.config import load_config
from sqltune.train.probe import probe_steps
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


def profile(cfg_overrides: list[str], steps: int) -> dict:  # type: ignore[no-untyped-def]
    """The default path's steps by phase outside the Trainer (``sqltune.train.probe``: the very
    batches the Trainer's first steps saw), with the FLOPs they executed."""
    from transformers import AutoConfig

    cfg = load_config(None, cfg_overrides)
    p = probe_steps(cfg, steps)
    mcfg = AutoConfig.from_pretrained(resolve_model(DEFAULT_MODEL))
    flops = sum(step_flops(mcfg, s["prefix"], s["rows"], s["width"], s["head"]) for s in p["shapes"])
    return {**p, "gflops": flops / (p["s_per_step"] * p["steps"]) / 1e9}


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


def overrides_for(data: Path, out: Path, steps: int, batch: int, lr: float, extra: list[str]) -> list[str]:
    return [
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


def run_sqltune(data: Path, out: Path, steps: int, batch: int, lr: float, extra: list[str]) -> dict:
    m = train(load_config(None, overrides_for(data, out, steps, batch, lr, extra)))
    return {"seconds": m["train_minutes"] * 60, "manifest": m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--profile-steps", type=int, help="default: --steps (the same batches as the Trainer's)")
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
            profiles[name] = profile(
                overrides_for(data, work / f"{tag}_probe", args.steps, b, lr, []), args.profile_steps or args.steps
            )

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
