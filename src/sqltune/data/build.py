"""The data stage: examples from any source -> verified fine-tuning records (JSONL) + a report.

Steps, each counted in the report:

1. load the examples (Spider, BIRD, pairs, demo);
2. skip those whose database is missing, unknown or unreadable (``skipped`` by reason);
3. run every gold SQL read-only with a timeout; skip failures with their error;
4. render the prompt (one module, :mod:`sqltune.prompts`) with the schema read from the database;
5. with schema linking (``schema_filter``), each prompt's schema is what the linker keeps for its question
   (:func:`sqltune.prompts.question_schema`: the same function and settings serving uses), and the report
   gives the gold queries' recall; with a tokenizer: measure prompt lengths; over ``max_prompt_tokens``
   shrink the schema (sample rows, then column descriptions) and drop what still does not fit; every shrink
   and drop counted (nothing is ever cut by what the gold query uses: inference could not do the same);
6. optionally split by database into train / validation (no database in both), seeded;
7. write JSONL atomically, then the report beside it.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.data.example import Example, Skip
from sqltune.db.execute import ROW_CAP, check_sqlite_file
from sqltune.db.schema import Schema, introspect
from sqltune.db.target import SQLGLOT_DIALECT, display, engine_of
from sqltune.errors import ConfigError, ExecutionError, SqltuneError
from sqltune.io import sha256_file, write_json, write_jsonl
from sqltune.judge import Judge
from sqltune.judge.compare import outer_order_by
from sqltune.linking.link import SchemaFilterConfig
from sqltune.linking.metrics import recall as link_recall
from sqltune.linking.metrics import recall_summary
from sqltune.linking.values import ValueIndex
from sqltune.models.load import TokenCounter, load_tokenizer
from sqltune.splits import SPLITS, holdout
from sqltune.sqlutil import parse, rename_tables

BENCHMARKS = ("spider", "bird", "pairs")


@dataclass(frozen=True)
class BuildConfig(SchemaFilterConfig):
    """Options of ``sqltune data build`` (each is also a CLI flag)."""

    benchmark: str
    """Where the examples come from: spider, bird or pairs."""
    data_dir: str
    """The benchmark folder (or, for pairs, the folder or the pairs file itself)."""
    out: str
    """Output JSONL; the report is written beside it as <stem>.report.json."""
    split: str = ""
    """Benchmark split (spider: dev, train; bird: dev, train, mini_dev_sqlite; pairs: a file name in --data-dir,
    none when --data-dir is the pairs file)."""
    format: str = "chat"
    """Record format: chat (the cookbook's messages) or alpaca (instruction/input/output)."""
    schema: str = "ddl"
    """Schema style: ddl, text or compact."""
    sample_rows: int = 0
    """Sample rows per table shown in the prompt."""
    descriptions: bool = False
    """Show BIRD column/value descriptions when the database has them (off: the cookbook's prompt)."""
    verify: bool = True
    """Execute every gold SQL and skip those that fail."""
    timeout: float = 30.0
    """Seconds allowed to each gold query."""
    tokenizer: str | None = None
    """Tokenizer (model name, folder or hub id) for prompt-length statistics and the budget."""
    max_prompt_tokens: int | None = None
    """Token budget for the prompt (system + user turns with the chat template)."""
    val_fraction: float = 0.0
    """Hold out this share of examples as <stem>.validation.jsonl, whole units of val_split."""
    val_split: str = "auto"
    """auto (databases when there are several, else query structures) | database | structure
    (the SQL with literals masked: paraphrases of one query never straddle the split) | random."""
    seed: int = 0
    """Seed of the held-out split."""
    workers: int = 2
    """Worker processes that run the gold queries."""
    db: str | None = None
    """pairs: database for records that name none."""
    db_root: str | None = None
    """pairs: folder of <db_id>/<db_id>.sqlite for records that give a db_id."""
    limit: int | None = None
    """Use only the first N examples (for quick looks)."""
    target: str | None = None
    """Build for another engine: a database URL where {db_id} stands for each database's name
    (postgresql://reader@host/spider_{db_id}; load them with 'sqltune db load'). Each gold is transpiled
    from SQLite with sqlglot, run there, and kept only when it returns the SQLite gold's result; the
    schema and the prompt are the target's."""
    allow_privileged_role: bool = False
    """target: run on a role that can do more than read (refused otherwise)."""

    def validate(self) -> None:
        problems = []
        if self.benchmark not in BENCHMARKS:
            problems.append(f"benchmark={self.benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
        if self.benchmark in ("spider", "bird") and not self.split:
            problems.append(
                f"split: required for {self.benchmark} (--split dev, train"
                + (", mini_dev_sqlite)" if self.benchmark == "bird" else ")")
            )
        if self.format not in prompts.RECORD_FORMATS:
            problems.append(f"format={self.format!r}: choose one of {', '.join(prompts.RECORD_FORMATS)}")
        if self.schema not in prompts.SCHEMA_STYLES:
            problems.append(f"schema={self.schema!r}: choose one of {', '.join(prompts.SCHEMA_STYLES)}")
        if self.sample_rows < 0:
            problems.append(f"sample_rows={self.sample_rows}: must be 0 or more")
        if self.timeout <= 0:
            problems.append(f"timeout={self.timeout}: must be positive")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction={self.val_fraction}: must be in [0, 1)")
        if self.target is not None and not self.verify:
            problems.append(
                "target: needs verify=true (a transpiled gold is kept only when its result is the SQLite gold's)"
            )
        if self.target is not None and engine_of(self.target) not in ("postgresql", "mysql", "duckdb"):
            problems.append(
                f"target={display(self.target)!r}: a postgresql://, mysql:// or duckdb:/// URL with {{db_id}}"
            )
        if self.val_split not in SPLITS:
            problems.append(f"val_split={self.val_split!r}: choose one of {', '.join(SPLITS)}")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 16:
            problems.append(f"max_prompt_tokens={self.max_prompt_tokens}: must be at least 16")
        try:
            settings = self.link_settings(budget=self.max_prompt_tokens)
        except ConfigError as e:
            problems.append(str(e))
        else:
            if settings.mode == "budget" and self.tokenizer is None and self.max_prompt_tokens is None:
                problems.append("schema_filter=budget counts tokens: give --tokenizer (or --max-prompt-tokens)")
        if not str(self.out).endswith(".jsonl"):
            problems.append(f"out={self.out!r}: the output must be a .jsonl file")
        if problems:
            raise ConfigError("invalid data build options:\n  " + "\n  ".join(problems))


def report_path(out: str | Path) -> Path:
    out = Path(out)
    return (
        out.with_name(out.name[: -len(".jsonl")] + ".report.json")
        if out.name.endswith(".jsonl")
        else out.with_suffix(".report.json")
    )


def validation_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name[: -len(".jsonl")] + ".validation.jsonl")


def load_examples(cfg: BuildConfig) -> tuple[list[Example], list[Path], set[str] | None]:
    if cfg.benchmark == "spider":
        from sqltune.data.spider import load_spider

        return load_spider(cfg.data_dir, cfg.split)
    if cfg.benchmark == "bird":
        from sqltune.data.bird import load_bird

        return load_bird(cfg.data_dir, cfg.split)
    from sqltune.data.pairs import load_pairs

    return load_pairs(cfg.data_dir, cfg.split, db=cfg.db, db_root=cfg.db_root)


def length_stats(lengths: list[int]) -> dict[str, Any] | None:
    if not lengths:
        return None
    s = sorted(lengths)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    return {
        "n": len(s),
        "mean": round(statistics.fmean(s), 1),
        "median": statistics.median(s),
        "p90": p90,
        "max": s[-1],
        "min": s[0],
    }


@dataclass
class _DbState:
    schema: Schema | None = None
    error: str = ""
    texts: dict[Any, str] = field(default_factory=dict)
    index: Any = None
    """The database's value index (schema linking with values), opened once."""


def is_training_split(split: str) -> bool:
    return "train" in split.lower()


def build_records(
    examples: list[Example],
    cfg: BuildConfig,
    known_db_ids: set[str] | None = None,
    counter: TokenCounter | None = None,
) -> tuple[list[dict[str, Any]], list[Skip], dict[str, Any]]:
    """Verify, render and budget the examples. Returns records, skips and statistics."""
    skips: list[Skip] = []
    states: dict[str, _DbState] = {}
    candidates: list[tuple[Example, _DbState]] = []
    for ex in examples:
        st = states.get(ex.db_path)
        if st is None:
            st = states[ex.db_path] = _DbState()
            try:
                if "://" not in ex.db_path:
                    check_sqlite_file(ex.db_path)
                st.schema = introspect(ex.db_path, db_id=ex.db_id, sample_rows=cfg.sample_rows)
                if not cfg.descriptions and st.schema.has_descriptions:
                    st.schema = st.schema.without_descriptions()
            except ExecutionError as e:
                st.error = str(e)
        if st.schema is None:
            missing = not Path(ex.db_path).exists()
            if missing and known_db_ids is not None and ex.db_id not in known_db_ids:
                reason = "unknown_db_id"
            else:
                reason = "missing_database" if missing else "unreadable_database"
            skips.append(Skip(ex.id, ex.db_id, reason, st.error))
            continue
        candidates.append((ex, st))
    # Every gold runs through the judge (read-only, killable workers, the one row cap), which also
    # gives each one's Spider hardness and outer ORDER BY for the record, so eval need not parse it.
    facts: dict[int, dict[str, Any]] = {}
    kept: list[tuple[Example, _DbState]] = []
    if cfg.verify:
        runnable = list(range(len(candidates)))
        with Judge(workers=cfg.workers, timeout=cfg.timeout) as judge:
            results = judge.run([(candidates[k][0].db_path, [candidates[k][0].sql]) for k in runnable], analysis=True)
        verdicts = dict(zip(runnable, results, strict=True))
        for k, (ex, st) in enumerate(candidates):
            res = verdicts.get(k)
            if res is not None and (res.db_error or not res.ok[0]):
                error = res.db_error or res.errors[0] or ""
                reason = "gold_timeout" if res.error_types and res.error_types[0] == "timeout" else "gold_failed"
                skips.append(Skip(ex.id, ex.db_id, reason, error))
                continue
            if res is not None and res.facts is not None:
                facts[id(ex)] = res.facts
            kept.append((ex, st))
    else:
        kept = candidates
    if cfg.target is not None:
        kept = _retarget(kept, cfg, states, skips)

    settings = cfg.link_settings(budget=cfg.max_prompt_tokens)

    def schema_text(st: _DbState, key: Any, schema: Schema) -> str:
        if key not in st.texts:
            st.texts[key] = prompts.render_schema(schema, cfg.schema)
        return st.texts[key]

    def linked_text(ex: Example, st: _DbState) -> str:
        assert st.schema is not None
        if settings.needs_index and st.index is None:
            st.index = ValueIndex.open(ex.db_path, st.schema, allow_privileged_role=cfg.allow_privileged_role)
        txt, linked = prompts.question_schema(
            st.schema, ex.question, ex.evidence, cfg.schema, settings, st.index, counter, _dialect(st)
        )
        if linked is not None:
            recalls[id(ex)] = link_recall(linked, ex.sql, st.schema, _dialect(st))
            if linked.names:
                shown[id(ex)] = linked.names
        return txt

    recalls: dict[int, dict[str, Any]] = {}
    shown: dict[int, dict[str, str]] = {}  # the tables a prompt shows by a short name: {shown: real}
    # Render with the full schema, or what schema linking keeps for each question.
    if settings.active:
        rendered = [(ex, st, linked_text(ex, st)) for ex, st in kept]
    else:
        rendered = [(ex, st, schema_text(st, "full", st.schema)) for ex, st in kept]  # type: ignore[arg-type]
    shrunk: Counter[str] = Counter()
    shrunk_examples = 0
    lengths: list[int | None] = [None] * len(rendered)
    if counter is not None:
        msgs = [
            prompts.prompt_messages(txt, ex.question, ex.evidence, dialect=_dialect(st)) for ex, st, txt in rendered
        ]
        lengths = list(counter.count_many(msgs))
        budget = cfg.max_prompt_tokens
        if budget is not None:
            for i, (ex, st, txt) in enumerate(rendered):
                if lengths[i] <= budget:  # type: ignore[operator]
                    continue
                schema = st.schema
                assert schema is not None
                steps: list[tuple[Any, Schema]] = []
                if any(t.sample_rows for t in schema.tables):
                    schema = schema.without_rows()
                    steps.append(("sample_rows", schema))
                if schema.has_descriptions:
                    schema = schema.without_descriptions()
                    steps.append(("descriptions", schema))
                if settings.active:
                    steps = []  # the linker's schema is what serving rebuilds: not shrunk further
                done: list[Any] = []
                if steps:
                    shrunk_examples += 1
                for step, sch in steps:
                    done.append(step)
                    txt = schema_text(st, tuple(done), sch)
                    n = counter.count(prompts.prompt_messages(txt, ex.question, ex.evidence, dialect=_dialect(st)))
                    shrunk[step if isinstance(step, str) else step[0]] += 1
                    rendered[i] = (ex, st, txt)
                    lengths[i] = n
                    if n <= budget:
                        break
    records = []
    final_lengths = []
    for i, (ex, st, txt) in enumerate(rendered):
        if cfg.max_prompt_tokens is not None and lengths[i] is not None and lengths[i] > cfg.max_prompt_tokens:  # type: ignore[operator]
            skips.append(Skip(ex.id, ex.db_id, "over_token_budget", f"{lengths[i]} tokens > {cfg.max_prompt_tokens}"))
            continue
        rec: dict[str, Any] = ex.to_dict()
        if "://" not in ex.db_path:
            rec["db_path"] = str(Path(ex.db_path).resolve())  # a dataset works from any directory
        rec["schema_style"] = cfg.schema
        if lengths[i] is not None:
            rec["prompt_tokens"] = lengths[i]
            final_lengths.append(lengths[i])
        if id(ex) in facts:
            rec["gold_hardness"] = facts[id(ex)]["hardness"]
            rec["gold_ordered"] = facts[id(ex)]["order_by"]
            rec["gold_normalized"] = facts[id(ex)]["normalized"]
        if _dialect(st) != "sqlite":
            rec["dialect"] = _dialect(st)
        if settings.active:
            rec["schema_filter"] = settings.to_dict()
            rec["schema_recall"] = recalls.get(id(ex))
        target = ex.sql
        if id(ex) in shown:  # the model answers with the names its prompt shows
            rec["table_names"] = shown[id(ex)]
            real = {r: s for s, r in shown[id(ex)].items()}
            target = rename_tables(ex.sql, real, SQLGLOT_DIALECT.get(_dialect(st), _dialect(st)))
        rec.update(prompts.make_record(cfg.format, txt, ex.question, ex.evidence, target, _dialect(st)))
        records.append(rec)
    stats = {
        "schema_linking": recall_summary(settings, [r["schema_recall"] for r in records if r.get("schema_recall")]),
        "shrunk": dict(shrunk),
        "shrunk_examples": shrunk_examples,
        "prompt_tokens": length_stats([x for x in final_lengths if x is not None]),
    }
    return records, skips, stats


def _dialect(st: _DbState) -> str:
    return st.schema.dialect if st.schema is not None else "sqlite"


def _retarget(
    kept: list[tuple[Example, _DbState]], cfg: BuildConfig, states: dict[str, _DbState], skips: list[Skip]
) -> list[tuple[Example, _DbState]]:
    """The examples for ``cfg.target``: each gold transpiled, run on the target and kept only when it returns
    the SQLite gold's result (rows as bags, or in order when the gold orders them); failures are skips."""
    from dataclasses import replace

    from sqltune.db.dialect import agree, agree_up_to_ties, transpile

    assert cfg.target is not None
    engine = engine_of(cfg.target)
    moved: list[tuple[Example, str]] = []
    for ex, st in kept:
        assert st.schema is not None
        cols = [c.name for t in st.schema.tables for c in t.columns]
        try:
            moved.append((ex, transpile(ex.sql, engine, cols)))
        except ExecutionError as e:
            skips.append(Skip(ex.id, ex.db_id, "transpile_failed", str(e)))
    judge = Judge(workers=cfg.workers, timeout=cfg.timeout, allow_privileged_role=cfg.allow_privileged_role)
    big = 1 << 40
    src = judge.run([(ex.db_path, [ex.sql]) for ex, _ in moved], keep_rows=ROW_CAP, max_bytes=big)
    urls = [cfg.target.replace("{db_id}", ex.db_id) for ex, _ in moved]
    dst = judge.run([(u, [sql]) for u, (_, sql) in zip(urls, moved, strict=True)], keep_rows=ROW_CAP, max_bytes=big)

    def sqlite_rows(db: str) -> Any:
        def run(q: str) -> list[tuple[Any, ...]]:
            r = judge.run([(db, [q])], keep_rows=ROW_CAP, max_bytes=big)[0]
            if r.db_error or not r.ok[0]:
                raise ExecutionError(r.db_error or r.errors[0] or "failed")
            return r.results[0][1]

        return run

    out = []
    for (ex, sql), url, a, b in zip(moved, urls, src, dst, strict=True):
        if b.db_error or not b.ok[0]:
            skips.append(Skip(ex.id, ex.db_id, "target_failed", f"{b.db_error or b.errors[0]} | {sql}"))
            continue
        ordered = outer_order_by(parse(ex.sql), ex.sql)
        rows_a, rows_b = (a.results[0][1] if a.results else []), b.results[0][1]
        same = bool(a.ok and a.ok[0]) and (
            agree(rows_a, rows_b, ordered=ordered)
            # ORDER BY … LIMIT over tied rows: another of the tied rows is as right
            or agree_up_to_ties(ex.sql, rows_a, rows_b, sqlite_rows(ex.db_path))
        )
        if not same:
            skips.append(Skip(ex.id, ex.db_id, "target_differs", f"{len(rows_a)} vs {len(rows_b)} rows | {sql}"))
            continue
        found = states.get(url)
        if found is None:
            found = states[url] = _DbState()
            try:
                found.schema = introspect(url, db_id=ex.db_id, sample_rows=cfg.sample_rows)
            except ExecutionError as e:
                found.error = str(e)
        st = found
        if st.schema is None:
            skips.append(Skip(ex.id, ex.db_id, "unreadable_database", st.error))
            continue
        out.append((replace(ex, sql=sql, db_path=url), st))
    judge.close()
    return out


def summarize_skips(skips: list[Skip]) -> dict[str, Any]:
    by_reason = Counter(s.reason for s in skips)
    missing = Counter(s.db_id for s in skips if s.reason in ("missing_database", "unknown_db_id"))
    return {
        "skipped": dict(sorted(by_reason.items())),
        "missing_databases": dict(sorted(missing.items())),
        "failed_gold": [s.to_dict() for s in skips if s.reason in ("gold_failed", "gold_timeout")],
        "failed_transpiled": [
            s.to_dict() for s in skips if s.reason in ("transpile_failed", "target_failed", "target_differs")
        ],
        "skipped_examples": [s.to_dict() for s in skips],
    }


def make_counter(cfg: BuildConfig) -> TokenCounter | None:
    name = cfg.tokenizer
    if name is None and cfg.max_prompt_tokens is not None:
        from sqltune.models.registry import DEFAULT_MODEL

        name = DEFAULT_MODEL
    if name is None:
        return None
    return TokenCounter(load_tokenizer(name), name)


def split_warnings(cfg: BuildConfig, n: int, how: str) -> list[str]:
    """What the report says when ``val_fraction`` could not be honoured as asked."""
    if cfg.val_fraction <= 0:
        return []
    if how == "none":
        return [f"val_fraction={cfg.val_fraction} was not honoured: {n} record(s), nothing to hold out"]
    if how == "random" and cfg.val_split != "random":
        return [
            f"val_fraction={cfg.val_fraction}: records held out at random, not by {cfg.val_split}: all of them "
            "share one database and one query structure, so paraphrases of one query are on both sides"
        ]
    return []


def build(
    cfg: BuildConfig, examples: list[Example] | None = None, counter: TokenCounter | None = None
) -> dict[str, Any]:
    """Run the data stage; write ``cfg.out`` (and a validation file) and the report. Returns the report."""
    cfg.validate()
    t0 = time.perf_counter()
    known: set[str] | None = None
    files: list[Path] = []
    if examples is None:
        examples, files, known = load_examples(cfg)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        dup = [k for k, v in Counter(ids).items() if v > 1][:5]
        raise SqltuneError(f"duplicate example ids: {', '.join(dup)}")
    if counter is None:
        counter = make_counter(cfg)
    records, skips, stats = build_records(examples, cfg, known, counter)
    train, val, how = holdout(records, cfg.val_fraction, cfg.seed, cfg.val_split)
    out = Path(cfg.out)
    write_jsonl(out, train)
    outputs = {"train" if val else "records": {"path": str(out), "n": len(train), "sha256": sha256_file(out)}}
    if val:
        vp = validation_path(out)
        write_jsonl(vp, val)
        outputs["validation"] = {
            "path": str(vp),
            "n": len(val),
            "sha256": sha256_file(vp),
            "databases": sorted({r["db_id"] for r in val}),
            "split": how,
        }
    db_paths = sorted({e.db_path for e in examples if "://" not in e.db_path and Path(e.db_path).is_file()})
    report: dict[str, Any] = {
        "written": len(records),
        **summarize_skips(skips),
        "input_examples": len(examples),
        "difficulty": dict(sorted(Counter(r["difficulty"] or "unlabelled" for r in records).items())),
        "databases": len({r["db_id"] for r in records}),
        "schema_linking": stats["schema_linking"],
        "shrunk": stats["shrunk"],
        "shrunk_examples": stats["shrunk_examples"],
        "prompt_tokens": stats["prompt_tokens"],
        "tokenizer": counter.name if counter is not None else None,
        "outputs": outputs,
        "warnings": split_warnings(cfg, len(records), how),
        "sources": {str(f): sha256_file(f) for f in files},
        "databases_sha256": {p: sha256_file(p) for p in db_paths},
        "config": asdict(cfg),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(report_path(out), report)
    return report
