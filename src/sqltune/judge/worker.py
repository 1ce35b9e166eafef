"""What runs inside the judge's worker processes: execute, compare, diagnose, vote.

Everything heavy happens here, in a worker that can be killed, so that only small verdicts
travel back to the parent (never full result sets, unless a fresh gold result is to be cached,
and then pickled once, here). Two kinds of job:

* :class:`ScoreJob`: a gold query and one or more candidates; the verdict on each candidate,
  the vote among them, optional VES timing and exact match (the eval stage);
* :class:`RunJob`: queries without a gold; whether each ran, and the identity of its result
  (self-consistency voting, gold verification, serving).
"""

from __future__ import annotations

import math
import pickle
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqltune.db.engine import connect
from sqltune.db.execute import ROW_CAP, QueryResult
from sqltune.db.executor import Executor
from sqltune.errors import ExecutionError
from sqltune.judge.compare import outer_order_by
from sqltune.judge.hardness import hardness_of
from sqltune.judge.match import normalize_sql, normalized_match
from sqltune.judge.score import Verdict, failed, majority_vote, result_key, score_candidate
from sqltune.sqlutil import parse

_CONNS: OrderedDict[tuple[str, bool], Executor] = OrderedDict()
# SQLite functions whose result changes from one run to the next: such a query is always run
_VOLATILE = re.compile(
    r"(?i)\b(random|randomblob|changes|total_changes|last_insert_rowid|date|time|datetime|julianday|strftime|"
    r"unixepoch|timediff|current_date|current_time|current_timestamp)\b"
)
_MAX_CONNS = 16


def _conn(db: str, privileged: bool = False) -> Executor:
    """The worker's open executor for ``db`` (a SQLite path or a URL), kept for the next job."""
    key = (db, privileged)
    c = _CONNS.get(key)
    if c is not None:
        _CONNS.move_to_end(key)
        return c
    c = connect(db, allow_privileged_role=privileged)
    _CONNS[key] = c
    if len(_CONNS) > _MAX_CONNS:
        _, old = _CONNS.popitem(last=False)
        old.close()
    return c


def pack(r: QueryResult) -> dict[str, Any]:
    return {
        "ok": r.ok,
        "rows": r.rows,
        "columns": r.columns,
        "error": r.error,
        "error_type": r.error_type,
        "truncated": r.truncated,
    }


@dataclass(frozen=True)
class ScoreJob:
    """One example: its gold and its candidates (the first is the prediction)."""

    db_path: str
    gold_sql: str
    """The gold query as run (DISTINCT stripped when asked)."""
    gold_text: str
    """The gold query as written (parsed for hardness, outer ORDER BY and exact match)."""
    preds: list[str]
    mode: str
    timeout: float
    max_rows: int = ROW_CAP
    analysis: bool = True
    ves_repeats: int = 0
    gold: dict[str, Any] | None = None
    """A cached gold entry (result, order_matters, hardness): the gold query is not run again."""
    facts: dict[str, Any] | None = None
    """The gold's ``hardness`` and ``order_by``, when the data stage wrote them: no parse needed."""
    metrics: tuple[str, ...] = ("ex", "soft_f1", "normalized_match")
    """Which match metrics to compute besides EX (see sqltune.evaluate.run.METRICS)."""


@dataclass
class ScoreResult:
    verdicts: list[Verdict] = field(default_factory=list)
    gold_fresh: bytes | None = None
    """A newly computed gold entry, pickled, for the cache."""
    gold_ok: bool | None = None
    gold_error: str | None = None
    gold_error_type: str | None = None
    gold_rows: int = 0
    gold_truncated: bool = False
    hardness: str = ""
    vote: int = 0
    ves: float | None = None
    normalized_match: bool | None = None
    spider_em: bool | None = None
    spider_official: bool | None = None
    """Whether the official Spider script could score this pair the same way."""
    spider_partial: dict[str, dict[str, int]] | None = None
    token_match: float | None = None
    exact_match: bool | None = None
    db_error: str | None = None
    """The database could not be opened."""
    killed: bool = False
    """The worker passed its deadline and was killed: every candidate is a timeout."""


@dataclass(frozen=True)
class RunJob:
    """Queries on one database, judged only on whether they run and what they return."""

    db_path: str
    sqls: list[str]
    timeout: float
    max_rows: int = ROW_CAP
    analysis: bool = False
    """Also give the first query's Spider hardness and outer ORDER BY (for the data stage)."""
    keep_rows: int = 0
    """Return up to this many rows of each result (and its columns), within ``max_bytes``."""
    max_bytes: int = 1_000_000
    """Bytes of returned rows at most (their JSON-ish text size); more is cut and flagged truncated."""


@dataclass
class RunResult:
    ok: list[bool] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    error_types: list[str | None] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    facts: dict[str, Any] | None = None
    db_error: str | None = None
    killed: bool = False
    results: list[tuple[list[str], list[tuple[Any, ...]]]] = field(default_factory=list)
    """With keep_rows: (columns, rows) per query, cut to keep_rows rows and max_bytes."""


def _cut(rows: list[tuple[Any, ...]], keep: int, max_bytes: int) -> tuple[list[tuple[Any, ...]], bool]:
    out: list[tuple[Any, ...]] = []
    size = 0
    for r in rows[:keep]:
        size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in r) + 2 * len(r)
        if size > max_bytes:
            return out, True
        out.append(r)
    return out, len(rows) > keep


