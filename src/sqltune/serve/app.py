"""``sqltune serve``: one FastAPI app that puts a model to work on your databases.

Routes:

* ``POST /v1/ask`` ``{"question", "db"?, "evidence"?}``: the ask engine (:mod:`sqltune.serve.ask`):
  SQL, columns, rows, ``truncated``, vote share, every attempt, timings, or an abstention with
  its reason; ``db`` (a database file's stem) may be left out when one database is served;
* ``POST /v1/sql`` ``{"sql", "db"?}``: run user-edited SQL through the same read-only guard;
* ``POST /v1/feedback`` ``{"id", "verdict": "right"|"wrong", "corrected_sql"?}``;
* ``GET /v1/databases``, ``GET /v1/schema?db=``, ``GET /health``;
* ``GET /v1/models``, ``POST /v1/chat/completions`` (OpenAI-compatible, streaming too);
* ``GET /``: the web page (static files shipped in the package: no build step, no CDN).

What protects the databases and the server, by default:

* **read-only by the engine**: every query runs in the judge's worker processes on a connection
  opened ``mode=ro`` with ``PRAGMA query_only`` and an authorizer (no ATTACH, no pragma writes,
  no VACUUM); SQL text is never inspected for this. A hard timeout stops the query inside SQLite
  (and a worker that still overruns is killed); rows and bytes returned are capped;
* **a runaway query never blocks other users**: queries run on a pool of judges, one query
  per judge at a time;
* **binds 127.0.0.1**; any other address needs an API key (``Authorization: Bearer KEY``);
  CORS is off unless origins are given; request bodies over ``max_body`` bytes get 413, and a
  client over ``rate_limit`` requests a minute gets 429.

Concurrent ``/v1/ask`` requests share the model's batch: on the hf backend by continuous
batching (:mod:`sqltune.models.continuous`: each answer has a row of its own, joins when a row is
free and leaves the step it ends), on llamacpp by llama.cpp's own slots (each question on a thread
of its own, each answer a request that takes a slot as one frees), on the others by round (a queue
in front of the model gathers the questions waiting together into one ``generate`` call). Each request is logged as one JSON line (``requests.jsonl``); every answer
and feedback goes to ``answers.jsonl``, and the confirmed and corrected answers to
``feedback.jsonl`` in the pairs format that ``sqltune data build --benchmark pairs`` reads.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections import defaultdict, deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqltune.errors import ConfigError
from sqltune.judge import Judge
from sqltune.serve.ask import AskConfig, Database, Pending, ask_many, run_sql, start, step

STATIC = Path(__file__).parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``sqltune serve`` besides the model and the databases."""

    host: str = "127.0.0.1"
    """Address to listen on; anything but loopback needs an API key."""
    port: int = 8000
    """Port."""
    api_key: str | None = None
    """Required as 'Authorization: Bearer KEY' on every /v1 route when set (default: $SQLTUNE_API_KEY)."""
    cors: str | None = None
    """Comma-separated origins allowed by CORS (default: none)."""
    max_body: int = 65536
    """Largest request body in bytes."""
    rate_limit: int = 120
    """Requests a minute per client address (0: no limit)."""
    judges: int = 4
    """Queries that may run at once (each on its own killable worker)."""
    continuous: bool = True
    """hf and llamacpp: continuous batching (a request joins the running batch when a row or slot
    frees, and leaves it the step its answer ends) instead of batching by round."""
    batch_wait: float = 0.1
    """Seconds the batcher waits for the next question before generating: while questions keep
    arriving this close together (a burst of clients), it keeps gathering them."""
    batch_wait_max: float = 0.5
    """Seconds the batcher gathers one batch at most before generating."""
    log_dir: str | None = None
    """Where requests.jsonl, answers.jsonl and feedback.jsonl go (default: sqltune-logs beside the first database)."""

    def validate(self) -> None:
        if self.host not in LOOPBACK and not self.api_key:
            raise ConfigError(
                f"--host {self.host}: serving beyond this machine needs an API key; pass --api-key KEY "
                "(clients send 'Authorization: Bearer KEY'), or bind 127.0.0.1"
            )
        if self.judges < 1 or self.max_body < 1024:
            raise ConfigError("judges must be at least 1, max_body at least 1024")


