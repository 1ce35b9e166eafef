"""Load on ``sqltune serve``: 50 concurrent /v1/ask requests vs one at a time, on the demo database.

Starts the real app (uvicorn on loopback) with the default model (SmolLM2-135M, base), asks the
demo test split's questions, first one at a time (``--sequential`` of them), then ``--total``
requests from ``--clients`` concurrent clients, and prints errors, throughput, the ratio
(target: 0 errors, >= 4x with 16 clients; batching the concurrent questions into one generate
call is the lever) and p50/p95 latency. On the hf backend the server batches continuously (a
request joins the running batch when a row frees and leaves it the step its answer ends);
``--by-round`` measures the round batcher instead.

    python benchmarks/serve_load.py [--clients 16] [--total 50] [--sequential 12] [--by-round]
    python benchmarks/serve_load.py --backend llamacpp     # the same model exported to q8_0 GGUF, on llama.cpp

With ``--backend llamacpp`` the default model is exported once (``sqltune export gguf``, q8_0) and
served in-process by llama.cpp: continuous batching over its slots (8), each question on a thread of
its own whose requests take a slot as one frees (``--by-round``: the round batcher in front of it),
and each slot keeps the KV cache of its last prompt, so the system prompt and schema that every
question on one database shares are computed once per slot instead of once per question.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from sqltune.data.demo import build_demo
from sqltune.io import read_jsonl
from sqltune.models import DEFAULT_MODEL, pull_model
from sqltune.models.backend_config import make_backend
from sqltune.serve.app import ServeConfig, create_app
from sqltune.serve.ask import AskConfig, Database


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--total", type=int, default=50)
    ap.add_argument("--sequential", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--backend", default="hf", choices=["hf", "llamacpp"])
    ap.add_argument("--by-round", action="store_true", help="batch by round instead of continuously")
    ap.add_argument("--gguf", default="runs/bench_serve/smollm2-135m.q8_0.gguf", help="llamacpp: the file (made once)")
    args = ap.parse_args()
    import uvicorn

    pull_model(DEFAULT_MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        demo = build_demo(Path(tmp) / "demo")
        questions = [r["question"] for r in read_jsonl(demo["test"])]
        if args.backend == "llamacpp":
            from sqltune.export.gguf import ExportConfig, export_gguf

            if not Path(args.gguf).is_file():
                export_gguf(ExportConfig(model=DEFAULT_MODEL, out=args.gguf, type="q8_0"))
            backend = make_backend("llamacpp", args.gguf)
        else:
            backend = make_backend("hf", DEFAULT_MODEL, batch_size=16)
        app = create_app(
            backend,
            DEFAULT_MODEL,
            [Database(demo["database"])],
            AskConfig(max_new_tokens=args.max_new_tokens),
            "compact",
            ServeConfig(log_dir=str(Path(tmp) / "logs"), rate_limit=0, continuous=not args.by_round),
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"

        # one client, shared by the threads (httpx.Client is thread-safe): connections are reused,
        # as a load generator does, so requests leave together instead of one TLS setup at a time
        client = httpx.Client(base_url=url, timeout=600, limits=httpx.Limits(max_connections=64))

        def one(q: str) -> tuple[float, int, bool]:
            t0 = time.perf_counter()
            r = client.post("/v1/ask", json={"question": q})
            body = r.json() if r.status_code == 200 else {}
            return time.perf_counter() - t0, r.status_code, bool(body.get("answered"))

        one(questions[0])  # warm-up: first generate call, workers started
        t0 = time.perf_counter()
        seq = [one(q) for q in questions[: args.sequential]]
        seq_s = time.perf_counter() - t0
        qs = [questions[i % len(questions)] for i in range(args.total)]
        first = len(app.state.batcher.batches)
        stats0 = app.state.backend.stats() if hasattr(app.state.backend, "stats") else None
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(args.clients) as pool:
            conc = list(pool.map(one, qs))
        conc_s = time.perf_counter() - t0
        client.close()
        server.should_exit = True
        batches = app.state.batcher.batches[first:]
        stats1 = app.state.backend.stats() if stats0 is not None else None
        app.state.close()

    seq_rate, conc_rate = len(seq) / seq_s, len(conc) / conc_s
    errors = sum(1 for _, code, _ in seq + conc if code != 200)
    lat = sorted(x[0] for x in conc)
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    print(
        f"model {DEFAULT_MODEL} (base) on the {args.backend} backend, demo database, "
        f"max_new_tokens {args.max_new_tokens}, 2 CPU cores"
    )
    print(
        f"one at a time: {len(seq)} questions in {seq_s:.1f} s = {seq_rate:.3f} questions/s; median latency {statistics.median(x[0] for x in seq):.2f} s"
    )
    print(
        f"{args.clients} clients, {len(conc)} requests: {conc_s:.1f} s = {conc_rate:.3f} questions/s; p50 {statistics.median(lat):.2f} s, p95 {p95:.2f} s"
    )
    if stats0 is not None and stats1 is not None:  # continuous batching: rows per decode step
        steps = stats1["steps"] - stats0["steps"]
        rows = stats1["rows_per_step"] * stats1["steps"] - stats0["rows_per_step"] * stats0["steps"]
        print(
            f"continuous batch while concurrent: {steps} decode steps, {rows / max(steps, 1):.1f} rows a step, "
            f"most {stats1['most_rows']}; prompt tokens computed {stats1['prompt_tokens_computed']}, "
            f"reused from kept prefixes {stats1['prompt_tokens_reused']} (whole run)"
        )
    elif args.backend == "llamacpp" and not args.by_round:
        print(f"continuous batch while concurrent: llama.cpp's {backend.slots} slots")
    else:
        print(
            f"generate batches while concurrent: largest {max(batches)}, mean {statistics.fmean(batches):.1f}; "
            f"sizes {batches}"
        )
    print(f"answered: {sum(a for *_, a in conc)} of {len(conc)} (the rest: an honest I don't know)")
    ratio = conc_rate / seq_rate
    ok = errors == 0 and ratio >= 4
    print(f"errors: {errors}; throughput ratio {ratio:.2f}x (target >= 4x, 0 errors): {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
