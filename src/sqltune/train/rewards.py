"""Rewards for reinforcement learning, from the judge that scores the evals: never a second executor.

Every sampled answer's SQL is run by :class:`sqltune.judge.Judge` (read-only by the engine and the role,
one statement, a hard timeout, killable workers, the gold result cached per database version) against the
record's gold query, and scored with the eval's comparison rules. Verdicts are cached by (database, SQL), so
the reward functions that share one answer, and answers sampled twice, run it once.

Components (each logged per step by TRL as ``rewards/<name>/mean``):

* ``execution`` — 1 when the result equals the gold result, 0.1 when the SQL runs but returns another
  result, else 0 (Arctic-Text2SQL-R1's reward);
* ``execution_f1`` — 1 when right; when it runs, the row-set F1 of the two results (BIRD's soft-F1) with a
  floor of 0.1; else 0 (denser for small models, which are rarely right);
* ``format`` — 1 when the answer holds one fenced SQL block (the prompt's format), else 0;
* ``ngram`` — the F1 of the SQL's and the gold's token bigrams (sqlglot tokens, lower-cased).

An answer whose SQL does not run, or holds several statements (even when the first is right) — empty, anything but a read-only query (a write is
refused by the engine and leaves the database unchanged), past its time limit, unparsable — gets 0 from
every component: the lowest reward there is.

Presets (``reward:`` in the train config, or a mapping of component -> weight):
``arctic`` = execution; ``dense`` = execution_f1; ``arctic+format`` and ``dense+format`` add 0.2 x format;
``arctic+ngram`` adds 0.2 x ngram.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

from sqltune.db.target import is_url
from sqltune.errors import ConfigError
from sqltune.extract import extract_sql
from sqltune.judge import Judge, ScoreJob
from sqltune.judge.cache import GoldCache
from sqltune.sqlutil import rename_tables

COMPONENTS = ("execution", "execution_f1", "format", "ngram")
PRESETS: dict[str, dict[str, float]] = {
    "arctic": {"execution": 1.0},
    "dense": {"execution_f1": 1.0},
    "arctic+format": {"execution": 1.0, "format": 0.2},
    "dense+format": {"execution_f1": 1.0, "format": 0.2},
    "arctic+ngram": {"execution": 1.0, "ngram": 0.2},
}


def reward_weights(reward: str | dict[str, float]) -> dict[str, float]:
    """The components and weights of a preset name or a mapping."""
    if isinstance(reward, str):
        if reward not in PRESETS:
            raise ConfigError(f"reward: {reward!r} is not a preset ({', '.join(PRESETS)}) or a mapping of weights")
        return dict(PRESETS[reward])
    if not isinstance(reward, dict) or not reward:
        raise ConfigError(f"reward: {reward!r} must be a preset name or a mapping like {{execution: 1, format: 0.2}}")
    unknown = sorted(set(reward) - set(COMPONENTS))
    if unknown:
        raise ConfigError(f"reward: unknown components {unknown}; choose from {', '.join(COMPONENTS)}")
    return {k: float(v) for k, v in reward.items()}


def completion_text(c: Any) -> str:
    """A completion as TRL passes it: text, or a conversation's last assistant turn."""
    if isinstance(c, str):
        return c
    if isinstance(c, list) and c and isinstance(c[-1], dict):
        return str(c[-1].get("content") or "")
    return str(c)


def _bigrams(sql: str) -> set[tuple[str, str]]:
    from sqlglot.tokens import Tokenizer

    try:
        toks = [t.text.lower() for t in Tokenizer().tokenize(sql)]
    except Exception:  # sqlglot's tokenizer raises its own error types on garbage
        toks = sql.lower().split()
    return set(zip(toks, toks[1:], strict=False))


def ngram_f1(sql: str, gold: str) -> float:
    a, b = _bigrams(sql), _bigrams(gold)
    if not a or not b:
        return 0.0
    common = len(a & b)
    if not common:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)


_FENCE = re.compile(r"```(?:sql)?\s*\n?(.*?)```", re.S | re.I)


def several_statements(text: str) -> bool:
    """Whether the answer's SQL (its last fenced block, else the whole text) holds more than one statement."""
    import sqlglot

    blocks = _FENCE.findall(text)
    body = blocks[-1] if blocks else text
    try:
        return len([t for t in sqlglot.parse(body, read="sqlite") if t is not None]) > 1
    except Exception:  # not SQL at all: extraction decides
        return False


