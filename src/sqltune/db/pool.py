"""Worker processes that can be killed: the last line of defence behind the in-query timeout.

``WorkerPool.run(jobs)`` sends each job to an idle worker process and waits for its answer. A
job that is not answered by its deadline (the query timeouts plus a grace second) gets its
worker killed and replaced, and the caller's ``on_timeout`` supplies its result, so one
pathological query can neither hang the run nor leave a process burning a CPU.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any


def _worker_main(fn: Callable[[Any], Any], conn: Connection) -> None:
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            result = (True, fn(job))
        except Exception as e:  # a bug in fn: reported to the parent, the worker lives on
            result = (False, f"{type(e).__name__}: {e}")
        conn.send(result)


class _Worker:
    def __init__(self, ctx: Any, fn: Callable[[Any], Any]):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(fn, child), daemon=True)
        self.proc.start()
        child.close()
        self.job: int | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)
        self.conn.close()


class WorkerPool:
    """A fixed number of worker processes running ``fn(job)``; see the module docstring."""

    def __init__(self, fn: Callable[[Any], Any], workers: int = 2, start_method: str | None = None):
        methods = mp.get_all_start_methods()
        method = start_method or ("fork" if "fork" in methods else "spawn")
        self.ctx = mp.get_context(method)
        self.fn = fn
        self.n = max(1, workers)
        self.killed = 0

    def run(
        self,
        jobs: Sequence[Any],
        seconds_allowed: Callable[[Any], float],
        on_timeout: Callable[[Any], Any],
        on_error: Callable[[Any, str], Any] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(job index, result)`` as jobs finish (not in order)."""
        if not jobs:
            return
        workers = [_Worker(self.ctx, self.fn) for _ in range(min(self.n, len(jobs)))]
        next_job = 0
        try:
            while True:
                for w in workers:
                    if w.job is None and next_job < len(jobs):
                        w.job = next_job
                        w.deadline = time.monotonic() + seconds_allowed(jobs[next_job])
                        w.conn.send(jobs[next_job])
                        next_job += 1
                busy = [w for w in workers if w.job is not None]
                if not busy:
                    return
                now = time.monotonic()
                ready = wait([w.conn for w in busy], timeout=max(0.0, min(w.deadline for w in busy) - now))
                for w in busy:
                    if w.conn in ready:
                        idx = w.job
                        dead = False
                        try:
                            ok, result = w.conn.recv()
                        except (EOFError, OSError):
                            ok, result, dead = False, "worker process died", True
                        w.job = None
                        if not ok and on_error is not None:
                            yield idx, on_error(jobs[idx], result)
                        elif not ok:
                            raise RuntimeError(result)
                        else:
                            yield idx, result
                        if dead:
                            w.kill()
                            workers[workers.index(w)] = _Worker(self.ctx, self.fn)
                    elif time.monotonic() >= w.deadline:
                        idx = w.job
                        w.kill()
                        self.killed += 1
                        workers[workers.index(w)] = _Worker(self.ctx, self.fn)
                        yield idx, on_timeout(jobs[idx])
        finally:
            for w in workers:
                if w.job is not None:
                    w.kill()
                else:
                    w.stop()
