"""The ask engine: a question about a database in, SQL and rows (or an honest "I don't know") out.

A pipeline, not an agent (a small model cannot drive tool calls):

1. read the schema from the live database and render it with :mod:`sqltune.prompts` in the style
   the model was trained with (read from its run folder; a base model gets ``ddl``);
2. generate ``samples`` candidates (the first greedy) with any backend (hf, openai, vllm);
3. extract the SQL and run every candidate through the judge: read-only (engine-enforced),
   a hard timeout, a row cap and a byte cap; in the first round, the query bank's chooser
   (:func:`sqltune.linking.bank.choose`, hf) may replace the first candidate by a verified query of the
   database, which then runs in its place;
4. when no candidate runs, **repair**: ask again with the failing SQL and the engine's error
   message, up to ``repairs`` times;
5. vote among the candidates that ran by their results; **abstain** when none ran, or when the
   winning result's share of the votes is under ``min_vote_share``.

The result always carries the SQL, columns, rows, whether they were cut, the vote share, every
attempt with its error, the reasoning (for chain-of-thought models) and timings.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.db.engine import connect
from sqltune.db.execute import check_sqlite_file
from sqltune.db.schema import introspect
from sqltune.db.target import SQLGLOT_DIALECT, engine_of, resolve
from sqltune.errors import ConfigError, DataError
from sqltune.extract import extract_sql, reasoning_before_sql
from sqltune.judge import Judge, majority_vote
from sqltune.linking.link import SchemaFilterConfig
from sqltune.models.backends import Backend, GenParams
from sqltune.sqlutil import rename_tables, resolve_tables

REPAIR_PROMPT = (
    "The previous SQL query failed.\n-- Previous SQL: {sql}\n-- Error: {error}\n"
    "Write a corrected SQLite SQL select statement for the same question."
)


@dataclass(frozen=True)
class AskConfig(SchemaFilterConfig):
    """Settings of the ask engine (``sqltune ask``, ``sqltune serve``)."""

    samples: int = 1
    """Candidates per question (the first greedy, the others sampled); > 1 votes by execution result."""
    temperature: float = 0.7
    """Temperature of the sampled candidates."""
    repairs: int = 2
    """Times to ask again with the error message when no candidate runs."""
    min_vote_share: float = 0.0
    """Abstain when the winning result has less than this share of the candidates' votes."""
    max_new_tokens: int = 256
    """Most tokens generated per candidate."""
    timeout: float = 10.0
    """Seconds a query may run before it is stopped."""
    max_rows: int = 1000
    """Rows returned at most (the result says when it was cut)."""
    max_bytes: int = 1_000_000
    """Bytes of returned rows at most."""
    schema_style: str | None = None
    """ddl | text | compact; default: the style the model was trained with, else ddl."""
    force_prompt: bool = False
    """Serve schema_style even where it contradicts the model's prompt contract."""
    allow_privileged_role: bool = False
    """Run on a PostgreSQL/MySQL role that can do more than read (refused otherwise): every statement still runs
    in a read-only transaction, but server files and programs are then up to the role."""
    cot: bool = False
    """The model reasons first: take the last SQL block and return the reasoning beside it."""
    stop_after_sql: bool = True
    """hf: end each candidate once its fenced SQL block is closed, or its bare statement meets its ``;`` (not with cot)."""
    resolve_tables: bool = True
    """A table name the model wrote that the database lacks, but one table carries after a prefix
    (``singer`` for ``concert_singer__singer``, ``customer`` for ``dim_customer``), is rewritten to it
    before the SQL runs (the attempt keeps the model's text in ``raw``)."""
    ground_values: bool = True
    """hf: a text literal compared to a column decodes to one of the values it holds, when the value index
    knows all of them (:mod:`sqltune.models.grounding`); other backends do not ground."""
    query_bank: bool = True
    """hf: the first candidate is the likeliest, by the model's own scores, of its greedy answer (out of the
    running where it does not run) and the verified queries of the database's query bank nearest in meaning to
    the question (:mod:`sqltune.linking.bank`); the answer's ``bank`` says what was compared. Not with cot or
    other backends."""

    def validate(self) -> None:
        problems = []
        if self.samples < 1:
            problems.append(f"samples={self.samples}: must be at least 1")
        if self.repairs < 0:
            problems.append(f"repairs={self.repairs}: must be 0 or more")
        if not 0 <= self.min_vote_share <= 1:
            problems.append(f"min_vote_share={self.min_vote_share}: must be in [0, 1]")
        if self.timeout <= 0 or self.max_rows < 1 or self.max_bytes < 1:
            problems.append("timeout, max_rows and max_bytes must be positive")
        if self.schema_style is not None and self.schema_style not in prompts.SCHEMA_STYLES:
            problems.append(f"schema_style={self.schema_style!r}: choose one of {', '.join(prompts.SCHEMA_STYLES)}")
        if problems:
            raise ConfigError("invalid ask settings: " + "; ".join(problems))


