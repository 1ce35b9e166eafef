"""``sqltune data cot``: chain-of-thought answers from a teacher, kept only when they execute to the gold result.

For each record of a ``data build`` dataset the teacher gets the Llama cookbook's teacher prompt
(:data:`sqltune.prompts.TEACHER_PROMPT`: the DDL schema, the external knowledge, the question
and the gold SQL) and writes step-by-step reasoning that ends with a SQL block. The teacher is
any OpenAI-compatible server (vLLM, llama.cpp's server, OpenAI, ``sqltune serve``) or the
builtin one (:mod:`.cot_builtin`, from the gold SQL's parse, no LLM).

A reasoning is **kept only when its final SQL returns the gold result** (the judge, the eval
stage's comparison), not when its text equals the gold's: the cookbook's string test throws good
reasoning away (it also deletes newlines, gluing tokens). Reasonings that mention the gold or
reference SQL, or run over the length cap, are rejected too. A rejected record gets up to
``retry_samples`` more samples at ``retry_temperature``; then it is dropped, or kept with only
the SQL block as its answer (``on_fail: plain``).

Output records are the input records plus ``reasoning`` (the text before the SQL), ``cot``
(the teacher's whole answer), ``cot_status`` and ``messages`` rendered by the one prompt module
with the cookbook's CoT system prompt, so ``sqltune train`` trains on them unchanged and
``predict --cot`` / ``ask --cot`` take the last SQL block.

Resumable like ``predict``: the output is appended and fsynced record by record, a rerun skips
the ids already there (a torn last line is cut), so a SIGKILL loses at most the requests in
flight and duplicates nothing. Teacher answers are cached by a hash of (model, prompt,
temperature, sample) in ``OUT.teacher-cache.jsonl``, so a rerun asks nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.db.schema import introspect
from sqltune.errors import ConfigError, DataError, ModelError
from sqltune.extract import extract_sql, reasoning_before_sql
from sqltune.io import recover_done, write_json
from sqltune.judge import Judge
from sqltune.judge.worker import ScoreJob
from sqltune.models.openai_client import ChatClient, RetryPolicy
from sqltune.records import read_records

TEACHERS = ("builtin", "openai")
ON_FAIL = ("drop", "plain")
LEAK = re.compile(
    r"\b(gold|reference|provided|given|expected|ground[- ]truth)\s+(sql|query|output|answer|statement|solution)\b",
    re.IGNORECASE,
)
"""A reasoning that talks about the answer it was shown, instead of deriving it."""


@dataclass(frozen=True)
class CotConfig:
    """Settings of ``sqltune data cot``."""

    dataset: str
    """Records from 'sqltune data build' (question, sql, db_path, messages)."""
    out: str
    """CoT records JSONL (appended; rerun the same command to resume)."""
    teacher: str = "builtin"
    """builtin (reasoning from the gold SQL's parse, no LLM) | openai (any OpenAI-compatible server)."""
    teacher_url: str | None = None
    """openai: the server, e.g. http://localhost:8000/v1 (default $OPENAI_BASE_URL)."""
    teacher_model: str | None = None
    """openai: the model name the server knows."""
    api_key: str | None = field(default=None, repr=False)
    """openai: API key (default $OPENAI_API_KEY); never written to the report."""
    temperature: float = 0.0
    """The first sample's temperature."""
    retry_samples: int = 2
    """More samples for a rejected record, at retry_temperature."""
    retry_temperature: float = 0.8
    """Temperature of the retry samples."""
    max_tokens: int = 1024
    """Most tokens per teacher answer."""
    max_chars: int = 4000
    """Reject a reasoning longer than this many characters."""
    on_fail: str = "drop"
    """drop | plain (keep the record with only the SQL block as its answer)."""
    concurrency: int = 8
    """Teacher requests in flight."""
    retries: int = 4
    """openai: retries of a failed request, with exponential backoff."""
    backoff: float = 0.5
    """openai: seconds before the first retry (doubling)."""
    timeout: float = 120.0
    """openai: seconds per request."""
    exec_timeout: float = 10.0
    """Seconds a reasoning's SQL may run when it is checked."""
    limit: int | None = None
    """Only the first N records."""

    def validate(self) -> None:
        problems = []
        if self.teacher not in TEACHERS:
            problems.append(f"teacher={self.teacher!r}: choose one of {', '.join(TEACHERS)}")
        if self.teacher == "openai" and not self.teacher_model:
            problems.append("teacher=openai needs --teacher-model (the name the server knows)")
        if self.on_fail not in ON_FAIL:
            problems.append(f"on_fail={self.on_fail!r}: choose one of {', '.join(ON_FAIL)}")
        if self.retry_samples < 0 or self.concurrency < 1 or self.max_chars < 1 or self.max_tokens < 1:
            problems.append("retry_samples must be >= 0; concurrency, max_chars and max_tokens >= 1")
        if problems:
            raise ConfigError("invalid cot settings: " + "; ".join(problems))


@dataclass
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None
    """The teacher could not answer (after its retries): timeout, refusal, garbage."""


# --------------------------------------------------------------------------- teachers


class BuiltinTeacher:
    name = "builtin"

    def __init__(self) -> None:
        self._fks: dict[str, list[tuple[str, str, str, str]]] = {}
        self._lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        return {"teacher": "builtin"}

    def ask(self, record: dict[str, Any], prompt: str, temperature: float, sample: int) -> Reply:
        from sqltune.data.cot_builtin import reason

        db = record["db_path"]
        with self._lock:
            if db not in self._fks:
                s = introspect(db)
                self._fks[db] = [(f.table, f.column, f.ref_table, f.ref_column) for f in s.foreign_keys]
        return Reply(reason(record["sql"], record["question"], self._fks[db]))


class OpenAITeacher:
    """Any OpenAI-compatible chat server; answers cached by prompt hash in a JSONL file."""

    name = "openai"

    def __init__(self, client: ChatClient, max_tokens: int, cache_path: Path, settings: dict[str, Any] | None = None):
        """``client``: the one OpenAI-compatible client (its retry policy); ``settings``: what the report records
        besides the client's own (temperatures)."""
        self.client = client
        self.max_tokens = max_tokens
        self.base_url = client.base_url
        self.extra = settings or {}
        self.cache_path = cache_path
        self.cache: dict[str, dict[str, Any]] = {}
        if cache_path.exists():
            for line in cache_path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    e = json.loads(line)
                    self.cache[e["key"]] = e
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line from a kill: that request is simply asked again
        self._lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        p = self.client.policy
        return {
            "teacher": "openai",
            "base_url": self.base_url,
            "model": self.client.model,
            **self.extra,
            "max_tokens": self.max_tokens,
            "timeout": p.timeout,
            "retries": p.retries,
        }

    def key(self, prompt: str, temperature: float, sample: int) -> str:
        raw = json.dumps([self.client.model, prompt, temperature, sample, self.max_tokens])
        return hashlib.sha256(raw.encode()).hexdigest()

    def ask(self, record: dict[str, Any], prompt: str, temperature: float, sample: int) -> Reply:
        return self.chat([{"role": "user", "content": prompt}], temperature, sample)

    def chat(self, messages: list[dict[str, str]], temperature: float, sample: int) -> Reply:
        """One chat completion (cached; retried by the client's policy); a lone user turn is keyed by its text.
        An empty answer is asked again, then an error (never cached)."""
        lone = len(messages) == 1 and messages[0]["role"] == "user"
        k = self.key(messages[0]["content"] if lone else json.dumps(messages), temperature, sample)
        hit = self.cache.get(k)
        if hit is not None:
            return Reply(hit["text"], hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0), cached=True)
        r = self.client.complete(
            messages, max_tokens=self.max_tokens, temperature=temperature, seed=sample, require_text=True
        )
        if r.status != "ok":
            return Reply("", error=r.error)
        reply = Reply(r.text, r.prompt_tokens, r.completion_tokens)
        self._remember(k, reply)
        return reply

    def _remember(self, k: str, reply: Reply) -> None:
        entry = {"key": k, "text": reply.text, "prompt_tokens": reply.prompt_tokens}
        entry["completion_tokens"] = reply.completion_tokens
        with self._lock:
            self.cache[k] = entry
            with open(self.cache_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())


