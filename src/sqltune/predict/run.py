"""``sqltune predict``: a data-stage JSONL in, predictions JSONL and a manifest out.

Output records (one JSON object per line, appended and flushed as each batch finishes):

``id, db_id, pred_sql, raw, prompt_tokens, completion_tokens, seconds, status`` and, with
``num_samples > 1``, ``candidates`` (the extracted SQL of every candidate, greedy first) and
``votes`` (how many candidates share the chosen result); ``resolved`` (``{written: table}``) when a
table name the database lacks was read as the one table it names after a prefix (``resolve_tables``).
A record whose prompt shows tables by short names (``table_names``, :mod:`sqltune.linking.names`) has its
answers read back to the real names first; ``raw`` keeps the model's text.

Resuming: rerunning with the same ``--out`` skips the ids already written. A crash can leave a
torn last line; it is detected (no newline, or not JSON) and cut off before appending, so a
kill at any moment loses at most the batch in flight.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqltune.config import to_dict as config_dict
from sqltune.db.schema import introspect
from sqltune.db.target import SQLGLOT_DIALECT, engine_of, is_url
from sqltune.errors import ConfigError, DataError, ExecutionError, ModelError
from sqltune.extract import extract_sql
from sqltune.io import (
    package_versions,
    read_json,
    recover_done,
    sha256_file,
    sha256_text,
    weights_sha256,
    write_json,
)
from sqltune.judge import Judge
from sqltune.models.backend_config import BackendConfig, open_backend
from sqltune.models.generation import Backend, GenParams
from sqltune.prompts import messages_from_record
from sqltune.records import read_records, side_path
from sqltune.sqlutil import rename_tables, resolve_tables


@dataclass(frozen=True, kw_only=True)
class PredictConfig(BackendConfig):
    """Settings of ``sqltune predict`` (each is also a ``--option`` and a YAML key); the model settings are
    :class:`sqltune.models.backend_config.BackendConfig`'s, shared with ask, serve and mcp."""

    dataset: str
    """Dataset JSONL from 'sqltune data build' (chat or alpaca records)."""
    out: str
    """Predictions JSONL (appended; rerun the same command to resume)."""
    max_new_tokens: int = 256
    """Most tokens generated per answer."""
    temperature: float = 0.0
    """0 = greedy."""
    top_p: float = 1.0
    """Nucleus sampling."""
    top_k: int = 0
    """Top-k sampling (0 = off)."""
    num_samples: int = 1
    """Candidates per question: the first greedy, the others sampled; > 1 votes by execution result."""
    sample_temperature: float = 0.7
    """Temperature of the extra candidates."""
    seed: int = 0
    """Sampling seed."""
    stop_after_sql: bool = True
    """hf: end each answer once its fenced SQL block is closed, or the bare statement it opens with meets its
    ``;`` (what follows could not change the extracted query; not with cot, whose last block counts)."""
    cot: bool = False
    """The model reasons first: the cookbook's CoT system prompt, and the last SQL block is taken."""
    limit: int | None = None
    """Only the first N records."""
    vote_timeout: float = 10.0
    """Seconds per candidate when voting by execution result."""
    ground_values: bool = True
    """hf: a text literal compared to a column (``=``, ``!=``, ``IN``) decodes to one of the values the column
    holds, when the value index knows all of them (:mod:`sqltune.models.grounding`); the record's
    ``grounded`` counts the steps it restricted. Other backends do not ground."""
    resolve_tables: bool = True
    """A table name the model wrote that the database lacks, but one table carries after a prefix
    (``singer`` for ``concert_singer__singer``, ``customer`` for ``dim_customer``), is rewritten to it
    (:func:`sqltune.sqlutil.resolve_tables`); the record keeps ``raw`` and lists the rewrites in ``resolved``."""
    continuous: bool = True
    """hf: the questions share one continuous batch (:mod:`sqltune.models.continuous`, what ``serve`` decodes
    with): an answer leaves its row the step it ends and the next question takes the row, so no batch waits for
    its longest answer. Off: batches of ``batch_size`` questions, each run to its longest answer."""
    query_bank: bool = True
    """hf: one of the verified queries of the database's query bank nearest in meaning to the question replaces
    the model's answer when the model finds it the likelier answer, or when the model's answer does not run
    (:mod:`sqltune.linking.bank`); the record's ``bank`` says what was compared and ``model_sql`` keeps the
    model's own. Not with cot or other backends."""

    def validate(self) -> None:
        problems = self.backend_problems()
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens={self.max_new_tokens}: must be at least 1")
        if self.num_samples < 1:
            problems.append(f"num_samples={self.num_samples}: must be at least 1")
        if self.temperature < 0 or self.sample_temperature < 0:
            problems.append("temperatures must be >= 0")
        if self.num_samples > 1 and self.sample_temperature == 0:
            problems.append("num_samples > 1 needs sample_temperature > 0, or every candidate is the same")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p={self.top_p}: must be in (0, 1]")
        if problems:
            raise ConfigError("invalid predict settings: " + "; ".join(problems))

    def gen_params(self) -> GenParams:
        return GenParams(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            num_samples=self.num_samples,
            sample_temperature=self.sample_temperature,
            seed=self.seed,
            stop_after_sql=self.stop_after_sql and not self.cot,
        )