@dataclass
class Attempt:
    sql: str
    ok: bool
    error: str | None = None
    error_type: str | None = None
    raw: str = ""
    round: int = 0
    """0 for the first round of candidates, k for the k-th repair."""


@dataclass
class Answer:
    question: str
    db: str
    answered: bool
    sql: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    vote_share: float = 0.0
    abstain_reason: str | None = None
    reasoning: str = ""
    bank: dict[str, Any] = field(default_factory=dict)
    """With the query bank: the query compared (the one taken, else the nearest), the phrasing it matched, their
    similarity, the scores of the model's answer and of each query compared, whether the model's answer ran
    (``own_ran``) and whether a bank query was taken (``from_bank``)."""
    attempts: list[Attempt] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    prompt: dict[str, Any] = field(default_factory=dict)
    """The prompt's settings: schema_style, its source (contract | option | default), the dialect, and with schema
    linking its settings (``schema_filter``), what it kept (``schema``: tables, columns, values) and the prompt's
    tokens."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def served_model(model: str) -> tuple[str, str | None]:
    """(what to load, the schema style it was trained with) for a model name, folder or sqltune run.

    A run folder from ``sqltune train`` gives its ``model/``; a LoRA run must be merged first."""
    p = Path(model)
    if p.is_dir() and (p / "manifest.json").is_file() and not (p / "config.json").is_file():
        if (p / "model" / "config.json").is_file():
            return str(p / "model"), prompts.trained_schema_style(str(p))
        if (p / "adapter").is_dir():
            raise ConfigError(f"{p} is a LoRA run; merge it first: sqltune merge {p} --out {p}-merged")
        raise ConfigError(f"{p}: the run has no model/ folder yet; finish it with 'sqltune train' (it resumes)")
    return model, prompts.trained_schema_style(model) if p.is_dir() or p.suffix == ".gguf" else None


class Database:
    """A served database: its path or URL, its name (the file's stem or the database's name) and its
    rendered schema (cached). A server database's role is checked when it is opened: a role that can
    do more than read is refused here, at startup, unless ``allow_privileged_role``."""

    def __init__(self, path: str | Path, allow_privileged_role: bool = False):
        target = resolve(path)
        if target.engine == "sqlite":
            self.path = str(Path(target.path).resolve())
            check_sqlite_file(self.path)
        else:
            self.path = target.raw
            connect(self.path, allow_privileged_role=allow_privileged_role).close()
        self.name = target.name
        self.dialect = target.engine
        self._schemas: dict[str, str] = {}
        self._index: Any = None
        self._grounding: Any = None
        self.allow_privileged_role = allow_privileged_role
        self.schema = introspect(self.path, db_id=self.name)
        if not self.schema.tables:
            raise DataError(f"{path}: the database has no tables")

    def resolved(
        self, sql: str, messages: list[dict[str, str]], short: dict[str, str] | None = None, resolve: bool = True
    ) -> str:
        """``sql`` with the tables the prompt showed by short names (``short``: ``{shown: real}``) read back
        to their real names, then the names this database lacks read as the one table they name after a
        prefix (:func:`sqltune.sqlutil.resolve_tables`; ``messages``: the prompt, whose schema breaks ties);
        ``resolve``: whether to do the second."""
        if not sql:
            return sql
        dialect = SQLGLOT_DIALECT.get(self.dialect, self.dialect)
        if short:
            sql = rename_tables(sql, short, dialect)
        if not resolve:
            return sql
        shown = "\n".join(m["content"] for m in messages if m["role"] == "user")
        names = [t.name for t in self.schema.tables]
        return resolve_tables(sql, names, shown, dialect)[0]

    def schema_text(self, style: str) -> str:
        if style not in self._schemas:
            self._schemas[style] = prompts.render_schema(self.schema, style)
        return self._schemas[style]

    def value_index(self) -> Any:
        """This database's value index (built once, cached per database version)."""
        if self._index is None:
            from sqltune.linking.values import ValueIndex

            self._index = ValueIndex.open(self.path, self.schema, allow_privileged_role=self.allow_privileged_role)
        return self._index

    def grounding(self) -> Any:
        """The values literals decode to (:meth:`sqltune.linking.values.ValueIndex.grounding`), built once."""
        if self._grounding is None:
            self._grounding = self.value_index().grounding()
        return self._grounding

    def query_bank(self) -> Any:
        """This database's query bank (:func:`sqltune.linking.bank.bank_for`: drawn once, cached per version)."""
        from sqltune.linking.bank import bank_for

        return bank_for(self.path, allow_privileged_role=self.allow_privileged_role)

    def prepare(self, style: str) -> None:
        """Build before the first question what its prompts build once: the value index and the linker's
        ranking state (``style``'s schema linking; nothing without it)."""
        link = getattr(style, "link", None)
        if link is not None and link.active:
            prompts.prepare_linking(self.schema, link, self.value_index() if link.needs_index else None)

    def question_schema(self, question: str, evidence: str, style: str, cot: bool = False) -> tuple[str, Any]:
        """The schema text of one question's prompt (schema linking when ``style`` carries it)."""
        link = getattr(style, "link", None)
        if link is None or not link.active:
            return self.schema_text(style), None
        return prompts.question_schema(
            self.schema,
            question,
            evidence,
            str(style),
            link,
            self.value_index() if link.needs_index else None,
            getattr(style, "counter", None),
            self.dialect,
            cot,
        )


