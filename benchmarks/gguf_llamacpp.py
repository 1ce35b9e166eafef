"""GGUF export and the llamacpp backend vs the hf backend, on the quickstart's fine-tuned model.

1. Exports the model to f16 and to q8_0 with ``sqltune export gguf`` (llama.cpp's own
   converter, every check on): export seconds, file size, the checks' figures.
2. Predicts the demo test split with the hf backend's defaults (``sqltune predict``: batch 16,
   precision auto) and with the llamacpp backend on the q8_0 file (its defaults: 8 slots,
   threads = physical cores): the same records, so the same prompts; one run each, alone.
3. Scores both with the eval stage: EX, and questions/s of the generation (model loading
   excluded, timed separately).
4. The same split one question at a time (hf batch 1, llamacpp 1 slot): what a lone user of
   ``sqltune ask`` or ``serve`` waits, per question.

Targets: llamacpp >= 3x the hf backend's questions/s, with EX within 1 question.

    python benchmarks/quickstart.py --out runs/bench_quickstart   # the fine-tuned model
    python benchmarks/gguf_llamacpp.py [--run runs/bench_quickstart] [--out runs/bench_gguf]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.export.gguf import ExportConfig, export_gguf
from sqltune.io import read_jsonl
from sqltune.models.backends import make_backend
from sqltune.predict.run import PredictConfig, predict


def one(spec: str) -> None:
    """Load one backend with its defaults and time ``predict`` on the test split (a child process)."""
    test, pred, model, backend, settings = json.loads(spec)
    cfg = PredictConfig(dataset=test, out=pred, model=model, backend=backend, **settings)
    t0 = time.perf_counter()
    b = make_backend(backend, model, batch_size=cfg.batch_size, precision=cfg.precision, slots=cfg.slots)
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    predict(cfg, backend=b, progress=False)
    print(json.dumps({"load_s": round(load, 1), "generate_s": round(time.perf_counter() - t1, 1), "backend": b.info()}))


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/bench_quickstart", help="a quickstart folder (its train/ and data/)")
    ap.add_argument("--out", default="runs/bench_gguf")
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    test = run / "data" / "test.jsonl"
    if not (run / "train" / "model").is_dir() or not test.is_file():
        sys.exit(f"{run}: no fine-tuned quickstart model there; run python benchmarks/quickstart.py --out {run} first")
    out.mkdir(parents=True, exist_ok=True)
    n = len(read_jsonl(test))

    exports = {}
    for t in ("f16", "q8_0"):
        f = out / f"model.{t}.gguf"
        r = export_gguf(ExportConfig(model=str(run / "train"), out=str(f), type=t, greedy_prompts=8))
        c = r["checks"]
        exports[t] = {
            "file": str(f),
            "convert_seconds": r["convert_seconds"],
            "total_seconds": r["seconds"],
            "mb": round(r["bytes"] / 1e6, 1),
            "ok": r["ok"],
            "tokens_identical": f"{c['parity']['tokens_identical']}/{c['parity']['prompts']}",
            "template_identical": f"{c['parity']['template_identical']}/{c['parity']['prompts']}",
            "greedy_text_identical": f"{c['greedy']['text_identical']}/{c['greedy']['prompts']}",
            "greedy_sql_identical": f"{c['greedy']['sql_identical']}/{c['greedy']['prompts']}",
            "prompts_from": c["parity"]["prompts_from"],
        }

    def timed(name: str, model: str, backend: str, **settings: int) -> dict:
        # each backend in a fresh process: torch's and llama.cpp's OpenMP thread pools never share one
        pred = out / f"pred_{name}.jsonl"
        pred.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--one", json.dumps([str(test), str(pred), model, backend, settings])]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{name}: {r.stderr[-2000:]}")
        t = json.loads(r.stdout.strip().splitlines()[-1])
        summary, _ = run_eval(EvalConfig(dataset=str(test), pred=str(pred), out=str(out / f"eval_{name}"), cache=False))
        tokens = sum(x.get("completion_tokens", 0) for x in read_jsonl(pred))
        ex = summary["ex"]
        return {
            **t,
            "questions_per_s": round(n / t["generate_s"], 3),
            "completion_tokens": tokens,
            "ex": ex,
            "correct": summary["correct"],
        }

    hf = timed("hf", str(run / "train" / "model"), "hf")
    ll = timed("llamacpp", exports["q8_0"]["file"], "llamacpp")
    hf1 = timed("hf_one", str(run / "train" / "model"), "hf", batch_size=1)
    ll1 = timed("llamacpp_one", exports["q8_0"]["file"], "llamacpp", slots=1)
    ratio = ll["questions_per_s"] / hf["questions_per_s"]
    ratio1 = ll1["questions_per_s"] / hf1["questions_per_s"]
    result = {
        "questions": n,
        "exports": exports,
        "hf": hf,
        "llamacpp_q8_0": ll,
        "speed_ratio": round(ratio, 2),
        "one_at_a_time": {"hf": hf1, "llamacpp_q8_0": ll1, "speed_ratio": round(ratio1, 2)},
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    for t, e in exports.items():
        print(
            f"export {t}: {e['convert_seconds']} s convert ({e['total_seconds']} s with checks), {e['mb']} MB; "
            f"checks ok={e['ok']}: template {e['template_identical']}, tokens {e['tokens_identical']} "
            f"({e['prompts_from']}); greedy text {e['greedy_text_identical']}, SQL {e['greedy_sql_identical']}"
        )
    for name, r in (("hf (defaults)", hf), ("llamacpp q8_0", ll), ("hf batch 1", hf1), ("llamacpp 1 slot", ll1)):
        print(
            f"{name:15s} EX {100 * r['ex']:.1f}% ({r['correct']}/{n}); {r['questions_per_s']} questions/s "
            f"({r['generate_s']} s for {n}, {r['completion_tokens']} tokens; load {r['load_s']} s); {r['backend']}"
        )
    print(f"speed ratio llamacpp / hf: {ratio:.2f}x (one question at a time: {ratio1:.2f}x)")
    print(f"target >= 3x questions/s: {'MET' if ratio >= 3 else 'NOT MET'}")
    diff = abs(ll["correct"] - hf["correct"])
    print(f"target EX within 1 question: {'MET' if diff <= 1 else 'NOT MET'} ({diff} apart)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
