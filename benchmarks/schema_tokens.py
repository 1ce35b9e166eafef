"""Prompt length per schema style on Spider dev (972 questions), with the default model's tokenizer.

Counts the full prompt as the model sees it: system + user turns in the model's chat template,
with the generation prompt.

    python benchmarks/schema_tokens.py [--data-dir ../shared/data/spider] [--tokenizer smollm2-135m]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sqltune.data.build import BuildConfig, build, length_stats
from sqltune.io import read_jsonl
from sqltune.models import load_tokenizer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spider")
    )
    ap.add_argument("--tokenizer", default="smollm2-135m")
    args = ap.parse_args()
    rows = []
    tok = load_tokenizer(args.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        for style in ("ddl", "text", "compact"):
            cfg = BuildConfig(
                benchmark="spider",
                data_dir=args.data_dir,
                split="dev",
                out=f"{tmp}/{style}.jsonl",
                schema=style,
                tokenizer=args.tokenizer,
                verify=False,
            )
            t = build(cfg)["prompt_tokens"]
            users = [r["messages"][1]["content"] for r in read_jsonl(f"{tmp}/{style}.jsonl")]
            schemas = [u[len("-- DB Schema: ") : u.index("\n\n-- External Knowledge:")] for u in users]
            s = length_stats([len(x) for x in tok(schemas, add_special_tokens=False)["input_ids"]])
            rows.append((style, t, s))
    ddl_t, ddl_s = rows[0][1]["median"], rows[0][2]["median"]
    print(f"Spider dev, {rows[0][1]['n']} prompts, tokenizer {args.tokenizer}")
    print(
        "| schema style | prompt median | prompt p90 | prompt max | schema median | schema p90 | schema max | prompt vs ddl | schema vs ddl |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for style, t, s in rows:
        print(
            f"| {style} | {t['median']:.0f} | {t['p90']} | {t['max']} | {s['median']:.0f} | {s['p90']} | {s['max']} "
            f"| {t['median'] / ddl_t:.2f}x | {s['median'] / ddl_s:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
