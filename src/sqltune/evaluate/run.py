"""``evaluate``: score predictions against gold by execution, with every miss explained."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqltune.db.execute import ROW_CAP
from sqltune.db.target import display, is_url
from sqltune.errors import ConfigError
from sqltune.evaluate.inputs import EvalItem
from sqltune.evaluate.metrics import DEFAULT_METRICS, parse_metrics, pass_at_k
from sqltune.evaluate.report import write_outputs
from sqltune.judge import ERROR_TYPES, Judge, ScoreJob, ScoreResult
from sqltune.judge.cache import GoldCache
from sqltune.judge.compare import MODES, strip_distinct
from sqltune.judge.hardness import spider_hardness


@dataclass(frozen=True)
class EvalConfig:
    """Settings of ``sqltune eval`` (each is also a ``--option`` and a YAML key)."""

    pred: str | None = None
    """Predictions: .sql (Spider, one per line), .json (BIRD predict_dev.json) or .jsonl (sqltune predict)."""
    out: str | None = None
    """Output folder: summary.json, results.jsonl, report.md, chart.png."""
    gold: str | None = None
    """Gold: Spider/BIRD .sql (SQL<TAB>db_id) or a benchmark .json (with --db-root)."""
    db_root: str | None = None
    """Folder of <db_id>/<db_id>.sqlite."""
    dataset: str | None = None
    """sqltune dataset .jsonl, joined to --pred by id."""
    diff_json: str | None = None
    """BIRD: dev.json, for the difficulty field."""
    allow_missing: bool = False
    """sqltune files: count dataset ids without a prediction as misses."""
    match: str | None = None
    """Comparison mode: set (BIRD), multiset (Spider test-suite), ordered. Default: set for BIRD, else multiset."""
    timeout: float = 30.0
    """Seconds per query; a runaway query is stopped, its worker killed if it does not stop."""
    workers: int = 2
    """Worker processes."""
    max_rows: int = ROW_CAP
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
    """Parse with sqlglot for Spider hardness and normalized match (off: execution metrics only)."""
    allow_privileged_role: bool = False
    """Run on a PostgreSQL/MySQL role that can do more than read (refused otherwise): every statement still runs
    in a read-only transaction, but server files and programs are then up to the role."""
    metrics: str = DEFAULT_METRICS
    """Metrics to compute, a comma list or 'all': ex, soft_f1, normalized_match, spider_em, token_match, exact_match."""
    """Parse with sqlglot for exact match and Spider hardness (off: execution metrics only, about 2x faster)."""

    def metric_names(self) -> tuple[str, ...]:
        """The metrics to compute; without the sqlglot analysis, normalized match is off."""
        names = parse_metrics(self.metrics)
        return tuple(m for m in names if self.analysis or m != "normalized_match")

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
        try:
            parse_metrics(self.metrics)
        except ConfigError as e:
            problems.append(str(e))
        if self.out is not None and self.pred is None:
            problems.append("pred: required (the predictions file)")
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
    """Score the items through the judge; returns (summary, per-example results in input order)."""
    cfg.validate()
    t0 = time.perf_counter()
    mode = cfg.match or ("set" if family == "bird" else "multiset")
    metrics = cfg.metric_names()
    results: list[ScoreResult | None] = [None] * len(items)
    missing_db: set[int] = set()
    jobs: list[ScoreJob] = []
    job_items: list[int] = []
    for i, it in enumerate(items):
        if not it.db_path or (not is_url(it.db_path) and not Path(it.db_path).is_file()):
            missing_db.add(i)
            continue
        preds = it.candidates or [it.pred]
        if it.candidates and it.pred and it.candidates[0] != it.pred:
            preds = [it.pred, *it.candidates]
        if cfg.strip_distinct:
            preds = [strip_distinct(p) if p else p for p in preds]
        jobs.append(
            ScoreJob(
                db_path=it.db_path,
                gold_sql=strip_distinct(it.gold) if cfg.strip_distinct else it.gold,
                gold_text=it.gold,
                preds=preds,
                mode=mode,
                timeout=cfg.timeout,
                max_rows=cfg.max_rows,
                analysis=cfg.analysis,
                ves_repeats=cfg.ves_repeats,
                facts=it.facts if cfg.analysis else None,
                metrics=metrics,
            )
        )
        job_items.append(i)

    progress = _progress(len(jobs))
    judge = Judge(
        cfg.workers,
        cfg.timeout,
        cfg.max_rows,
        cache=cfg.cache,
        cache_path=cfg.cache_path,
        allow_privileged_role=cfg.allow_privileged_role,
    )
    with judge:
        cache = judge.cache

        def key(job: ScoreJob) -> str | None:
            assert cache is not None
            if is_url(job.db_path):
                return None  # a server database has no file version: its gold results are always run
            db = cache.db_hash(job.db_path)
            return GoldCache.key(db, job.gold_text, cfg.max_rows, cfg.strip_distinct, cfg.analysis)

        scored = judge.score(jobs, cache_key=key, on_result=lambda _: progress.advance())
    progress.close()
    for j, res in zip(job_items, scored, strict=True):
        results[j] = res

    records = [_record(it, results[i], cfg, missing=i in missing_db) for i, it in enumerate(items)]
    summary = summarize(records, cfg, mode, family)
    linked = [it.link for it in items if it.link]
    if linked:  # the prompts' schema linking, from the data stage's records
        from sqltune.linking.link import LinkSettings
        from sqltune.linking.metrics import recall_summary

        summary["schema_linking"] = recall_summary(
            LinkSettings.from_dict(linked[0]["settings"]), [x["recall"] for x in linked]
        )
        tokens = [x["prompt_tokens"] for x in linked if x.get("prompt_tokens")]
        if tokens:
            summary["schema_linking"]["prompt_tokens_mean"] = round(sum(tokens) / len(tokens), 1)
        for rec, it in zip(records, items, strict=True):
            if it.link:
                rec["schema_recall"] = it.link["recall"]
    if "spider_em" in metrics:
        summary["spider_em_partial"] = _spider_partial(
            [rec.pop("_spider_partial", None) for rec in records if rec["counted"]]
        )
        em = [rec for rec in records if rec["counted"] and rec["spider_em"] is not None]
        summary["spider_em"] = round(_ratio(sum(1 for rec in em if rec["spider_em"]), len(em)), 4)
        summary["spider_em_n"] = len(em)
        summary["spider_em_official"] = sum(1 for rec in em if rec["spider_em_official"])
    for r in records:
        r.pop("_spider_partial", None)
    summary.update(
        {
            "gold_executed": judge.gold_executed,
            "gold_cached": judge.gold_cached,
            "workers_killed": judge.workers_killed,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    )
    return summary, records


def run_eval(cfg: EvalConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The eval stage: load the input files, score them, write the outputs; (summary, file paths)."""
    from sqltune.evaluate.inputs import detect_and_load

    cfg.validate()
    if cfg.pred is None or cfg.out is None:
        raise ConfigError("sqltune eval needs --pred and --out (and --gold with --db-root, or --dataset)")
    items, family = detect_and_load(cfg.gold, cfg.pred, cfg.db_root, cfg.dataset, cfg.diff_json, cfg.allow_missing)
    summary, records = evaluate(items, cfg, family)
    return summary, write_outputs(cfg.out, summary, records)


