"""Training throughput: sqltune's training vs a cookbook-style setup, same model, data and batch size.

Both run 20 optimizer steps of full fine-tuning of the default model on the same Spider train
examples (compact schema prompts), batch size 8, same precision, in one run:

* cookbook-style: plain ``SFTTrainer`` defaults on the chat ``messages`` (TRL tokenizes them),
  random batches padded to the longest, loss on the whole sequence;
* sqltune: ``sqltune train`` (loss on the answer only, so the LM head runs only on answer
  tokens; on CPU, batches grouped by length; on CUDA, padding-free rows).

Prints real (non-pad) tokens/s, the share of padding, and the ratio (target: sqltune >= 1.3x).
The collators are instrumented to count real and padded tokens.

    python benchmarks/train_throughput.py [--data-dir ../shared/data/spider] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import trl.trainer.sft_trainer as sft_mod

from sqltune.data.build import BuildConfig, build
from sqltune.models import DEFAULT_MODEL, pull_model, resolve_model
from sqltune.train.config import load_config
from sqltune.train.sft import train

COUNT = {"real": 0, "total": 0}
_orig_call = sft_mod.DataCollatorForLanguageModeling.torch_call


def _counting_call(self, examples):  # type: ignore[no-untyped-def]
    out = _orig_call(self, examples)
    COUNT["real"] += sum(len(e["input_ids"]) for e in examples)
    COUNT["total"] += out["input_ids"].numel()
    return out


sft_mod.DataCollatorForLanguageModeling.torch_call = _counting_call


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--examples", type=int, default=400)
    args = ap.parse_args()
    pull_model(DEFAULT_MODEL)
    lr = 1e-4
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "train.jsonl"
        build(
            BuildConfig(
                benchmark="spider",
                data_dir=args.data_dir,
                split="train",
                out=str(data),
                schema="compact",
                limit=args.examples,
            )
        )
        overrides = [
            f"train_file={data}",
            f"output_dir={work / 'sqltune'}",
            "method=full",
            f"max_steps={args.steps}",
            f"batch_size={args.batch_size}",
            f"learning_rate={lr}",
            "report_to=[]",
            "save_steps=100000",
            "logging_steps=5",
            "max_length=2048",
        ]
        cfg = load_config(None, overrides)
        COUNT.update(real=0, total=0)
        t0 = time.perf_counter()
        m = train(cfg)
        t_sqltune = m["train_minutes"] * 60 or time.perf_counter() - t0
        s_real, s_total = COUNT["real"], COUNT["total"]
        bf16 = m["precision"] == "bf16"

        COUNT.update(real=0, total=0)
        t_cook = cookbook(data, work / "cookbook", args.steps, args.batch_size, lr, bf16)
        c_real, c_total = COUNT["real"], COUNT["total"]

    print(
        f"{args.steps} steps x batch {args.batch_size}, full fine-tune of {DEFAULT_MODEL}, precision {m['precision']}, "
        f"device {m['device']}, torch threads {torch.get_num_threads()}"
    )
    print()
    print("| setup | seconds | real tokens | padding share | real tokens/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, t, real, total in (
        ("cookbook-style SFTTrainer defaults", t_cook, c_real, c_total),
        ("sqltune train", t_sqltune, s_real, s_total),
    ):
        print(f"| {name} | {t:.1f} | {real} | {100 * (1 - real / max(total, 1)):.1f}% | {real / t:.1f} |")
    ratio = (s_real / t_sqltune) / (c_real / t_cook)
    print()
    print(f"ratio of real tokens/s: {ratio:.2f}x (target >= 1.3x): {'MET' if ratio >= 1.3 else 'NOT MET'}")


if __name__ == "__main__":
    main()
