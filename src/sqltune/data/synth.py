"""``sqltune data synth``: verified question/SQL pairs from a SQLite file and nothing else.

For each database (``--db``, repeatable) synthesis profiles the live schema and values
(:mod:`sqltune.linking.profile`), then draws queries from every shape of :mod:`sqltune.linking.shapes` in turn,
with real tables, columns and values, until ``n`` pairs per database are kept or the shapes
stop giving new ones. Each query is executed read-only with a hard timeout
(the judge's workers: :meth:`sqltune.judge.Judge.run`) and **kept only when it runs, returns
rows (unless its question is about absence), not only NULLs, and a result that no pair kept so
far on that database returned** (the judge's :func:`~sqltune.judge.score.result_key`, a bag of
rows): no two pairs teach the same answer. Its difficulty is Spider's hardness of the SQL
(:func:`sqltune.judge.hardness.spider_hardness`), and its question one of the shape's phrasings,
drawn at random, so that the model does not learn one sentence pattern per shape; with
``teacher='openai'`` a teacher LLM rewrites each question, kept only when SQL derived back from
it returns the same result (:mod:`.synth_teacher`).

The output is the pairs format ``sqltune data build --benchmark pairs`` reads (question, sql,
db_path, difficulty; plus shape), written only when the whole run succeeds; the report
(``OUT.report.json``) counts pairs by hardness and shape, table and column coverage, and
rejected queries by reason. ``seed`` makes a run reproducible to the byte.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqltune.data.phrasing import add_forms
from sqltune.data.synth_teacher import ON_REJECT, rephrase
from sqltune.db.target import SQLGLOT_DIALECT
from sqltune.errors import ConfigError, DataError
from sqltune.io import write_json, write_jsonl
from sqltune.judge import Judge
from sqltune.judge.hardness import spider_hardness
from sqltune.linking.profile import DatabaseProfile, profile_database
from sqltune.linking.shapes import DrawStats, draw_verified
from sqltune.prompts import SCHEMA_STYLES


@dataclass(frozen=True)
class SynthConfig:
    """Settings of ``sqltune data synth``."""

    db: list[str] = field(default_factory=list)
    """The databases to synthesize from: SQLite files or URLs (postgresql://, mysql://, duckdb:///); the SQL
    is written in each one's dialect. Repeat --db for several."""
    allow_privileged_role: bool = False
    """Run on a PostgreSQL/MySQL role that can do more than read (refused otherwise)."""
    out: str = ""
    """Pairs JSONL (the report goes beside it as OUT.report.json)."""
    n: int = 500
    """Pairs to keep per database."""
    forms: int = 0
    """Up to this many more phrasings of each pair's question in other forms (a command, a fragment, a casual or
    polite message, units written otherwise: :mod:`sqltune.data.phrasing`), with the same SQL, beside the n."""
    seed: int = 0
    """Seed of every random draw: the same seed gives the same file."""
    timeout: float = 2.0
    """Seconds one query may run before it is stopped (and rejected)."""
    max_rows: int = 1000
    """Results with more rows are rejected as too large to teach from."""
    sample_rows: int = 2000
    """Rows read per table to profile its columns."""
    attempts: int = 20
    """Draws per wanted pair before synthesis stops looking (n * attempts in all)."""
    teacher: str = "builtin"
    """builtin (the shapes' own phrasings) | openai (a teacher LLM writes each question; kept only
    when SQL derived back from it returns the same result: :mod:`.synth_teacher`)."""
    teacher_url: str | None = None
    """openai: the server, e.g. http://localhost:8000/v1 (default $OPENAI_BASE_URL)."""
    teacher_model: str | None = None
    """openai: the model name the server knows."""
    api_key: str | None = field(default=None, repr=False)
    """openai: API key (default $OPENAI_API_KEY); never written to the report."""
    check_model: str | None = None
    """The model that derives SQL back from each teacher question (default: the teacher)."""
    check_url: str | None = None
    """Its server (default: the teacher's)."""
    on_reject: str = "builtin"
    """A teacher question that fails the back-check: builtin (keep the pair with its built-in
    question) | drop (drop the pair)."""
    teacher_schema: str = "ddl"
    """Schema style the teacher and the back-check are shown (ddl, text, compact)."""
    teacher_temperature: float = 0.7
    """Temperature of the question writer (the back-check runs at 0)."""
    teacher_max_tokens: int = 512
    teacher_concurrency: int = 8
    """Teacher requests in flight."""
    teacher_retries: int = 4
    """Retries of a failed request, with exponential backoff."""
    teacher_backoff: float = 0.5
    teacher_timeout: float = 120.0
    """Seconds per request."""

    def validate(self) -> None:
        problems = []
        if not self.db:
            problems.append("db: at least one database (--db FILE or --db URL)")
        if not self.out or not str(self.out).endswith(".jsonl"):
            problems.append(f"out: {self.out!r} must be a .jsonl file")
        if self.n < 1:
            problems.append(f"n: {self.n} must be at least 1")
        if self.timeout <= 0:
            problems.append(f"timeout: {self.timeout} must be positive")
        if self.teacher not in ("builtin", "openai"):
            problems.append(f"teacher: {self.teacher!r}: choose builtin or openai")
        if self.teacher == "openai" and not self.teacher_model:
            problems.append("teacher=openai needs --teacher-model (the name the server knows)")
        if self.on_reject not in ON_REJECT:
            problems.append(f"on_reject: {self.on_reject!r}: choose one of {', '.join(ON_REJECT)}")
        if self.teacher_schema not in SCHEMA_STYLES:
            problems.append(f"teacher_schema: {self.teacher_schema!r}: choose one of {', '.join(SCHEMA_STYLES)}")
        if self.teacher_concurrency < 1:
            problems.append("teacher_concurrency must be at least 1")
        if problems:
            raise ConfigError("invalid synth config:\n  - " + "\n  - ".join(problems))


def report_path(out: str | Path) -> Path:
    p = Path(out)
    return p.with_name(p.stem + ".report.json")


def synth_database(prof: DatabaseProfile, cfg: SynthConfig, rng: random.Random, judge: Any) -> tuple[list[dict], dict]:
    """Pairs for one profiled database and its part of the report; ``judge`` runs the queries
    (:func:`sqltune.linking.shapes.draw_verified`: read-only, a hard timeout, a row cap)."""
    kept: list[dict[str, Any]] = []
    stats = DrawStats()
    if cfg.n > 0:
        for d in draw_verified(prof, cfg.n * cfg.attempts, rng, judge, stats):
            cand = d.cand
            kept.append(
                {
                    "id": f"{prof.db_id}-synth-{len(kept)}",
                    "db_id": prof.db_id,
                    "db_path": prof.path,
                    "question": rng.choice(cand.questions),
                    "sql": cand.sql,
                    "difficulty": spider_hardness(cand.sql, SQLGLOT_DIALECT[prof.engine]),
                    "shape": cand.shape,
                    "tables": cand.tables,
                    "columns": cand.columns,
                    "rows": d.rows,
                    "_preview": d.preview,
                }
            )
            if len(kept) >= cfg.n:
                break
    draws, rejected = stats.draws, stats.rejected
    tables_used = Counter(t for r in kept for t in r["tables"])
    cols_all = {(t.name, c.name) for t in prof.tables for c in t.columns}
    cols_used = {(t, c) for r in kept for t in r["tables"][:1] for c in r["columns"]}
    part = {
        "db": prof.path,
        "pairs": len(kept),
        "asked": cfg.n,
        "draws": draws,
        "by_difficulty": dict(sorted(Counter(r["difficulty"] for r in kept).items())),
        "by_shape": dict(sorted(Counter(r["shape"] for r in kept).items())),
        "rejected": dict(sorted(rejected.items())),
        "tables_covered": f"{len(tables_used)}/{len(prof.tables)}",
        "tables_uncovered": sorted(t.name for t in prof.tables if t.name not in tables_used),
        "columns_covered": f"{len(cols_used & cols_all)}/{len(cols_all)}",
        "foreign_keys": {"declared": len(prof.foreign_keys), "inferred": len(prof.inferred_keys)},
    }
    if len(kept) < cfg.n:
        part["warning"] = (
            f"{len(kept)} of {cfg.n} pairs: the shapes gave no more new results on this database "
            f"after {draws} draws (see 'rejected')"
        )
    return kept, part


def synthesize(cfg: SynthConfig) -> dict[str, Any]:
    """Run synthesis; write the pairs and the report; return the report. Every database is
    profiled before anything is written, so a bad one stops the run with nothing half-written."""
    cfg.validate()
    t0 = time.perf_counter()
    profiles = [profile_database(db, cfg.sample_rows, cfg.allow_privileged_role) for db in cfg.db]
    ids = Counter(p.db_id for p in profiles)
    if any(v > 1 for v in ids.values()):
        dup = sorted(k for k, v in ids.items() if v > 1)
        raise DataError(f"databases with the same name (file stem) given twice: {', '.join(dup)}; rename one")
    rng = random.Random(cfg.seed)
    pairs: list[dict[str, Any]] = []
    parts = []
    with Judge(
        workers=2, timeout=cfg.timeout, max_rows=cfg.max_rows, allow_privileged_role=cfg.allow_privileged_role
    ) as judge:
        for prof in profiles:
            kept, part = synth_database(prof, cfg, random.Random(rng.random()), judge)
            pairs.extend(kept)
            parts.append(part)
        teacher_part = None
        if cfg.teacher == "openai" and pairs:
            out_path = Path(cfg.out)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            cache = out_path.with_name(out_path.stem + ".teacher_cache.jsonl")
            pairs, teacher_part = rephrase(pairs, cfg, judge, cache)
    for r in pairs:
        r.pop("_preview", None)
    pairs = add_forms(pairs, cfg.forms, cfg.seed)
    if not pairs:
        raise DataError(
            "no pair could be synthesized: every query was rejected ("
            + ", ".join(f"{k}: {v}" for p in parts for k, v in p["rejected"].items())
            + "); do the tables have rows?"
        )
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(out, pairs)
    by_db: dict[str, int] = defaultdict(int)
    for r in pairs:
        by_db[r["db_id"]] += 1
    report = {
        "written": len(pairs),
        "out": str(out),
        "by_difficulty": dict(sorted(Counter(r["difficulty"] for r in pairs).items())),
        "databases": parts,
        **({"teacher": teacher_part} if teacher_part else {}),
        "seconds": round(time.perf_counter() - t0, 2),
        "config": {k: v for k, v in asdict(cfg).items() if k != "api_key"},
    }
    write_json(report_path(out), report)
    return report


__all__ = ["SynthConfig", "synthesize", "synth_database", "report_path"]