def _record(it: EvalItem, res: ScoreResult | None, cfg: EvalConfig, missing: bool = False) -> dict[str, Any]:
    if res is not None and (res.hardness or not cfg.analysis):
        hardness = res.hardness
    else:
        hardness = spider_hardness(it.gold) if cfg.analysis else ""
    rec: dict[str, Any] = {
        "id": it.id,
        "db_id": it.db_id,
        "question": it.question,
        "difficulty": it.difficulty or hardness,
        "hardness": hardness,
        "gold_sql": it.gold,
        "pred_sql": it.pred,
    }
    gold_error: str | None
    if missing or res is None:
        gold_status, gold_error = "missing_database", f"database not found: {display(it.db_path)}"
    elif res.db_error:
        gold_status, gold_error = "unreadable_database", res.db_error
    elif res.gold_ok is False:
        gold_status = "timeout" if res.gold_error_type == "timeout" else "failed"
        gold_error = res.gold_error
    else:
        gold_status, gold_error = "ok", None
    rec["gold_status"] = gold_status
    rec["gold_error"] = gold_error
    verdicts = res.verdicts if res is not None else []
    first = verdicts[0] if verdicts else None
    counted = gold_status == "ok" or (cfg.count_gold_errors and gold_status in ("failed", "timeout"))
    rec["counted"] = counted
    if first is None:
        rec["correct"] = False
        rec["error_type"] = "gold_error" if gold_status != "ok" else "missing_prediction"
        rec["error"] = gold_error
    else:
        rec["correct"] = first.correct
        rec["error_type"] = first.error_type if not first.correct else None
        rec["error"] = first.error
    if it.missing and rec["counted"]:
        rec["error_type"] = "missing_prediction"
        rec["error"] = "no prediction for this id"
    metrics = cfg.metric_names()
    rec["soft_f1"] = round(first.soft_f1, 4) if first else 0.0
    rec["normalized_match"] = bool(res.normalized_match) if "normalized_match" in metrics and res else None
    for name in ("spider_em", "token_match", "exact_match"):
        value = getattr(res, name, None) if res is not None else None
        rec[name] = None if name not in metrics else (round(value, 4) if isinstance(value, float) else value)
    if "spider_em" in metrics:
        rec["spider_em_official"] = bool(res and res.spider_official)  # the official script scores it the same
        if res is not None and res.spider_partial is not None:
            rec["spider_partial"] = {k: v["f1"] for k, v in res.spider_partial.items()}
            rec["_spider_partial"] = res.spider_partial
    if res is not None and res.ves is not None:
        rec["ves"] = round(res.ves, 4)
    if len(verdicts) > 1:
        vote = res.vote if res is not None else 0
        rec["candidates"] = len(verdicts)
        rec["candidates_correct"] = sum(1 for v in verdicts if v.correct)
        rec["vote_index"] = vote
        rec["vote_correct"] = bool(verdicts[vote].correct)
    return rec


def _spider_partial(parts: list[dict[str, dict[str, int]] | None]) -> dict[str, dict[str, float]]:
    """Per-component accuracy, recall and F1 averaged as the official Spider script prints them."""
    out = {}
    from sqltune.judge.spider_em import PARTS

    for name in PARTS:
        rows = [p[name] for p in parts if p]
        accs = [x["acc"] for x in rows if x["pred_total"] > 0]
        recs = [x["rec"] for x in rows if x["label_total"] > 0]
        acc = sum(accs) / len(accs) if accs else 0.0
        rec = sum(recs) / len(recs) if recs else 0.0
        f1 = 1.0 if acc == 0 and rec == 0 else 2 * acc * rec / (acc + rec)
        out[name] = {"acc": round(acc, 4), "rec": round(rec, 4), "f1": round(f1, 4)}
    return out


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
        "metrics": list(cfg.metric_names()),
        **{
            name: round(_ratio(sum(float(r[name] or 0) for r in counted), n), 4) if name in cfg.metric_names() else None
            for name in ("normalized_match", "spider_em", "token_match", "exact_match")
        },
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