@dataclass
class Pending:
    """A question between rounds: the prompt so far, its answer so far, its round."""

    question: str
    db: Database
    evidence: str
    base: list[dict[str, str]]
    messages: list[dict[str, str]]
    answer: Answer
    round: int = 0
    started: float = 0.0
    done: bool = False
    short: dict[str, str] = field(default_factory=dict)
    """The tables the prompt shows by short names: ``{shown: real}``."""


def start(question: str, db: Database, evidence: str, cfg: AskConfig, style: str) -> Pending:
    """A question's first round: the prompt in the trained schema style."""
    used = (
        style
        if not cfg.schema_style or cfg.schema_style == style
        else prompts.PromptStyle(
            cfg.schema_style, "option", getattr(style, "link", None), getattr(style, "counter", None)
        )
    )
    text, linked = db.question_schema(question, evidence, used, cfg.cot)
    base = prompts.prompt_messages(text, question, evidence, cot=cfg.cot, dialect=db.dialect)
    answer = Answer(question=question, db=db.name, answered=False)
    source = "option" if cfg.schema_style else getattr(style, "source", "default")
    answer.prompt = {"schema_style": str(used), "source": source, "dialect": db.dialect}
    if linked is not None:
        answer.prompt["schema_filter"] = used.link.to_dict()  # type: ignore[attr-defined]
        answer.prompt["schema"] = {
            "tables": sorted(linked.kept_tables()),
            "columns": [linked.kept_columns, linked.full_columns],
            "values": linked.values,
        }
        if linked.names:
            answer.prompt["schema"]["table_names"] = linked.names
    answer.timings = {"generate_s": 0.0, "execute_s": 0.0, "total_s": 0.0}
    short = linked.names if linked is not None else {}
    return Pending(question, db, evidence, base, list(base), answer, started=time.perf_counter(), short=short)