class SqlRewards:
    """The reward components over one judge. ``functions()`` gives TRL's reward functions (one per component,
    named after it) and ``weights()`` their weights; ``columns``: the dataset columns holding the gold query
    and the database (``sql``, ``db_path``)."""

    def __init__(
        self,
        judge: Judge,
        reward: str | dict[str, float] = "arctic",
        mode: str = "multiset",
        timeout: float = 10.0,
        cot: bool = False,
    ):
        self.judge = judge
        self.weights_by_name = reward_weights(reward)
        self.mode, self.timeout, self.cot = mode, timeout, cot
        self._cache: dict[tuple[str, str, str], tuple[bool, bool, float]] = {}
        self._lock = threading.Lock()
        self.judged = 0
        """Answers actually run (not from the cache)."""

    def verdicts(self, sqls: list[str], golds: list[str], dbs: list[str]) -> list[tuple[bool, bool, float]]:
        """(runs, right, soft-F1) per answer; one judge job per (database, gold) holds all its answers."""
        out: list[tuple[bool, bool, float] | None] = [None] * len(sqls)
        todo: dict[tuple[str, str], list[int]] = {}
        with self._lock:
            for i, (sql, gold, db) in enumerate(zip(sqls, golds, dbs, strict=True)):
                if not sql.strip():
                    out[i] = (False, False, 0.0)
                elif (db, gold, sql) in self._cache:
                    out[i] = self._cache[(db, gold, sql)]
                else:
                    todo.setdefault((db, gold), []).append(i)
        if todo:
            jobs, order = [], []
            for (db, gold), idx in todo.items():
                preds = list(dict.fromkeys(sqls[i] for i in idx))
                jobs.append(
                    ScoreJob(db, gold, gold, preds, self.mode, self.timeout, analysis=False, metrics=("ex", "soft_f1"))
                )
                order.append((db, gold, preds))
            results = self.judge.score(jobs, cache_key=self._gold_key)
            with self._lock:
                for (db, gold, preds), res in zip(order, results, strict=True):
                    for k, sql in enumerate(preds):
                        v = res.verdicts[k] if k < len(res.verdicts) and res.gold_ok is not False else None
                        verdict = (bool(v.ok), bool(v.correct), float(v.soft_f1)) if v else (False, False, 0.0)
                        self._cache[(db, gold, sql)] = verdict
                        self.judged += 1
                for i in (i for idx in todo.values() for i in idx):
                    out[i] = self._cache[(dbs[i], golds[i], sqls[i])]
        return [v if v is not None else (False, False, 0.0) for v in out]

    def _gold_key(self, job: ScoreJob) -> str | None:
        """The gold result's key in the judge's persistent cache (as eval's): a file database's version and the
        query; None for a server database, whose gold results are always run."""
        cache = self.judge.cache
        if cache is None or is_url(job.db_path):
            return None
        try:
            return GoldCache.key(cache.db_hash(job.db_path), job.gold_text, job.max_rows, False, False)
        except OSError:  # no such file: the judge says so, and every answer on it gets 0
            return None

    def score(
        self, name: str, completions: list[Any], sql: list[str], db_path: list[str], table_names: Any = None
    ) -> list[float]:
        """One component's values for a batch of completions and their records' gold and database;
        ``table_names``: per completion, the tables its prompt showed by short names (``{shown: real}``, or
        that as JSON text, as the dataset column carries it), read back to the real names first."""
        texts = [completion_text(c) for c in completions]
        # an answer of several statements gets nothing, even when its first one is right
        preds = ["" if several_statements(t) else (extract_sql(t, cot=self.cot) or "") for t in texts]
        for i, names in enumerate(table_names or []):
            names = json.loads(names) if isinstance(names, str) else names
            if names and preds[i]:
                preds[i] = rename_tables(preds[i], names)
        verdicts = self.verdicts(preds, list(sql), list(db_path))
        values = []
        for text, pred, gold, (runs, right, f1) in zip(texts, preds, sql, verdicts, strict=True):
            if not runs:
                values.append(0.0)
            elif name == "execution":
                values.append(1.0 if right else 0.1)
            elif name == "execution_f1":
                values.append(1.0 if right else max(0.1, f1))
            elif name == "format":
                values.append(1.0 if text.count("```sql") == 1 and text.count("```") == 2 else 0.0)
            else:
                values.append(ngram_f1(pred, gold))
        return values

    def functions(self) -> list[Any]:
        """TRL's reward functions, one per component, each named after it (TRL logs ``rewards/<name>/mean``)."""

        def make(name: str) -> Callable[..., list[float]]:
            def fn(
                prompts: Any = None,
                completions: Any = None,
                sql: Any = None,
                db_path: Any = None,
                table_names: Any = None,
                **_: Any,
            ) -> list[float]:
                return self.score(name, completions or [], sql or [], db_path or [], table_names)

            fn.__name__ = name
            return fn

        return [make(n) for n in self.weights_by_name]

    def weights(self) -> list[float]:
        return list(self.weights_by_name.values())

    def total(self, completions: list[Any], sql: list[str], db_path: list[str], table_names: Any = None) -> list[float]:
        """The weighted sum of the components, per completion."""
        parts = [self.score(n, completions, sql, db_path, table_names) for n in self.weights_by_name]
        return [sum(w * p[i] for w, p in zip(self.weights(), parts, strict=True)) for i in range(len(completions))]