class JudgePool:
    """Several one-worker judges: a query holds one, so one runaway query blocks no one else."""

    def __init__(self, n: int, timeout: float, max_rows: int, allow_privileged_role: bool = False):
        self.free: queue.Queue[Judge] = queue.Queue()
        self.all = [Judge(workers=1, timeout=timeout, allow_privileged_role=allow_privileged_role) for _ in range(n)]
        for j in self.all:
            self.free.put(j)

    def run(self, db: str, sqls: list[str], keep_rows: int, max_bytes: int) -> Any:
        judge = self.free.get()
        try:
            return judge.run([(db, sqls)], keep_rows=keep_rows, max_bytes=max_bytes)[0]
        finally:
            self.free.put(judge)

    def close(self) -> None:
        for j in self.all:
            j.close()


class _PoolJudge:
    """The judge interface ask_many uses, spread over a JudgePool (one group per judge)."""

    def __init__(self, pool: JudgePool):
        self.pool = pool

    def run(self, groups: list[tuple[str, list[str]]], keep_rows: int = 0, max_bytes: int = 1_000_000) -> list[Any]:
        futures: list[Future] = []
        for db, sqls in groups:
            f: Future = Future()
            futures.append(f)

            def work(f: Future = f, db: str = db, sqls: list[str] = sqls) -> None:
                try:
                    f.set_result(self.pool.run(db, sqls, keep_rows, max_bytes))
                except Exception as e:  # reported to the request, never lost
                    f.set_exception(e)

            threading.Thread(target=work, daemon=True).start()
        return [f.result() for f in futures]


class Batcher:
    """A queue in front of the model, batching by round: questions that wait together are generated
    together, whether they are new or back for a repair round (continuous batching)."""

    def __init__(
        self,
        backend: Any,
        judge: Any,
        cfg: AskConfig,
        style: str,
        batch_size: int,
        wait: float,
        wait_max: float | None = None,
    ):
        self.backend, self.judge, self.cfg, self.style = backend, judge, cfg, style
        self.batch_size, self.wait = batch_size, wait
        self.wait_max = max(wait, wait if wait_max is None else wait_max)
        self.q: queue.Queue[tuple[Pending, Future]] = queue.Queue()
        self.lock = threading.Lock()  # the model, shared with the OpenAI routes
        self.batches: list[int] = []
        threading.Thread(target=self._loop, daemon=True).start()

    def submit(self, question: str, db: Database, evidence: str) -> Future:
        f: Future = Future()
        self.q.put((start(question, db, evidence, self.cfg, self.style), f))
        return f

    def _loop(self) -> None:
        again: list[tuple[Pending, Future]] = []
        while True:
            batch, again = again[: self.batch_size], again[self.batch_size :]
            if not batch:
                batch.append(self.q.get())
            # gather while questions keep coming within `wait` of each other, for `wait_max` at most
            last = first = time.monotonic()
            while len(batch) < self.batch_size:
                deadline = min(last + self.wait, first + self.wait_max)
                try:
                    batch.append(self.q.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
                last = time.monotonic()
            self.batches.append(len(batch))
            try:
                with self.lock:
                    step([p for p, _ in batch], self.backend, self.judge, self.cfg)
            except Exception as e:  # reported to every request of the batch, never lost
                for _, f in batch:
                    f.set_exception(e)
                continue
            for p, f in batch:
                if p.done:
                    f.set_result(p.answer)
                else:
                    again.append((p, f))  # a repair round, batched with whatever arrives meanwhile


class Asker:
    """Each question on a thread of its own, through every round of the ask engine; its generate
    calls join a continuous batch — the hf backend's (:class:`sqltune.models.continuous.ContinuousHF`)
    or llama.cpp's own slots — where a row frees the step its answer ends and a repair rejoins at once."""

    def __init__(self, engine: Any, judge: Any, cfg: AskConfig, style: str, workers: int):
        from concurrent.futures import ThreadPoolExecutor

        self.engine, self.judge, self.cfg, self.style = engine, judge, cfg, style
        self.lock = None  # the engine takes the model for each step itself
        self.threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqltune-ask")

    @property
    def batches(self) -> list[int]:
        """The most rows decoded in one step so far, where the engine counts them (the round batcher
        lists its batches)."""
        return [self.engine.widest] if hasattr(self.engine, "widest") else []

    def submit(self, question: str, db: Database, evidence: str) -> Future:
        return self.threads.submit(
            lambda: ask_many([(question, db, evidence)], self.engine, self.judge, self.cfg, self.style)[0]
        )


class RateLimit:
    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.hits: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        with self.lock:
            h = self.hits[client]
            while h and now - h[0] > 60:
                h.popleft()
            if len(h) >= self.per_minute:
                return False
            h.append(now)
            return True


class JsonlLog:
    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False, default=str) + "\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()