def step(batch: list[Pending], backend: Backend, judge: Any, cfg: AskConfig) -> None:
    """One round for a batch of questions, from any rounds: one generate call, then every
    candidate through the judge. A question is ``done`` when it is answered, abstained on, or out
    of repairs; otherwise its next prompt carries the failing SQL and the engine's error."""
    params = GenParams(
        max_new_tokens=cfg.max_new_tokens,
        num_samples=cfg.samples,
        sample_temperature=cfg.temperature,
        stop_after_sql=cfg.stop_after_sql and not cfg.cot,
    )
    g0 = time.perf_counter()
    if cfg.ground_values and getattr(backend, "grounds_values", False):
        grounding = [p.db.grounding() for p in batch]
        outs = backend.generate([p.messages for p in batch], params, grounding=grounding)  # type: ignore[call-arg]
    else:
        outs = backend.generate([p.messages for p in batch], params)
    gen_s = time.perf_counter() - g0
    sqls = [[extract_sql(c.text, cot=cfg.cot) for c in comps] for comps in outs]
    if cfg.resolve_tables or any(p.short for p in batch):
        sqls = [
            [p.db.resolved(s, p.base, p.short, cfg.resolve_tables) for s in cand]
            for p, cand in zip(batch, sqls, strict=True)
        ]
    raws = [[c.text for c in comps] for comps in outs]
    e0 = time.perf_counter()
    groups = [(p.db.path, s) for p, s in zip(batch, sqls, strict=True)]
    results = judge.run(groups, keep_rows=cfg.max_rows, max_bytes=cfg.max_bytes)
    exec_s = time.perf_counter() - e0
    if cfg.query_bank and not cfg.cot and getattr(backend, "scores_answers", False):
        taken = _bank(batch, sqls, backend, results)
        if taken:  # only the questions whose first candidate the bank replaced run again
            e1 = time.perf_counter()
            again = judge.run(
                [(batch[k].db.path, sqls[k]) for k in taken], keep_rows=cfg.max_rows, max_bytes=cfg.max_bytes
            )
            for k, res in zip(taken, again, strict=True):
                results[k] = res
            exec_s += time.perf_counter() - e1
    for p, res, cand, raw, comps in zip(batch, results, sqls, raws, outs, strict=True):
        a = p.answer
        if p.round == 0 and comps:
            a.prompt["prompt_tokens"] = comps[0].prompt_tokens
        a.timings["generate_s"] = round(a.timings["generate_s"] + gen_s, 3)
        a.timings["execute_s"] = round(a.timings["execute_s"] + exec_s, 3)
        for k, sql in enumerate(cand):
            ok = bool(res.ok[k]) if k < len(res.ok) else False
            err = res.db_error or (res.errors[k] if k < len(res.errors) else None)
            etype = res.error_types[k] if k < len(res.error_types) else None
            a.attempts.append(Attempt(sql, ok, err, etype, raw[k], p.round))
        if any(res.ok):
            best = majority_vote(res.keys)
            votes = sum(1 for x in res.keys if x is not None and x == res.keys[best])
            a.vote_share = votes / len(res.keys)
            a.sql = cand[best]
            cols, rows = res.results[best]
            a.columns, a.rows, a.truncated = list(cols), [list(r) for r in rows], bool(res.truncated[best])
            a.reasoning = reasoning_before_sql(raw[best]) if cfg.cot else ""
            if a.vote_share < cfg.min_vote_share:
                a.abstain_reason = (
                    f"the candidates disagree: the most common result has {votes} of {len(res.keys)} votes "
                    f"({a.vote_share:.0%} < {cfg.min_vote_share:.0%})"
                )
            else:
                a.answered = True
            p.done = True
        elif p.round >= cfg.repairs:
            last = a.attempts[-1]
            why = "no SQL in the model's answer" if not last.sql else f"{last.error_type}: {last.error}"
            a.abstain_reason = f"no candidate ran after {cfg.repairs} repair(s); last error: {why}"
            p.done = True
        else:
            failed = a.attempts[-1]
            p.messages = [
                *p.base,
                {"role": "assistant", "content": failed.sql or raw[0]},
                {"role": "user", "content": REPAIR_PROMPT.format(sql=failed.sql, error=failed.error)},
            ]
            p.round += 1
        if p.done:
            a.timings["total_s"] = round(time.perf_counter() - p.started, 3)


