"""Questions for synthesized SQL written by a teacher LLM, kept only when they survive a back-check.

``sqltune data synth --teacher openai``: for every pair the built-in phrasing produced, a teacher
on any OpenAI-compatible server is shown the schema, the SQL and the first rows of its result
(:func:`sqltune.prompts.question_writer_prompt`) and writes the question a person would ask.
Then the **back-check**: a model (the teacher itself, or another one named by ``check_model``
and ``check_url``: a student, a second opinion) is given that question in the very prompt sqltune
trains and predicts with (:func:`sqltune.prompts.prompt_messages`) and writes SQL; the judge runs
it read-only beside the pair's SQL. The teacher's question replaces the built-in one only when
both return the same result (the eval stage's Spider comparison, multiset); otherwise the pair keeps
its built-in question (``on_reject=builtin``, correct by construction) or is dropped
(``on_reject=drop``). Every request is cached by its prompt (``OUT.teacher_cache.jsonl``), so a
rerun asks nothing twice; requests run ``concurrency`` at a time; teacher failures are retried
with backoff (:class:`sqltune.data.cot.OpenAITeacher`) and counted, never fatal.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqltune import prompts
from sqltune.data.cot import OpenAITeacher
from sqltune.db.schema import introspect
from sqltune.extract import extract_sql
from sqltune.judge import ScoreJob
from sqltune.models.openai_client import ChatClient, RetryPolicy

ON_REJECT = ("builtin", "drop")
MAX_QUESTION_CHARS = 300
_PREFIX = re.compile(r"^\s*(?:\*\*)?(?:question|q)\s*[:\-]\s*(?:\*\*)?\s*", re.I)
_SQLISH = re.compile(r"\bselect\b.*\bfrom\b", re.I | re.S)


def clean_question(text: str) -> tuple[str | None, str]:
    """(rejection reason or None, the question) from a teacher's reply: its first non-empty line,
    without a "Question:" label, quotes or markdown emphasis."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    q = _PREFIX.sub("", line).strip().strip("*").strip().strip("\"'`“”").strip()
    if not q:
        return "no_question", ""
    if _SQLISH.search(q) or "```" in q:
        return "sql_in_question", q
    if len(q) > MAX_QUESTION_CHARS:
        return "too_long", q
    return None, q


def teacher(cfg: Any, url: str | None, model: str | None, cache_path: Path) -> OpenAITeacher:
    """A teacher on the one OpenAI-compatible client, with a synth config's settings."""
    policy = RetryPolicy(retries=cfg.teacher_retries, backoff=cfg.teacher_backoff, timeout=cfg.teacher_timeout)
    return OpenAITeacher(
        ChatClient(model or "", url, cfg.api_key, policy),
        cfg.teacher_max_tokens,
        cache_path,
        {"temperature": cfg.teacher_temperature},
    )


def rephrase(pairs: list[dict[str, Any]], cfg: Any, judge: Any, cache_path: Path) -> tuple[list[dict], dict]:
    """The pairs with verified teacher questions (see the module docstring), and the report part.

    Each pair needs ``_preview`` (its result's columns and first rows). ``cfg``: a
    :class:`sqltune.data.synth.SynthConfig` with ``teacher='openai'``."""
    writer = teacher(cfg, cfg.teacher_url, cfg.teacher_model, cache_path)
    same = (cfg.check_model or cfg.teacher_model, cfg.check_url or cfg.teacher_url) == (
        cfg.teacher_model,
        cfg.teacher_url,
    )
    checker = (
        writer
        if same
        else teacher(cfg, cfg.check_url or cfg.teacher_url, cfg.check_model or cfg.teacher_model, cache_path)
    )
    schemas: dict[str, str] = {}
    for p in pairs:
        if p["db_path"] not in schemas:
            schemas[p["db_path"]] = prompts.render_schema(introspect(p["db_path"], sample_rows=3), cfg.teacher_schema)
    rejected: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    lock = threading.Lock()

    def count(r: Any) -> None:
        with lock:
            tokens["prompt"] += r.prompt_tokens
            tokens["completion"] += r.completion_tokens
            tokens["cached"] += r.cached

    def write_question(p: dict[str, Any]) -> tuple[str | None, str]:
        cols, rows = p["_preview"]
        r = writer.chat(
            [{"role": "user", "content": prompts.question_writer_prompt(schemas[p["db_path"]], p["sql"], cols, rows)}],
            cfg.teacher_temperature,
            0,
        )
        count(r)
        return ("teacher_error", r.error) if r.error else clean_question(r.text)

    def derive_sql(p: dict[str, Any], question: str) -> tuple[str | None, str]:
        r = checker.chat(prompts.prompt_messages(schemas[p["db_path"]], question), 0.0, 0)
        count(r)
        if r.error:
            return "check_error", r.error
        sql = extract_sql(r.text)
        return (None, sql) if sql else ("check_no_sql", "")

    with ThreadPoolExecutor(cfg.teacher_concurrency) as pool:
        written = list(pool.map(write_question, pairs))
        todo = [(p, q) for p, (why, q) in zip(pairs, written, strict=True) if why is None]
        derived = list(pool.map(lambda pq: derive_sql(*pq), todo))
    verdict: dict[int, str | None] = {}
    for p, (why, _) in zip(pairs, written, strict=True):
        if why is not None:
            verdict[id(p)] = why
    jobs, owners = [], []
    for (p, q), (why, sql) in zip(todo, derived, strict=True):
        if why is not None:
            verdict[id(p)] = why
        else:
            jobs.append(ScoreJob(p["db_path"], p["sql"], p["sql"], [sql], "multiset", cfg.timeout, analysis=False))
            owners.append((p, q, sql))
    for (p, q, sql), res in zip(owners, judge.score(jobs) if jobs else [], strict=True):
        v = res.verdicts[0] if res.verdicts else None
        if res.db_error or res.gold_error or v is None:
            verdict[id(p)] = "check_failed"
        elif not v.ok:
            verdict[id(p)] = "check_sql_error"
        elif not v.correct:
            verdict[id(p)] = "check_wrong_result"
        else:
            verdict[id(p)] = None
            p["builtin_question"] = p["question"]
            p["question"] = q
            p["check_sql"] = sql
    out = []
    for p in pairs:
        why = verdict.get(id(p), "check_failed")
        if why is None:
            p["question_source"] = "teacher"
            out.append(p)
            continue
        rejected[why] += 1
        if cfg.on_reject == "builtin":
            p["question_source"] = "builtin"
            out.append(p)
    part = {
        "teacher": writer.settings(),
        "check_model": cfg.check_model or cfg.teacher_model,
        "check_url": checker.base_url,
        "asked": len(pairs),
        "teacher_questions_kept": sum(1 for p in out if p["question_source"] == "teacher"),
        "rejected": dict(sorted(rejected.items())),
        "on_reject": cfg.on_reject,
        "dropped": len(pairs) - len(out),
        "tokens": {"prompt": tokens["prompt"], "completion": tokens["completion"]},
        "cached_answers": tokens["cached"],
        "cache": str(cache_path),
    }
    return out, part


__all__ = ["ON_REJECT", "clean_question", "rephrase"]
