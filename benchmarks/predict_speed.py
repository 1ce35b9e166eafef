"""Predict speed: ``sqltune predict`` with its default settings vs a one-question-at-a-time fp32
``generate`` loop (the way DB-GPT-Hub predicts), same model, same 64 Spider dev questions, same
prompt (the dataset's chat messages through the model's chat template), greedy, same
max_new_tokens, in one run.

Prints questions/s and execution accuracy (EX, the eval stage) for both, and the speed ratio
(target: sqltune >= 3x faster, EX no lower than the loop's by more than one question).

    python benchmarks/predict_speed.py [--data-dir ../shared/data/spider] [--n 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from sqltune.data.build import BuildConfig, build
from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.extract import extract_sql
from sqltune.models import DEFAULT_MODEL, pull_model, resolve_model
from sqltune.models.load import encode_prompt
from sqltune.predict.run import PredictConfig, predict
from sqltune.prompts import messages_from_record


def baseline_loop(dataset: Path, out: Path, max_new_tokens: int) -> float:
    """One question at a time, fp32, default dynamic cache: DB-GPT-Hub's predict loop."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve_model(DEFAULT_MODEL)
    tok = AutoTokenizer.from_pretrained(where)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32).eval()
    records = [json.loads(x) for x in dataset.read_text().splitlines()]
    t0 = time.perf_counter()
    with open(out, "w") as fh:
        for r in records:
            ids = torch.tensor([encode_prompt(tok, messages_from_record(r))])
            with torch.inference_mode():
                gen = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id,
                )
            text = tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True)
            fh.write(json.dumps({"id": r["id"], "pred_sql": extract_sql(text), "raw": text}) + "\n")
    return time.perf_counter() - t0


def ex(dataset: Path, pred: Path) -> tuple[float, int, int]:
    out = pred.with_name(pred.stem + ".eval")
    s, _ = run_eval(EvalConfig(dataset=str(dataset), pred=str(pred), out=str(out), timeout=10.0, workers=2))
    return s["ex"], s["correct"], s["n"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "spider"))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    args = ap.parse_args()

    pull_model(DEFAULT_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = work / "dev.jsonl"
        build(
            BuildConfig(
                benchmark="spider",
                data_dir=args.data_dir,
                split="dev",
                out=str(dataset),
                schema="compact",
                limit=args.n,
            )
        )
        n = len(dataset.read_text().splitlines())
        print(f"{n} Spider dev questions, compact schema prompts, greedy, max_new_tokens={args.max_new_tokens}")
        print(f"torch threads: {torch.get_num_threads()}")

        t0 = time.perf_counter()
        s = predict(
            PredictConfig(dataset=str(dataset), out=str(work / "sqltune.jsonl"), max_new_tokens=args.max_new_tokens),
            progress=False,
        )
        t_sqltune = time.perf_counter() - t0  # includes model loading
        manifest = json.loads((work / "sqltune.manifest.json").read_text())
        b = manifest["backend"]
        print(
            f"sqltune defaults: device {b['device']}, dtype {b['dtype']}, batch {b['batch_size']}, "
            f"static cache {b['static_cache']}"
        )
        t_loop = baseline_loop(dataset, work / "loop.jsonl", args.max_new_tokens)
        ex_s, c_s, n_s = ex(dataset, work / "sqltune.jsonl")
        ex_l, c_l, n_l = ex(dataset, work / "loop.jsonl")

    print()
    print("| run | seconds | questions/s | EX |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| sqltune predict (defaults, incl. model load) | {t_sqltune:.1f} | {n / t_sqltune:.3f} | "
        f"{100 * ex_s:.1f}% ({c_s}/{n_s}) |"
    )
    print(
        f"| one-at-a-time fp32 loop (generation only) | {t_loop:.1f} | {n / t_loop:.3f} | "
        f"{100 * ex_l:.1f}% ({c_l}/{n_l}) |"
    )
    print()
    ratio = t_loop / t_sqltune
    print(f"speed ratio: {ratio:.2f}x (target >= 3x): {'MET' if ratio >= 3 else 'NOT MET'}")
    print(f"EX difference: {c_s - c_l:+d} questions (target >= -1): {'MET' if c_s - c_l >= -1 else 'NOT MET'}")
    print(f"statuses: {s['statuses']}")


if __name__ == "__main__":
    main()