def _bank(batch: list[Pending], sqls: list[list[str]], backend: Backend, results: list[Any]) -> list[int]:
    """The query bank's turn in a question's first round: its first candidate becomes the likeliest of the
    model's answer (out where it did not run: ``results``, the judge's run of this round's candidates) and
    the bank's nearest queries (:func:`sqltune.linking.bank.choose`). Returns the questions whose first
    candidate a bank query replaced (theirs must run again)."""
    from sqltune.linking.bank import NEAREST, PICK_FIELDS, choose, named_values, ran_first

    ks = [k for k, p in enumerate(batch) if p.round == 0 and not p.short and sqls[k]]
    banks = {k: batch[k].db.query_bank() for k in ks}
    ks = [k for k in ks if banks[k] is not None]
    by_db: dict[str, list[int]] = {}
    for k in ks:
        by_db.setdefault(batch[k].db.path, []).append(k)
    taken = []
    for path, group in by_db.items():
        hits = banks[group[0]].nearest([batch[k].question for k in group], k=NEAREST)
        own = [sqls[k][0] for k in group]
        ran = [ran_first(results[k], sqls[k][0]) for k in group]
        qs = [batch[k].question for k in group]
        named = named_values(batch[group[0]].db.value_index(), qs)
        picks = choose(
            backend, [batch[k].base for k in group], own, hits, ran, engine_of(path), questions=qs, named=named
        )
        for k, pick in zip(group, picks, strict=True):
            if "scores" in pick:
                batch[k].answer.bank = {x: pick[x] for x in PICK_FIELDS}
                if pick["from_bank"]:
                    sqls[k][0] = pick["sql"]
                    taken.append(k)
    return taken


def run_sql(judge: Any, db: Database, sql: str, cfg: AskConfig) -> dict[str, Any]:
    """Run one user-written query through the judge's read-only guard (timeout, row and byte caps).

    ``judge``: anything with ``run(db_path, [sql], keep_rows, max_bytes)`` (the server's pool of
    judges) or a :class:`~sqltune.judge.Judge`."""
    t0 = time.perf_counter()
    if isinstance(judge, Judge):
        res = judge.run([(db.path, [sql])], keep_rows=cfg.max_rows, max_bytes=cfg.max_bytes)[0]
    else:
        res = judge.run(db.path, [sql], cfg.max_rows, cfg.max_bytes)
    ok = bool(res.ok and res.ok[0])
    cols, rows = res.results[0] if res.results else ([], [])
    return {
        "db": db.name,
        "sql": sql,
        "ok": ok,
        "columns": list(cols),
        "rows": [list(r) for r in rows],
        "truncated": bool(res.truncated[0]) if res.truncated else False,
        "error": res.db_error or (res.errors[0] if res.errors else None),
        "error_type": res.error_types[0] if res.error_types else None,
        "seconds": round(time.perf_counter() - t0, 4),
    }


def ask_many(
    questions: list[tuple[str, Database, str]],
    backend: Backend,
    judge: Any,
    cfg: AskConfig,
    style: str = "ddl",
) -> list[Answer]:
    """Answer several ``(question, database, evidence)`` at once: one batched generate per round."""
    cfg.validate()
    pending = [start(q, db, ev, cfg, style) for q, db, ev in questions]
    todo = list(pending)
    while todo:
        step(todo, backend, judge, cfg)
        todo = [p for p in todo if not p.done]
    return [p.answer for p in pending]


def ask(
    question: str, db: Database, backend: Backend, judge: Judge, cfg: AskConfig, evidence: str = "", style: str = "ddl"
) -> Answer:
    """Answer one question (see the module docstring)."""
    return ask_many([(question, db, evidence)], backend, judge, cfg, style)[0]
