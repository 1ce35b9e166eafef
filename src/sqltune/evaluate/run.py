"""``evaluate``: score predictions against gold by execution, with every miss explained."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqltune.db.pool import WorkerPool
from sqltune.errors import ConfigError
from sqltune.evaluate.cache import GoldCache
from sqltune.evaluate.compare import MODES, strip_distinct
from sqltune.evaluate.engine import score_item
from sqltune.evaluate.hardness import spider_hardness
from sqltune.evaluate.inputs import EvalItem
from sqltune.evaluate.metrics import pass_at_k

ERROR_TYPES = (
    "empty_prediction",
    "missing_prediction",
    "syntax_error",
    "unknown_table",
    "unknown_column",
    "runtime_error",
    "write_attempt",
    "multiple_statements",
    "timeout",
    "wrong_column_count",
    "wrong_rows",
    "wrong_order",
)


@dataclass(frozen=True)
class EvalConfig:
    """Options of ``sqltune eval``."""

    match: str | None = None
    """Comparison mode: set (BIRD), multiset (Spider test-suite), ordered. Default: set for BIRD, else multiset."""
    timeout: float = 30.0
    """Seconds per query; a runaway query is stopped, its worker killed if it does not stop."""
    workers: int = 2
    """Worker processes."""
    max_rows: int = 100_000
    """Rows fetched per query at most (results that hit it are flagged truncated)."""
    strip_distinct: bool = False
    """Remove DISTINCT from gold and prediction before running (the Spider test-suite's default)."""
    count_gold_errors: bool = False
    """Count examples whose gold fails as misses (BIRD's behaviour) instead of excluding them."""
    cache: bool = True
    """Use the persistent gold-result cache."""
    cache_path: str | None = None
    """Where the gold cache lives (default $SQLTUNE_HOME/cache/gold_results.sqlite)."""
    ves_repeats: int = 0
    """Time correct predictions and their gold this many times each to compute VES (0: off)."""
    analysis: bool = True
    """Parse with sqlglot for exact match and Spider hardness (off: execution metrics only, about 2x faster)."""

    def validate(self) -> None:
        problems = []
        if self.match is not None and self.match not in MODES:
            problems.append(f"match={self.match!r}: choose one of {', '.join(MODES)}")
        if self.timeout <= 0:
            problems.append(f"timeout={self.timeout}: must be positive")
        if self.workers < 1:
            problems.append(f"workers={self.workers}: must be at least 1")
        if self.max_rows < 1:
            problems.append(f"max_rows={self.max_rows}: must be at least 1")
        if problems:
            raise ConfigError("invalid eval options:\n  " + "\n  ".join(problems))


_LEVELS = ("easy", "medium", "hard", "extra", "simple", "moderate", "challenging")


def _level_rank(name: str) -> tuple[int, str]:
    return (_LEVELS.index(name) if name in _LEVELS else len(_LEVELS), name)


def _ratio(a: float, b: int) -> float:
    return a / b if b else 0.0


def evaluate(
    items: list[EvalItem], cfg: EvalConfig, family: str = "sqltune"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score the items; returns (summary, per-example results in input order)."""
    cfg.validate()
    t0 = time.perf_counter()
    mode = cfg.match or ("set" if family == "bird" else "multiset")
    cache = GoldCache(cfg.cache_path) if cfg.cache else None
    results: list[dict[str, Any] | None] = [None] * len(items)
    jobs: list[dict[str, Any]] = []
    job_items: list[int] = []
    cache_keys: dict[int, str] = {}
    gold_cached = 0
    for i, it in enumerate(items):
        if not it.db_path or not Path(it.db_path).is_file():
            results[i] = {"gold_status": "missing_database", "gold_error": f"database not found: {it.db_path}"}
            continue
        gold_sql = strip_distinct(it.gold) if cfg.strip_distinct else it.gold
        preds = it.candidates or [it.pred]
        if it.candidates and it.pred and it.candidates[0] != it.pred:
            preds = [it.pred, *it.candidates]
        if cfg.strip_distinct:
            preds = [strip_distinct(p) if p else p for p in preds]
        job = {
            "db_path": it.db_path,
            "gold_sql": gold_sql,
            "gold_orig": it.gold,
            "gold": None,
            "preds": preds,
            "mode": mode,
            "timeout": cfg.timeout,
            "max_rows": cfg.max_rows,
            "ves_repeats": cfg.ves_repeats,
            "analysis": cfg.analysis,
        }
        if cache is not None:
            cache_keys[len(jobs)] = cache.key(
                cache.db_hash(it.db_path), it.gold, cfg.max_rows, cfg.strip_distinct, cfg.analysis
            )
        jobs.append(job)
        job_items.append(i)
    if cache is not None and cache_keys:
        hits = cache.get_many(list(cache_keys.values()))
        for j, k in cache_keys.items():
            if k in hits:
                jobs[j]["gold"] = hits[k]
                gold_cached += 1

    def allowed(job: dict[str, Any]) -> float:
        n = len(job["preds"]) + (1 if job["gold"] is None else 0)
        return n * cfg.timeout * (1 + 2 * job["ves_repeats"]) + 1.0

    def killed(job: dict[str, Any]) -> dict[str, Any]:
        return {
            "killed": True,
            "gold": None,
            "gold_ok": None,  # unknown: the worker was killed before it answered
            "gold_error": None,
            "gold_error_type": None,
            "preds": [
                {
                    "ok": False,
                    "error": "worker killed after the time limit",
                    "error_type": "timeout",
                    "correct": False,
                    "soft_f1": 0.0,
                }
                for _ in job["preds"]
            ],
            "vote": 0,
            "ves": None,
        }

    pool = WorkerPool(score_item, workers=cfg.workers)
    fresh: dict[str, Any] = {}
    gold_executed = 0
    progress = _progress(len(jobs))
    for j, res in pool.run(jobs, allowed, killed, on_error=lambda job, msg: {"db_error": msg}):
        i = job_items[j]
        if res.get("gold") is not None:
            gold_executed += 1
            if cache is not None and j in cache_keys and res.get("gold_error_type") != "timeout":
                fresh[cache_keys[j]] = res["gold"]
        results[i] = res
        progress.advance()
    progress.close()
    if cache is not None:
        cache.put_many(fresh)
        cache.close()

    records = [_record(it, res or {}, cfg) for it, res in zip(items, results, strict=False)]
    summary = summarize(records, cfg, mode, family)
    summary.update(
        {
            "gold_executed": gold_executed,
            "gold_cached": gold_cached,
            "workers_killed": pool.killed,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    )
    return summary, records


def _record(it: EvalItem, res: dict[str, Any], cfg: EvalConfig) -> dict[str, Any]:
    hardness = res["hardness"] if "hardness" in res else (spider_hardness(it.gold) if cfg.analysis else "")
    rec: dict[str, Any] = {
        "id": it.id,
        "db_id": it.db_id,
        "question": it.question,
        "difficulty": it.difficulty or hardness,
        "hardness": hardness,
        "gold_sql": it.gold,
        "pred_sql": it.pred,
    }
    if res.get("gold_status") == "missing_database" or res.get("db_error"):
        gold_status, gold_error = (
            ("missing_database", res.get("gold_error"))
            if res.get("gold_status")
            else ("unreadable_database", res["db_error"])
        )
    elif res.get("gold_ok") is False:
        gold_status = "timeout" if res.get("gold_error_type") == "timeout" else "failed"
        gold_error = res.get("gold_error")
    else:
        gold_status, gold_error = "ok", None
    rec["gold_status"] = gold_status
    rec["gold_error"] = gold_error
    preds = res.get("preds") or []
    first = preds[0] if preds else None
    counted = gold_status == "ok" or (cfg.count_gold_errors and gold_status in ("failed", "timeout"))
    rec["counted"] = counted
    if first is None:
        rec["correct"] = False
        rec["error_type"] = "gold_error" if gold_status != "ok" else "missing_prediction"
        rec["error"] = gold_error
    else:
        rec["correct"] = bool(first["correct"])
        rec["error_type"] = first["error_type"] if not first["correct"] else None
        rec["error"] = first["error"]
    if it.missing and rec["counted"]:
        rec["error_type"] = "missing_prediction"
        rec["error"] = "no prediction for this id"
    em = res.get("exact_match", False)
    rec["exact_match"] = None if not cfg.analysis else bool(em)
    rec["token_match"] = round(res.get("token_match", 0.0), 4)
    rec["soft_f1"] = round(first["soft_f1"], 4) if first else 0.0
    if res.get("ves") is not None:
        rec["ves"] = round(res["ves"], 4)
    if len(preds) > 1:
        rec["candidates"] = len(preds)
        rec["candidates_correct"] = sum(1 for p in preds if p["correct"])
        rec["vote_index"] = res.get("vote", 0)
        rec["vote_correct"] = bool(preds[res.get("vote", 0)]["correct"])
    return rec


def summarize(records: list[dict[str, Any]], cfg: EvalConfig, mode: str, family: str) -> dict[str, Any]:
    counted = [r for r in records if r["counted"]]
    n = len(counted)
    correct = sum(1 for r in counted if r["correct"])
    excluded = Counter(r["gold_status"] for r in records if not r["counted"])
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for key in ("difficulty", "hardness", "db_id"):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in counted:
            groups[r[key] or "unlabelled"].append(r)
        by[key] = {
            k: {
                "n": len(v),
                "correct": sum(x["correct"] for x in v),
                "ex": round(_ratio(sum(x["correct"] for x in v), len(v)), 4),
            }
            for k, v in sorted(groups.items(), key=lambda kv: _level_rank(kv[0]))
        }
    errors = Counter(r["error_type"] for r in counted if not r["correct"])
    summary: dict[str, Any] = {
        "ex": round(_ratio(correct, n), 4),
        "n": n,
        "correct": correct,
        "total": len(records),
        "excluded": dict(sorted(excluded.items())),
        "mode": mode,
        "family": family,
        "exact_match": round(_ratio(sum(bool(r["exact_match"]) for r in counted), n), 4) if cfg.analysis else None,
        "token_match": round(_ratio(sum(r["token_match"] for r in counted), n), 4),
        "soft_f1": round(_ratio(sum(r["soft_f1"] for r in counted), n), 4),
        "by_difficulty": by["difficulty"],
        "by_hardness": by["hardness"],
        "by_database": by["db_id"],
        "errors": {k: errors.get(k, 0) for k in ERROR_TYPES if errors.get(k, 0)}
        | {k: v for k, v in errors.items() if k not in ERROR_TYPES},
        "gold_problems": [
            {"id": r["id"], "db_id": r["db_id"], "status": r["gold_status"], "error": r["gold_error"]}
            for r in records
            if r["gold_status"] != "ok"
        ],
        "truncated_note": f"results are capped at {cfg.max_rows} rows",
        "config": asdict(cfg),
    }
    ves = [r.get("ves", 0.0) if r["correct"] else 0.0 for r in counted]
    if cfg.ves_repeats:
        summary["ves"] = round(100 * _ratio(sum(ves), n), 2)
    multi = [r for r in counted if r.get("candidates")]
    if multi:
        k_max = min(r["candidates"] for r in multi)
        summary["candidates"] = k_max
        summary["pass_at_k"] = {
            str(k): round(
                _ratio(sum(pass_at_k(r["candidates"], r["candidates_correct"], k) for r in multi), len(multi)), 4
            )
            for k in sorted({1, 2, 4, 8, 16, k_max})
            if k <= k_max
        }
        summary["majority_ex"] = round(_ratio(sum(r["vote_correct"] for r in multi), len(multi)), 4)
    return summary


class _progress:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int):
        import sys

        self.bar = None
        if total and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("evaluating", total=total)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
