"""Scoring one example inside a worker process: run gold and candidates, compare, diagnose, vote.

Everything heavy happens here, in the worker, so that only small verdicts travel back to the
parent (never full result sets, unless a fresh gold result is to be cached).
"""

from __future__ import annotations

import hashlib
import math
import pickle
import sqlite3
import time
from collections import OrderedDict
from typing import Any

from sqltune.db.execute import QueryResult, open_readonly, run_query
from sqltune.errors import ExecutionError
from sqltune.evaluate.compare import diagnose_miss, normalize_rows, outer_order_by, results_equal
from sqltune.evaluate.hardness import hardness_of
from sqltune.evaluate.metrics import exact_match, soft_f1, token_match
from sqltune.sqlutil import parse

_CONNS: OrderedDict[str, sqlite3.Connection] = OrderedDict()
_MAX_CONNS = 16


def _conn(path: str) -> sqlite3.Connection:
    c = _CONNS.get(path)
    if c is not None:
        _CONNS.move_to_end(path)
        return c
    c = open_readonly(path)
    _CONNS[path] = c
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


def result_key(rows: list[tuple[Any, ...]]) -> str:
    """Identity of a result as a bag of rows (for voting)."""
    norm = sorted(repr(r) for r in normalize_rows(rows))
    return hashlib.sha256("\n".join(norm).encode("utf-8", errors="surrogatepass")).hexdigest()


def _time_query(conn: sqlite3.Connection, sql: str, repeats: int, timeout: float) -> float | None:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = run_query(conn, sql, timeout=timeout, max_rows=None)
        if not r.ok:
            return None
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _failed(error: str | None, error_type: str | None) -> dict[str, Any]:
    return {
        "ok": False,
        "error": error,
        "error_type": error_type,
        "correct": False,
        "soft_f1": 0.0,
        "rows": 0,
        "truncated": False,
    }


def score_item(job: dict[str, Any]) -> dict[str, Any]:
    """Score one example; see the module docstring. ``job`` keys are set by ``evaluate.run``."""
    try:
        conn = _conn(job["db_path"])
    except ExecutionError as e:
        return {"db_error": str(e)}
    timeout, max_rows = job["timeout"], job["max_rows"]
    entry = job["gold"]
    fresh = None
    tree = None
    if entry is None:
        tree = parse(job["gold_orig"]) if job.get("analysis", True) else None
        entry = fresh = {
            "result": pack(run_query(conn, job["gold_sql"], timeout=timeout, max_rows=max_rows)),
            "order_matters": outer_order_by(tree, job["gold_orig"]),
            "hardness": hardness_of(tree),
        }
    gold = entry["result"]
    order_matters = job["mode"] == "multiset" and entry["order_matters"]
    first_sql = job["preds"][0] if job["preds"] else ""
    out: dict[str, Any] = {
        # a fresh gold entry travels pickled, so the parent can store it without unpickling the rows
        "gold": pickle.dumps(fresh, protocol=5) if fresh is not None else None,
        "gold_ok": gold["ok"],
        "gold_error": gold["error"],
        "gold_error_type": gold["error_type"],
        "gold_rows": len(gold["rows"]),
        "gold_truncated": gold["truncated"],
        "hardness": entry["hardness"],
        "preds": [],
        "vote": 0,
        "ves": None,
        "exact_match": False,
        "token_match": token_match(job["gold_orig"], first_sql) if first_sql else 0.0,
    }
    if not gold["ok"]:
        return out
    keys: list[str | None] = []
    for sql in job["preds"]:
        if not sql or not sql.strip():
            out["preds"].append(_failed("empty or unextractable output", "empty_prediction"))
            keys.append(None)
            continue
        r = run_query(conn, sql, timeout=timeout, max_rows=max_rows)
        if not r.ok:
            out["preds"].append(_failed(r.error, r.error_type))
            keys.append(None)
            continue
        correct = results_equal(gold["rows"], r.rows, job["mode"], order_matters, gold["columns"], r.columns)
        etype = (
            None
            if correct
            else diagnose_miss(gold["rows"], r.rows, gold["columns"], r.columns, job["mode"], order_matters)
        )
        out["preds"].append(
            {
                "ok": True,
                "error": None,
                "error_type": etype,
                "correct": correct,
                "soft_f1": soft_f1(gold["rows"], r.rows),
                "rows": len(r.rows),
                "truncated": r.truncated,
            }
        )
        keys.append(result_key(r.rows) if len(job["preds"]) > 1 else None)
    if len(job["preds"]) > 1:
        out["vote"] = majority_vote(keys)
    first = out["preds"][0] if out["preds"] else None
    # Equal normalized SQL means equal results, so only a prediction that is right by execution
    # (or right up to row order) can be an exact match: the others are not parsed at all.
    if not job.get("analysis", True):
        out["exact_match"] = None
    elif first and (first["correct"] or first["error_type"] == "wrong_order"):
        out["exact_match"] = exact_match(job["gold_orig"], first_sql, tree)
    if job.get("ves_repeats") and first and first["correct"]:
        g_t = _time_query(conn, job["gold_sql"], job["ves_repeats"], timeout)
        p_t = _time_query(conn, first_sql, job["ves_repeats"], timeout)
        if g_t and p_t:
            out["ves"] = math.sqrt(g_t / p_t)
    return out


def majority_vote(keys: list[str | None]) -> int:
    """Index of the chosen candidate: the largest group of equal results; a candidate that failed
    to execute (key None) gets no vote; ties go to the group holding the earliest (greedy) candidate."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k is not None:
            groups.setdefault(k, []).append(i)
    if not groups:
        return 0
    best = max(groups.values(), key=lambda idxs: (len(idxs), -idxs[0]))
    return best[0]