from fastapi import Request  # noqa: E402  (module level: route signatures are resolved by name)
from pydantic import BaseModel, Field  # noqa: E402


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    db: str | None = None
    evidence: str = Field(default="", max_length=4000)


class SqlRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=20000)
    db: str | None = None


class FeedbackRequest(BaseModel):
    id: str
    verdict: str = Field(pattern="^(right|wrong)$")
    corrected_sql: str | None = Field(default=None, max_length=20000)


def create_app(
    backend: Any,
    model_name: str,
    databases: list[Database],
    ask_cfg: AskConfig,
    style: str,
    cfg: ServeConfig,
) -> Any:
    """The FastAPI app; see the module docstring."""
    from fastapi import FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from sqltune.serve.openai_api import add_openai_routes

    cfg.validate()
    ask_cfg.validate()
    if not databases:
        raise ConfigError("sqltune serve needs at least one --db FILE")
    by_name: dict[str, Database] = {}
    for d in databases:
        if d.name in by_name:
            raise ConfigError(f"two databases are named {d.name!r} ({by_name[d.name].path}, {d.path}); rename one")
        by_name[d.name] = d
    log_dir = Path(cfg.log_dir) if cfg.log_dir else Path(databases[0].path).parent / "sqltune-logs"
    requests_log, answers_log = JsonlLog(log_dir / "requests.jsonl"), JsonlLog(log_dir / "answers.jsonl")
    feedback_log = JsonlLog(log_dir / "feedback.jsonl")
    pool = JudgePool(cfg.judges, ask_cfg.timeout, ask_cfg.max_rows, ask_cfg.allow_privileged_role)
    for j in pool.all:  # start every worker now, before requests arrive
        j.run([(databases[0].path, ["SELECT 1"])])
    batcher: Any
    gather = int(getattr(backend, "parallel", 16))  # questions decoded together: the model's --batch-size / --slots
    if cfg.continuous:
        from sqltune.models.continuous import continuous_engine

        backend = continuous_engine(backend, gather)
    if cfg.continuous and getattr(backend, "continuous", False):  # an engine that batches requests as they come
        batcher = Asker(backend, _PoolJudge(pool), ask_cfg, style, workers=4 * gather)
    else:
        batcher = Batcher(backend, _PoolJudge(pool), ask_cfg, style, gather, cfg.batch_wait, cfg.batch_wait_max)
    limiter = RateLimit(cfg.rate_limit)
    answers: dict[str, dict[str, Any]] = {}

    app = FastAPI(title="sqltune serve", docs_url=None, redoc_url=None)
    app.state.batcher, app.state.pool, app.state.log_dir = batcher, pool, log_dir
    app.state.backend = backend
    if cfg.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=[o.strip() for o in cfg.cors.split(",")], allow_methods=["GET", "POST"]
        )

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        t0 = time.perf_counter()
        client = request.client.host if request.client else "?"
        path = request.url.path
        wrong_key = request.headers.get("authorization", "") != f"Bearer {cfg.api_key}"
        if cfg.api_key and path.startswith("/v1/") and wrong_key:
            return JSONResponse({"error": "missing or wrong API key: send 'Authorization: Bearer KEY'"}, 401)
        if not limiter.allow(client):
            return JSONResponse({"error": f"rate limit: at most {cfg.rate_limit} requests a minute"}, 429)
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > cfg.max_body:
            return JSONResponse({"error": f"request body over {cfg.max_body} bytes"}, 413)
        if request.method == "POST":
            body = await request.body()
            if len(body) > cfg.max_body:
                return JSONResponse({"error": f"request body over {cfg.max_body} bytes"}, 413)
        response = await call_next(request)
        if path.startswith("/v1/"):
            requests_log.write(
                {
                    "time": time.time(),
                    "path": path,
                    "client": client,
                    "status": response.status_code,
                    "latency_s": round(time.perf_counter() - t0, 4),
                    **getattr(request.state, "log", {}),
                }
            )
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"bad request: {problems}"}, 422)

    def database(name: str | None) -> Database:
        if name is None:
            if len(by_name) == 1:
                return databases[0]
            raise HTTPException(400, f"several databases are served; name one in 'db': {', '.join(by_name)}")
        if name not in by_name:
            raise HTTPException(404, f"unknown database {name!r}; served: {', '.join(by_name)}")
        return by_name[name]

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "databases": list(by_name)}

    @app.get("/v1/databases")
    def list_databases() -> dict[str, Any]:
        return {
            "databases": [
                {"name": d.name, "tables": [t.name for t in d.schema.tables], "path": Path(d.path).name}
                for d in databases
            ]
        }

    @app.get("/v1/schema")
    def schema(db: str | None = None, style: str | None = None) -> dict[str, Any]:
        d = database(db)
        st = style or ask_cfg.schema_style or batcher.style
        if st not in ("ddl", "text", "compact"):
            raise HTTPException(400, f"style {st!r}: choose ddl, text or compact")
        return {
            "db": d.name,
            "style": st,
            "schema": d.schema_text(st),
            "tables": [{"name": t.name, "columns": [c.name for c in t.columns]} for t in d.schema.tables],
        }

    @app.post("/v1/ask")
    def ask_route(req: AskRequest, request: Request) -> dict[str, Any]:
        d = database(req.db)
        answer = batcher.submit(req.question, d, req.evidence).result()
        out = answer.to_dict()
        out["id"] = uuid.uuid4().hex
        answers[out["id"]] = {"question": req.question, "db": d, "evidence": req.evidence, "sql": answer.sql}
        request.state.log = {
            "question": req.question,
            "db": d.name,
            "sql": answer.sql,
            "answered": answer.answered,
            "attempts": len(answer.attempts),
        }
        answers_log.write({"kind": "answer", "time": time.time(), **{k: v for k, v in out.items() if k != "rows"}})
        return out

    @app.post("/v1/sql")
    def sql_route(req: SqlRequest, request: Request) -> dict[str, Any]:
        d = database(req.db)
        out = run_sql(pool, d, req.sql, ask_cfg)
        request.state.log = {"sql": req.sql, "db": d.name, "ok": out["ok"]}
        return out

    @app.post("/v1/feedback")
    def feedback(req: FeedbackRequest) -> dict[str, Any]:
        a = answers.get(req.id)
        if a is None:
            raise HTTPException(404, f"no answer with id {req.id!r} in this server's session")
        d: Database = a["db"]
        sql = req.corrected_sql if req.corrected_sql else (a["sql"] if req.verdict == "right" else "")
        event = {"kind": "feedback", "time": time.time(), "answer_id": req.id, "verdict": req.verdict}
        event.update(
            {"question": a["question"], "db": d.name, "answer_sql": a["sql"], "corrected_sql": req.corrected_sql}
        )
        answers_log.write(event)
        if sql:  # a confirmed or corrected answer: a training pair
            feedback_log.write(
                {
                    "id": req.id,
                    "question": a["question"],
                    "sql": sql,
                    "db_id": d.name,
                    "db_path": d.path,
                    "evidence": a["evidence"],
                    "verdict": "confirmed" if not req.corrected_sql else "corrected",
                }
            )
        return {"ok": True, "pair": bool(sql), "log": str(log_dir / "feedback.jsonl")}

    add_openai_routes(app, backend, model_name, batcher.lock)

    @app.get("/")
    def index() -> Any:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.state.close = pool.close  # the CLI's server stops the judges' workers on exit
    return app