def manifest_path(out: str | Path) -> Path:
    return side_path(out, "manifest")


def load_dataset_records(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Data-stage records; each needs ``id`` and a prompt (chat ``messages`` or alpaca fields)."""

    def prompt(r: dict[str, Any]) -> str | None:
        if "messages" not in r and "instruction" not in r:
            return "no prompt: needs 'messages' (chat) or 'instruction'/'input' (alpaca)"
        if "messages" in r and not any(m.get("role") == "user" and m.get("content") for m in r["messages"]):
            return f"(id {r.get('id')}) 'messages' has no user turn with the question"
        return None

    records = read_records(path, ("id",), unique="id", check=prompt, hint="Build the file with 'sqltune data build'")
    return records[:limit] if limit else records


def _template_hash(backend: Backend) -> str | None:
    tok = getattr(backend, "tokenizer", None)
    tpl = getattr(tok, "chat_template", None)
    return sha256_text(tpl) if isinstance(tpl, str) else None


def build_manifest(cfg: PredictConfig, backend: Backend, records: list[dict[str, Any]]) -> dict[str, Any]:
    info = backend.info()
    first = records[0] if records else {}
    return {
        "kind": "sqltune.predict",
        "model": cfg.model,
        "backend": info,
        "weights_sha256": weights_sha256(info.get("path")),
        "chat_template_sha256": _template_hash(backend),
        "dataset": str(Path(cfg.dataset).resolve()),
        "dataset_sha256": sha256_file(cfg.dataset),
        "records": len(records),
        "prompt_format": {
            "format": "chat" if "messages" in first else "alpaca",
            "schema_style": first.get("schema_style"),
            "system_prompt_sha256": sha256_text(messages_from_record(first, cfg.cot)[0]["content"]) if first else None,
        },
        "decoding": {
            **cfg.gen_params().as_dict(),
            "ground_values": cfg.ground_values and bool(getattr(backend, "grounds_values", False)),
            "query_bank": _bank_on(cfg, backend),
        },
        "extraction": {"cot": cfg.cot},
        "versions": package_versions(("sqltune", "torch", "transformers", "peft", "trl", "openai", "vllm")),
        "config": config_dict(cfg),
    }


def _progress(total: int, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="q", desc="predict", dynamic_ncols=True, disable=None)


def predict(cfg: PredictConfig, backend: Backend | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a prediction; return a summary. See the module docstring."""
    cfg.validate()
    records = load_dataset_records(cfg.dataset, cfg.limit)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = recover_done(out)
    todo = [r for r in records if str(r["id"]) not in done]
    if backend is None:
        backend = open_backend(cfg)
    manifest = build_manifest(cfg, backend, records)
    previous = read_json(manifest_path(out)) if manifest_path(out).exists() and done else {}
    manifest["runs"] = previous.get("runs", []) if isinstance(previous, dict) else []
    write_json(manifest_path(out), manifest)
    params = cfg.gen_params()
    bank_on = _bank_on(cfg, backend)
    judge = Judge(workers=1, timeout=cfg.vote_timeout) if cfg.num_samples > 1 or bank_on else None
    # Chunks of similar prompts: with the hf backend's shared prefix, prompts in text order (one
    # database's questions side by side: their system prompt and schema computed once per batch),
    # else by length (less padding). Each chunk is written as soon as it is done, so at most one
    # chunk is lost to a kill.
    settings = cfg.backend_settings()
    chunk = {"hf": settings.get("batch_size"), "llamacpp": 8 * getattr(backend, "parallel", 1)}.get(cfg.backend)
    chunk = chunk or 2 * getattr(backend, "parallel", 8)
    engine = backend
    if cfg.continuous:
        from sqltune.models.continuous import continuous_engine

        engine = continuous_engine(backend, chunk)
    if engine is not backend:
        chunk *= CHUNKS_IN_FLIGHT
    if cfg.backend == "hf" and settings["shared_prefix"]:
        todo.sort(key=lambda r: json.dumps(messages_from_record(r, cfg.cot)))
    else:
        todo.sort(key=lambda r: -len(json.dumps(messages_from_record(r))))
    bar = _progress(len(records), len(records) - len(todo)) if progress else None
    started = time.perf_counter()
    statuses: dict[str, int] = {}
    tables: dict[str, list[str]] = {}
    ground = cfg.ground_values and bool(getattr(backend, "grounds_values", False))
    groundings: dict[str, Any] = {}
    indexes: dict[str, Any] = {}  # per database, its value index (grounding and the bank's chooser read it)
    written = 0
    try:
        with open(out, "a", encoding="utf-8") as fh:
            for start in range(0, len(todo), chunk):
                batch = todo[start : start + chunk]
                t0 = time.perf_counter()
                prompts = [messages_from_record(r, cfg.cot) for r in batch]
                if ground:
                    grounding = [_grounding(r, groundings, indexes) for r in batch]
                    outs = engine.generate(prompts, params, grounding=grounding)  # type: ignore[call-arg]
                else:
                    outs = engine.generate(prompts, params)
                per = (time.perf_counter() - t0) / len(batch)
                recs = [_record(r, comps, per, cfg, tables) for r, comps in zip(batch, outs, strict=False)]
                if judge is not None and cfg.num_samples > 1:
                    _vote(judge, batch, recs)
                if judge is not None and bank_on:
                    _bank(engine, judge, batch, prompts, recs, indexes)
                for rec in recs:
                    statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                written += len(batch)
                if bar is not None:
                    bar.update(len(batch))
                    rate = written / max(time.perf_counter() - started, 1e-9)
                    bar.set_postfix_str(f"{rate:.2f} q/s")
    finally:
        if bar is not None:
            bar.close()
        if judge is not None:
            judge.close()
        if engine is not backend:
            engine.close()  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    final = recover_done(out)
    summary = {
        "out": str(out),
        "manifest": str(manifest_path(out)),
        "records": len(records),
        "already_done": len(records) - len(todo),
        "generated": written,
        "total_written": len(final),
        "statuses": statuses,
        "seconds": round(seconds, 2),
        "questions_per_second": round(written / seconds, 3) if seconds > 0 and written else None,
    }
    manifest["last_run"] = summary
    manifest["runs"].append(summary)  # one entry per invocation: a resumed file keeps its history
    write_json(manifest_path(out), manifest)
    return summary


CHUNKS_IN_FLIGHT = 4
"""With the continuous batch, questions handed to it at once (and written together), in batches of
``batch_size``: the rows stay full until the last few answers of each hand-over."""


def _bank_on(cfg: PredictConfig, backend: Backend) -> bool:
    return cfg.query_bank and not cfg.cot and bool(getattr(backend, "scores_answers", False))


def _bank(
    backend: Backend,
    judge: Judge,
    batch: list[dict[str, Any]],
    prompts: list[Any],
    recs: list[dict[str, Any]],
    indexes: dict[str, Any],
) -> None:
    """The query bank's turn (:func:`sqltune.linking.bank.choose`): per record whose database has a bank, the
    model's answer (run through the judge: one that fails is out) against the bank's nearest queries, the
    likeliest for its question kept."""
    from sqltune.linking.bank import NEAREST, PICK_FIELDS, bank_for, choose, named_values, runs

    by_db: dict[str, list[int]] = {}
    for k, r in enumerate(batch):
        db = r.get("db_path")
        if db and r.get("question") and not r.get("table_names") and (is_url(str(db)) or Path(str(db)).is_file()):
            by_db.setdefault(str(db), []).append(k)
    for db, ks in by_db.items():
        bank = bank_for(db)
        if bank is None:
            continue
        hits = bank.nearest([str(batch[k]["question"]) for k in ks], k=NEAREST)
        own = [recs[k]["pred_sql"] for k in ks]
        ran = runs(judge, db, own)
        qs = [str(batch[k]["question"]) for k in ks]
        named = named_values(_value_index(db, indexes), qs)
        picks = choose(backend, [prompts[k] for k in ks], own, hits, ran, engine_of(db), questions=qs, named=named)
        for k, pick in zip(ks, picks, strict=True):
            rec = recs[k]
            if "scores" not in pick:
                continue
            rec["bank"] = {x: pick[x] for x in PICK_FIELDS}
            if pick["from_bank"]:
                rec["model_sql"], rec["pred_sql"] = rec["pred_sql"], pick["sql"]
                if rec["status"] == "no_sql":
                    rec["status"] = "ok"


def _grounding(r: dict[str, Any], cache: dict[str, Any], indexes: dict[str, Any]) -> Any:
    """The value grounding of a record's database (its value index's closed columns), built once per database;
    None when the record names none or it cannot be read (the judge will say why)."""
    db = r.get("db_path")
    if not db:
        return None
    db = str(db)
    if db not in cache:
        index = _value_index(db, indexes)
        try:
            cache[db] = index.grounding() if index is not None else None
        except (ExecutionError, DataError, ConfigError, OSError):
            cache[db] = None
    return cache[db]


def _value_index(db: str, cache: dict[str, Any]) -> Any:
    """The database's value index, opened once per run; None when it cannot be read (the judge says why)."""
    if db not in cache:
        from sqltune.linking.values import ValueIndex

        try:
            cache[db] = ValueIndex.open(db) if is_url(db) or Path(db).is_file() else None
        except (ExecutionError, DataError, ConfigError, OSError):
            cache[db] = None
    return cache[db]


def _table_names(db: str, cache: dict[str, list[str]]) -> list[str]:
    """The database's table names, read once per run; none when it cannot be read (the judge says why)."""
    if db not in cache:
        try:
            cache[db] = [t.name for t in introspect(db).tables]
        except (ExecutionError, DataError, ConfigError, OSError):
            cache[db] = []
    return cache[db]


def _record(
    r: dict[str, Any], comps: list[Any], seconds: float, cfg: PredictConfig, tables: dict[str, list[str]]
) -> dict[str, Any]:
    first = comps[0]
    sqls = [extract_sql(c.text, cot=cfg.cot) for c in comps]
    dialect = SQLGLOT_DIALECT.get(r.get("dialect") or "sqlite", "sqlite")
    if r.get("table_names"):  # the prompt showed these tables by short names: read back to the real ones
        sqls = [rename_tables(s, r["table_names"], dialect) if s else s for s in sqls]
    resolved: dict[str, str] = {}
    if cfg.resolve_tables and r.get("db_path") and any(sqls):
        names = _table_names(str(r["db_path"]), tables)
        shown = "\n".join(m["content"] for m in messages_from_record(r) if m["role"] == "user")
        for k, sql in enumerate(sqls):
            if sql:
                sqls[k], done = resolve_tables(sql, names, shown, dialect)
                resolved.update(done)
    rec: dict[str, Any] = {
        "id": r["id"],
        "db_id": r.get("db_id", ""),
        "pred_sql": sqls[0],
        "raw": first.text,
        "prompt_tokens": first.prompt_tokens,
        "completion_tokens": sum(c.completion_tokens for c in comps),
        "seconds": round(seconds, 4),
        "status": first.status,
    }
    grounded = [getattr(c, "grounded", 0) for c in comps]
    if cfg.ground_values and any(grounded):
        rec["grounded"] = grounded[0]
    if first.error:
        rec["error"] = first.error
    if resolved:
        rec["resolved"] = resolved
    if len(comps) > 1:
        rec["candidates"] = sqls
        rec["chosen"] = 0
        rec["votes"] = 0
    if first.status == "ok" and not rec["pred_sql"]:
        rec["status"] = "no_sql"
    return rec


def _vote(judge: Judge, batch: list[dict[str, Any]], recs: list[dict[str, Any]]) -> None:
    """Self-consistency through the judge: majority over execution results (read-only, killable)."""
    todo = [
        (k, str(r["db_path"]))
        for k, r in enumerate(batch)
        if "candidates" in recs[k] and r.get("db_path") and (is_url(r["db_path"]) or Path(str(r["db_path"])).is_file())
    ]
    chosen = judge.vote([(db, recs[k]["candidates"]) for k, db in todo])
    for (k, _), (best, votes) in zip(todo, chosen, strict=True):
        rec = recs[k]
        rec["pred_sql"] = rec["candidates"][best]
        rec["chosen"] = best
        rec["votes"] = votes
        if rec["status"] == "no_sql" and rec["pred_sql"]:
            rec["status"] = "ok"


__all__ = ["PredictConfig", "predict", "recover_done", "manifest_path", "load_dataset_records", "ModelError"]
