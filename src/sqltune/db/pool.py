"""Worker processes that can be killed: the last line of defence behind the in-query timeout.

``WorkerPool.run(jobs)`` hands jobs to worker processes in chunks (so that inter-process
traffic does not dominate short queries). Every job has an allowance (its query timeouts plus a
grace second); a worker counts finished jobs in shared memory, so the job in flight always has a
deadline of its own. A worker whose job passes its deadline is killed and replaced; the jobs of
its chunk are re-queued one by one, and a job that passes its deadline alone gets the caller's
``on_timeout`` result. So one pathological query can neither hang the run nor
leave a process burning a CPU.

Workers live as long as the pool: a second ``run`` reuses them (no new processes), and
``close()`` (or leaving a ``with`` block) stops them.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any


def _die_with_parent() -> None:
    """End this worker within a second of its parent's death, however the parent died (a SIGKILL, a crash):
    a thread watches the parent's pid. (The pipe alone does not tell: workers forked later hold copies of
    the parent's ends of the earlier workers' pipes.)"""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="sqltune-parent-watch").start()


def _worker_main(fn: Callable[[Any], Any], conn: Connection, done: Any) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the parent, which stops its workers
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        results = []
        for idx, job in chunk:
            try:
                results.append((idx, True, fn(job)))
            except Exception as e:  # a bug in fn: reported to the parent, the worker lives on
                results.append((idx, False, f"{type(e).__name__}: {e}"))
            done.value += 1  # tells the parent this job finished, without a message
        conn.send(results)


class _Worker:
    def __init__(self, ctx: Any, fn: Callable[[Any], Any]):
        self.conn, child = ctx.Pipe()
        self.done = ctx.Value("q", 0, lock=False)
        self.seen = 0
        self.proc = ctx.Process(target=_worker_main, args=(fn, child, self.done), daemon=True)
        self.proc.start()
        child.close()
        self.pending: list[int] = []
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

    def __init__(
        self, fn: Callable[[Any], Any], workers: int = 2, start_method: str | None = None, chunk_size: int | None = None
    ):
        methods = mp.get_all_start_methods()
        method = start_method or ("fork" if "fork" in methods else "spawn")
        self.ctx = mp.get_context(method)
        self.fn = fn
        self.n = max(1, workers)
        self.chunk_size = chunk_size
        self.killed = 0
        self._idle: list[_Worker] = []  # started workers kept between runs (a long-lived pool)

    def close(self) -> None:
        """Stop the idle workers (a run in progress cleans up its own)."""
        for w in self._idle:
            w.stop()
        self._idle = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _worker(self) -> _Worker:
        while self._idle:
            w = self._idle.pop()
            if w.proc.is_alive():
                return w
            w.kill()
        return _Worker(self.ctx, self.fn)

    def run(
        self,
        jobs: Sequence[Any],
        seconds_allowed: Callable[[Any], float],
        on_timeout: Callable[[Any], Any],
        on_error: Callable[[Any, str], Any] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(job index, result)`` as chunks finish (not in order).

        A worker whose job in flight passes its allowance is killed; the jobs of its chunk go
        back to the queue one by one, so that the job that hangs is found, alone, and gets
        ``on_timeout`` while the others are run again.
        """
        if not jobs:
            return
        chunk = self.chunk_size or max(1, min(64, len(jobs) // (self.n * 4)))
        queue: deque[list[int]] = deque()
        order = list(range(len(jobs)))
        for k in range(0, len(order), chunk):
            queue.append(order[k : k + chunk])
        workers = [self._worker() for _ in range(min(self.n, len(queue)))]
        try:
            while True:
                for w in workers:
                    if not w.pending and queue:
                        part = queue.popleft()
                        w.pending.extend(part)
                        w.seen = w.done.value
                        w.deadline = time.monotonic() + seconds_allowed(jobs[part[0]])
                        w.conn.send([(i, jobs[i]) for i in part])
                busy = [w for w in workers if w.pending]
                if not busy:
                    return
                now = time.monotonic()
                ready = wait([w.conn for w in busy], timeout=max(0.0, min(w.deadline for w in busy) - now))
                for w in busy:
                    if w.conn in ready:
                        try:
                            results = w.conn.recv()
                        except (EOFError, OSError):
                            results = None
                        if results is None:  # the worker died: retry its jobs one by one
                            part = list(w.pending)
                            w.kill()
                            workers[workers.index(w)] = _Worker(self.ctx, self.fn)
                            if len(part) == 1:
                                msg = "worker process died"
                                if on_error is None:
                                    raise RuntimeError(msg)
                                yield part[0], on_error(jobs[part[0]], msg)
                            else:
                                queue.extendleft([i] for i in reversed(part))
                            continue
                        w.pending.clear()
                        for idx, ok, result in results:
                            if ok:
                                yield idx, result
                            elif on_error is not None:
                                yield idx, on_error(jobs[idx], result)
                            else:
                                raise RuntimeError(result)
                    elif time.monotonic() >= w.deadline and w.done.value != w.seen:
                        # progress since the last look: the job now in flight gets its own allowance
                        k = min(w.done.value - w.seen, len(w.pending) - 1)
                        w.seen = w.done.value
                        w.deadline = time.monotonic() + seconds_allowed(jobs[w.pending[k]])
                    elif time.monotonic() >= w.deadline:
                        part = list(w.pending)
                        w.kill()
                        self.killed += 1
                        workers[workers.index(w)] = _Worker(self.ctx, self.fn)
                        if len(part) == 1:
                            yield part[0], on_timeout(jobs[part[0]])
                        else:
                            queue.extendleft([i] for i in reversed(part))
        finally:
            for w in workers:
                if w.pending:  # interrupted mid-run: what it is doing is nobody's any more
                    w.kill()
                else:
                    self._idle.append(w)