# --------------------------------------------------------------------------- checks


def screen(text: str, max_chars: int) -> tuple[str | None, str]:
    """(rejection reason or None, the final SQL) before execution."""
    sql = extract_sql(text, cot=True)
    if not sql:
        return "no_sql", ""
    reasoning = text[: text.rfind("```")] if "```" in text else text
    if LEAK.search(reasoning):
        return "mentions_gold", sql
    if len(text) > max_chars:
        return "too_long", sql
    return None, sql


def report_path(out: str | Path) -> Path:
    p = Path(out)
    return p.with_name(p.stem + ".report.json")


def build_cot(cfg: CotConfig, progress: Any = None) -> dict[str, Any]:
    """Write CoT records for ``cfg.dataset`` into ``cfg.out`` (resuming), and the report; return the report."""
    cfg.validate()
    src = Path(cfg.dataset)
    if not src.is_file():
        raise DataError(f"{src}: no such dataset; build one with 'sqltune data build'")
    records = read_records(
        src, ("id", "question", "sql", "db_path"), unique="id", hint="Use a dataset from 'sqltune data build'"
    )
    if cfg.limit is not None:
        records = records[: cfg.limit]
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = recover_done(out)
    todo = [r for r in records if str(r["id"]) not in done]
    teacher: Any = (
        BuiltinTeacher()
        if cfg.teacher == "builtin"
        else OpenAITeacher(
            ChatClient(
                cfg.teacher_model or "",
                cfg.teacher_url,
                cfg.api_key,
                RetryPolicy(retries=cfg.retries, backoff=cfg.backoff, timeout=cfg.timeout),
            ),
            cfg.max_tokens,
            out.with_name(out.name + ".teacher-cache.jsonl"),
            {"temperature": cfg.temperature, "retry_temperature": cfg.retry_temperature},
        )
    )
    ddl: dict[str, str] = {}

    def teacher_prompt(r: dict[str, Any]) -> str:
        if r["db_path"] not in ddl:
            ddl[r["db_path"]] = prompts.render_schema(introspect(r["db_path"]), "ddl")
        return prompts.teacher_prompt(ddl[r["db_path"]], r["question"], r.get("evidence", ""), r["sql"])

    started = time.perf_counter()
    stats: dict[str, Any] = {"teacher_errors": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0}
    rejected: Counter[str] = Counter()
    by_difficulty: dict[str, Counter[str]] = defaultdict(Counter)
    samples_used: Counter[int] = Counter()
    chars: list[int] = []
    bar = progress(len(todo)) if progress else None

    with (
        Judge(workers=1, timeout=cfg.exec_timeout) as judge,
        ThreadPoolExecutor(cfg.concurrency) as pool,
        open(out, "a", encoding="utf-8") as fh,
    ):

        def submit(r: dict[str, Any], sample: int) -> Future:
            t = cfg.temperature if sample == 0 else cfg.retry_temperature
            f = pool.submit(teacher.ask, r, teacher_prompt(r), t, sample)
            f.sqltune = (r, sample)  # type: ignore[attr-defined]
            return f

        def write(r: dict[str, Any], status: str, text: str, sample: int) -> None:
            rec = {k: v for k, v in r.items() if k not in ("messages", "instruction", "input", "output")}
            answer = text if status == "kept" else f"{prompts.COT_FINAL}\n```sql\n{r['sql'].strip()}\n```"
            rec.update(
                reasoning=reasoning_before_sql(text) if status == "kept" else "",
                cot=text if status == "kept" else "",
                cot_status=status,
                cot_samples=sample + 1,
                messages=prompts.cot_messages(r, answer),
            )
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

        window = cfg.concurrency * 2
        queue = list(todo)
        running: set[Future] = set()
        while queue or running:
            while queue and len(running) < window:
                running.add(submit(queue.pop(0), 0))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                r, sample = f.sqltune  # type: ignore[attr-defined]
                reply: Reply = f.result()
                stats["cached"] += reply.cached
                stats["prompt_tokens"] += reply.prompt_tokens
                stats["completion_tokens"] += reply.completion_tokens
                if reply.error:
                    stats["teacher_errors"] += 1
                    reason: str | None = "teacher_error"
                    sql = ""
                else:
                    reason, sql = screen(reply.text, cfg.max_chars)
                if reason is None:
                    job = ScoreJob(
                        r["db_path"], r["sql"], r["sql"], [sql], "multiset", cfg.exec_timeout, analysis=False
                    )
                    res = judge.score([job])[0]
                    if res.db_error or res.gold_error:
                        reason = "gold_failed"
                    elif not res.verdicts[0].correct:
                        reason = "wrong_result" if res.verdicts[0].ok else "sql_error"
                diff = str(r.get("difficulty") or "unknown")
                if reason is None:
                    write(r, "kept", reply.text, sample)
                    by_difficulty[diff]["kept"] += 1
                    samples_used[sample + 1] += 1
                    chars.append(len(reply.text))
                    if bar:
                        bar.update(1)
                    continue
                rejected[reason] += 1
                if sample < cfg.retry_samples and reason != "gold_failed":
                    running.add(submit(r, sample + 1))
                    continue
                by_difficulty[diff][f"rejected_{reason}"] += 1
                if cfg.on_fail == "plain":
                    write(r, "kept_without_reasoning", "", sample)
                if bar:
                    bar.update(1)
    if bar:
        bar.close()

    final = recover_done(out)
    statuses = Counter(str(x.get("cot_status")) for x in final.values())
    # what the output holds (every run so far), then what this run did
    for x in final.values():
        if x.get("cot_status") == "kept" and str(x["id"]) in done:
            by_difficulty[str(x.get("difficulty") or "unknown")]["kept"] += 1
            samples_used[int(x.get("cot_samples", 1))] += 1
            chars.append(len(x.get("cot", "")))
    report = {
        "dataset": str(src),
        "out": str(out),
        "records": len(records),
        "written": len(final),
        "kept": statuses.get("kept", 0),
        "kept_without_reasoning": statuses.get("kept_without_reasoning", 0),
        "dropped": len(records) - len(final),
        "resumed_from": len(done),
        "rejected_samples": dict(rejected),
        "by_difficulty": {k: dict(v) for k, v in sorted(by_difficulty.items())},
        "samples_to_keep": {str(k): v for k, v in sorted(samples_used.items())},
        "reasoning_chars": _stats(chars),
        "tokens": {"prompt": stats["prompt_tokens"], "completion": stats["completion_tokens"]},
        "teacher_errors": stats["teacher_errors"],
        "cached_answers": stats["cached"],
        "teacher": teacher.settings(),
        "config": {k: v for k, v in asdict(cfg).items() if k != "api_key"},
        "seconds": round(time.perf_counter() - started, 2),
        "note": "rejected_samples, tokens, teacher_errors, cached_answers and seconds count this run; the rest the whole output",
    }
    write_json(report_path(out), report)
    return report


def _stats(xs: list[int]) -> dict[str, int]:
    if not xs:
        return {}
    s = sorted(xs)
    return {"median": s[len(s) // 2], "p90": s[int(0.9 * (len(s) - 1))], "max": s[-1]}


__all__ = ["CotConfig", "build_cot", "report_path", "screen", "ModelError"]