def _time_query(conn: Executor, sql: str, repeats: int, timeout: float) -> float | None:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = conn.run(sql, timeout=timeout, max_rows=None)
        if not r.ok:
            return None
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def gold_facts(sql: str) -> dict[str, Any]:
    """What the judge needs from the gold's parse: its Spider hardness, whether its outermost
    query orders the result, and its normalized text (for exact match); one parse, once."""
    tree = parse(sql)
    facts = {"hardness": hardness_of(tree), "order_by": outer_order_by(tree, sql)}
    facts["normalized"] = normalize_sql(sql, tree) if tree is not None else None
    return facts


def score(job: ScoreJob, privileged: bool = False) -> ScoreResult:
    try:
        conn = _conn(job.db_path, privileged)
    except ExecutionError as e:
        return ScoreResult(db_error=str(e))
    entry = job.gold
    fresh = None
    tree = None
    if entry is None:
        if job.facts is not None:
            hardness, ordered = job.facts.get("hardness", ""), bool(job.facts.get("order_by"))
        else:
            tree = parse(job.gold_text) if job.analysis else None
            hardness, ordered = hardness_of(tree), outer_order_by(tree, job.gold_text)
        entry = fresh = {
            "result": pack(conn.run(job.gold_sql, timeout=job.timeout, max_rows=job.max_rows)),
            "order_matters": ordered,
            "hardness": hardness,
        }
    gold = entry["result"]
    order_matters = job.mode == "multiset" and entry["order_matters"]
    out = ScoreResult(
        # a fresh gold entry travels pickled, so the parent can store it without unpickling the rows
        gold_fresh=pickle.dumps(fresh, protocol=5) if fresh is not None else None,
        gold_ok=gold["ok"],
        gold_error=gold["error"],
        gold_error_type=gold["error_type"],
        gold_rows=len(gold["rows"]),
        gold_truncated=gold["truncated"],
        hardness=entry["hardness"],
        normalized_match=False if job.analysis and "normalized_match" in job.metrics else None,
    )
    _text_metrics(job, out)
    if not gold["ok"]:
        return out
    several = len(job.preds) > 1
    for sql in job.preds:
        if not sql or not sql.strip():
            out.verdicts.append(failed("empty or unextractable output", "empty_prediction"))
            continue
        if sql == job.gold_sql and not _VOLATILE.search(sql):
            # the very query the gold is, on the same read-only database: its result is the gold's
            rows, columns, truncated = gold["rows"], gold["columns"], gold["truncated"]
        else:
            r = conn.run(sql, timeout=job.timeout, max_rows=job.max_rows)
            if not r.ok:
                out.verdicts.append(failed(r.error, r.error_type))
                continue
            rows, columns, truncated = r.rows, r.columns, r.truncated
        out.verdicts.append(score_candidate(gold, rows, columns, job.mode, order_matters, truncated, several))
    if several:
        out.vote = majority_vote([v.key for v in out.verdicts])
    first = out.verdicts[0] if out.verdicts else None
    first_sql = job.preds[0] if job.preds else ""
    # Equal normalized SQL means equal results, so only a prediction that is right by execution
    # (or right up to row order) can be an exact match: the others are not parsed at all.
    if out.normalized_match is not None and first and (first.correct or first.error_type == "wrong_order"):
        known = job.facts.get("normalized") if job.facts else None
        out.normalized_match = normalized_match(job.gold_text, first_sql, tree, gold_normalized=known)
    if job.ves_repeats and first and first.correct:
        g_t = _time_query(conn, job.gold_sql, job.ves_repeats, job.timeout)
        p_t = _time_query(conn, first_sql, job.ves_repeats, job.timeout)
        if g_t and p_t:
            out.ves = math.sqrt(g_t / p_t)
    return out


def _text_metrics(job: ScoreJob, out: ScoreResult) -> None:
    """The metrics that read only the SQL text (and, for Spider's EM, the schema)."""
    pred = job.preds[0] if job.preds else ""
    if "spider_em" in job.metrics:
        from sqltune.judge.spider_em import score as spider_score

        s = spider_score(job.gold_text, pred or "", job.db_path)
        out.spider_em, out.spider_official, out.spider_partial = s["spider_em"], s["official"], s["partial"]
    if "token_match" in job.metrics or "exact_match" in job.metrics:
        from sqltune.judge.text import exact_match, token_match

        if "token_match" in job.metrics:
            out.token_match = token_match(job.gold_text, pred) if pred else 0.0
        if "exact_match" in job.metrics:
            out.exact_match = exact_match(job.gold_text, pred) if pred else False


def run(job: RunJob, privileged: bool = False) -> RunResult:
    try:
        conn = _conn(job.db_path, privileged)
    except ExecutionError as e:
        return RunResult(db_error=str(e))
    out = RunResult()
    for sql in job.sqls:
        if not sql or not sql.strip():
            r = QueryResult(False, error="empty or unextractable output", error_type="empty_prediction")
        else:
            r = conn.run(sql, timeout=job.timeout, max_rows=job.max_rows)
        out.ok.append(r.ok)
        out.errors.append(r.error)
        out.error_types.append(r.error_type)
        out.keys.append(result_key(r.rows) if r.ok else None)
        out.rows.append(len(r.rows))
        truncated = r.truncated
        if job.keep_rows:
            kept, cut = _cut(r.rows, job.keep_rows, job.max_bytes)
            truncated = truncated or cut
            out.results.append((r.columns, kept))
        out.truncated.append(truncated)
    if job.analysis and job.sqls:
        out.facts = gold_facts(job.sqls[0])
    return out


def work(job: ScoreJob | RunJob, privileged: bool = False) -> ScoreResult | RunResult:
    """The worker pool's one function. ``privileged``: run on a database role that can do more than
    read (``--allow-privileged-role``; every other guard of the engine's executor still holds)."""
    return score(job, privileged) if isinstance(job, ScoreJob) else run(job, privileged)
