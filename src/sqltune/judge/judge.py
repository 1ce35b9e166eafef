"""The judge: one long-lived object that says whether SQL is right, for every stage.

It owns the killable worker pool (:mod:`sqltune.db.pool`: a runaway query is stopped inside
SQLite at its timeout, and a worker that still passes its deadline is killed and replaced) and
the persistent gold-result cache (:mod:`sqltune.judge.cache`). Every piece of model-written or
user-written SQL that sqltune judges runs here, in a worker, read-only:

* :meth:`Judge.score`: gold vs candidates (the eval stage; later the CoT filter and RL reward);
* :meth:`Judge.vote`: candidates without a gold, majority by execution result (self-consistency);
* :meth:`Judge.run`: queries without a gold, whether each runs (gold verification in the data stage).

Use it as a context manager (``with Judge() as judge: ...``) so its workers stop at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from sqltune.db.execute import ROW_CAP
from sqltune.db.pool import WorkerPool
from sqltune.judge.cache import GoldCache
from sqltune.judge.score import failed, majority_vote
from sqltune.judge.worker import RunJob, RunResult, ScoreJob, ScoreResult, work


class Judge:
    def __init__(
        self,
        workers: int = 2,
        timeout: float = 30.0,
        max_rows: int = ROW_CAP,
        cache: bool = False,
        cache_path: str | Path | None = None,
        allow_privileged_role: bool = False,
    ):
        self.timeout = timeout
        self.max_rows = max_rows
        self.allow_privileged_role = allow_privileged_role
        self.pool = WorkerPool(
            partial(work, privileged=allow_privileged_role) if allow_privileged_role else work, workers=workers
        )
        self.cache = GoldCache(cache_path) if cache else None
        self.gold_executed = 0
        self.gold_cached = 0

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.close()
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    @property
    def workers_killed(self) -> int:
        return self.pool.killed

    # ------------------------------------------------------------------ scoring against a gold
    def score(
        self,
        jobs: list[ScoreJob],
        cache_key: Callable[[ScoreJob], str | None] | None = None,
        on_result: Callable[[int], None] | None = None,
    ) -> list[ScoreResult]:
        """Score every job (results in job order); gold results come from and go to the cache."""
        keys: dict[int, str] = {}
        if self.cache is not None and cache_key is not None:
            keys = {j: k for j, job in enumerate(jobs) if (k := cache_key(job)) is not None}
            hits = self.cache.get_many(list(keys.values()))
            for j, k in keys.items():
                if k in hits:
                    jobs[j] = _with_gold(jobs[j], hits[k])
                    self.gold_cached += 1

        def allowed(job: ScoreJob) -> float:
            n = len(job.preds) + (1 if job.gold is None else 0)
            return n * job.timeout * (1 + 2 * job.ves_repeats) + 1.0

        def killed(job: ScoreJob) -> ScoreResult:
            msg = "worker killed after the time limit"
            return ScoreResult(verdicts=[failed(msg, "timeout") for _ in job.preds], killed=True)

        results: list[ScoreResult | None] = [None] * len(jobs)
        fresh: dict[str, bytes] = {}
        for j, res in self.pool.run(jobs, allowed, killed, on_error=lambda job, msg: ScoreResult(db_error=msg)):
            if res.gold_fresh is not None:
                self.gold_executed += 1
                if j in keys and res.gold_error_type != "timeout":
                    fresh[keys[j]] = res.gold_fresh
            results[j] = res
            if on_result is not None:
                on_result(j)
        if self.cache is not None:
            self.cache.put_many(fresh)
        return [r if r is not None else ScoreResult(db_error="not scored") for r in results]

    # ------------------------------------------------------------------ queries without a gold
    def run(
        self,
        queries: Sequence[tuple[str, Sequence[str]]],
        analysis: bool = False,
        keep_rows: int = 0,
        max_bytes: int = 1_000_000,
    ) -> list[RunResult]:
        """Run each ``(db_path, [sql, ...])`` group read-only; results in input order.

        ``keep_rows``: also return up to that many rows of each result (within ``max_bytes``)."""
        jobs = [
            RunJob(db, list(sqls), self.timeout, self.max_rows, analysis, keep_rows, max_bytes) for db, sqls in queries
        ]

        def allowed(job: RunJob) -> float:
            return len(job.sqls) * job.timeout + 1.0

        def killed(job: RunJob) -> RunResult:
            n = len(job.sqls)
            msg = f"stopped: the query ran past the {job.timeout:g} s limit"
            empty: list[tuple[list[str], list[tuple[Any, ...]]]] = [([], [])] * n if job.keep_rows else []
            return RunResult(
                [False] * n, [msg] * n, ["timeout"] * n, [None] * n, [0] * n, [False] * n, killed=True, results=empty
            )

        out: list[RunResult | None] = [None] * len(jobs)
        for j, res in self.pool.run(jobs, allowed, killed, on_error=lambda job, msg: RunResult(db_error=msg)):
            out[j] = res
        return [r if r is not None else RunResult(db_error="not run") for r in out]

    def vote(self, groups: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[int, int]]:
        """Self-consistency: for each ``(db_path, candidates)``, the chosen index and its votes.

        A candidate that fails gets no vote; ties go to the earliest (greedy) candidate."""
        out = []
        for res in self.run(groups):
            if res.db_error or not res.keys:
                out.append((0, 0))
                continue
            best = majority_vote(res.keys)
            k = res.keys[best]
            out.append((best, sum(1 for x in res.keys if x is not None and x == k)))
        return out


def _with_gold(job: ScoreJob, entry: Any) -> ScoreJob:
    from dataclasses import replace

    return replace(job, gold=entry)
