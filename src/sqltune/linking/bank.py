"""The query bank: verified queries drawn from a database's own tables, columns and values, each with the
questions its shape phrases it by, and found by meaning for a new question. The model then chooses between
its own answer and the nearest bank query by which of the two it finds more likely for the question.

Why: a model fine-tuned on a few hundred pairs recalls their templates, and on a question written in other
words it often writes a template's SQL with a filter nobody asked for. The bank holds the plain shapes such a
question needs (a count with no filter, a ``DISTINCT``, an ``IS NULL``) over this very database, every one
run through the judge; the model's own likelihood, not the text of the SQL, decides whether one of them is a
better reading of the question than its answer.

* **What it holds**: :func:`sqltune.linking.shapes.draw_verified` over the database's profile, up to
  ``size`` distinct queries that run and return rows (two may return the same rows: ``COUNT(*)`` and
  ``COUNT(DISTINCT name)`` over a table of unique names are different readings of a question), each with its shape's first phrasing (one phrasing finds the
  query as often as all of them did on the demo's human-written questions, at a third of the encoding). The shapes write SQLite
  SQL; on another engine each query is transpiled first and run there (read-only, through the judge).
* **Finding**: each phrasing is embedded by the sentence encoder of schema linking
  (:mod:`sqltune.models.embed`, all-MiniLM-L6-v2 packaged); a query's similarity to a question is the
  cosine of the two vectors.
* **Choosing** (:func:`choose`): the backend scores the question's prompt followed by each SQL (the
  answer's log-likelihood, summed over its tokens, as training's loss counts them): the model's answer and
  the ``NEAREST`` bank queries, each of those in two spellings (as drawn and as sqlglot writes it, the
  likelier counted: a model trained on ``COUNT(*)`` should not reject ``count(*)`` for its case), each
  ranked by its score minus :data:`PRIOR` times its score with the question left out (what the question
  adds), and each hit farther in meaning than the nearest less :data:`SIMILARITY` times the difference of
  their cosines. A bank query replaces the model's answer only where it ranks higher, or where the model's answer
  does not run (:func:`runs`, through the judge).
* **One per database version, cached**: ``$SQLTUNE_HOME/cache/bank/<key>.npz`` beside the value index's
  cache, under the same version key (a changed file or row count builds it again).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BANK_VERSION = 3
"""Raised when what a bank holds changes (2: every distinct SQL, not one query per result; 3: a person's first
and last name selected together, rows ordered by a date, a date's extremes, a column's commonest value): older
caches are drawn again."""
SIZE = 4000
"""Queries kept at most per database."""
ATTEMPTS = 5
"""Draws per query kept at most (the shapes run out of new results on a small database)."""
SEED = 0
NEAREST = 3
"""Bank queries compared with the model's answer per question, the nearest by meaning."""
PRIOR = 0.5
"""How much of an answer's question-free likelihood the chooser subtracts (``score - PRIOR * score without the
question``): a small model finds some queries likely after any question (the templates it was trained on, the
shortest queries), and this weighs each candidate by what the question itself adds. 0 turns it off; 1 is the
pointwise mutual information of question and answer."""
SIMILARITY = 75.0
"""What a bank query pays for being farther in meaning from the question than the nearest one: this many
nats per unit of cosine (a hit 0.02 farther than the nearest pays 1.5). The model's answer and the nearest
query pay nothing; their contest is the model's scores alone. A small model's scores tell a query's shape
better than its columns; the encoder that found the hits knows which one the question's words name. 0 turns
it off."""

VALUES = 4.0
"""What an answer pays per value it and its question disagree on, in nats: a text literal the question does not
mention (a filter nobody asked for, often a training template's), or a value the question names (the value index
finds it at :data:`NAMED` similarity or more) that the answer does not use (a filter it dropped). The model's
answer pays as any bank query does. 0 turns it off."""
NAMED = 95.0
"""How similar (0-100, :meth:`sqltune.linking.values.ValueIndex.lookup`) a question's words must be to a value
for the question to name it, when the answer's lacking it is counted (a lower match still counts as a mention)."""
MENTIONED = 85.0
"""How similar (rapidfuzz's partial ratio, 0-100) a literal must be to some part of the question to be
mentioned there ("Germany" for "German", "Accountant" for "accountants")."""

PICK_FIELDS = ("from_bank", "scores", "priors", "own_ran", "bank_sql", "bank_question", "similarity", "disagreements")
"""What a prediction's or an answer's ``bank`` keeps of :func:`choose`'s pick."""


def cache_root() -> Path:
    """Beside the value index's cache (``$SQLTUNE_HOME/cache/bank``)."""
    from sqltune.linking.values import cache_root as values_root

    return values_root().parent / "bank"


@dataclass(frozen=True)
class Entry:
    sql: str
    question: str
    shape: str


@dataclass(frozen=True)
class Hit:
    entry: Entry
    similarity: float
    """Cosine between the question and the entry's phrasing."""


class QueryBank:
    """A database's verified queries and the vectors of their phrasings (one row per entry)."""

    def __init__(self, entries: list[Entry], vectors: Any, embedder: str):
        self.entries, self.vectors, self.embedder = entries, vectors, embedder

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def open(
        cls,
        db: str,
        judge: Any = None,
        size: int = SIZE,
        embedder: str = "minilm",
        cache: Path | None = None,
        allow_privileged_role: bool = False,
    ) -> QueryBank:
        """The bank of ``db``: read from the cache, else drawn (through ``judge``, or a judge of its own) and
        embedded, then cached."""
        import numpy as np

        from sqltune.linking.values import version_key

        raw = json.dumps([BANK_VERSION, version_key(db, None, allow_privileged_role), size, SEED, embedder])
        path = (cache or cache_root()) / f"{hashlib.sha256(raw.encode()).hexdigest()[:32]}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
                    entries = [Entry(e["sql"], e["question"], e["shape"]) for e in meta]
                    return cls(entries, z["vectors"], embedder)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: built again
        entries = _draw(db, judge, size, allow_privileged_role)
        from sqltune.models.embed import load_embedder

        texts = [e.question for e in entries]
        vectors = load_embedder(embedder).encode(texts).numpy() if texts else np.zeros((0, 1), dtype=np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".{os.getpid()}.{threading.get_ident()}.tmp.npz")
        meta = json.dumps([{"sql": e.sql, "question": e.question, "shape": e.shape} for e in entries])
        np.savez(tmp, vectors=vectors, meta=np.array(meta))
        os.replace(tmp, path)
        return cls(entries, vectors, embedder)

    def nearest(self, questions: list[str], k: int = 1) -> list[list[Hit]]:
        """The ``k`` entries closest in meaning to each question, closest first."""
        import numpy as np

        from sqltune.models.embed import load_embedder

        if not questions:
            return []
        if not self.entries:
            return [[] for _ in questions]
        q = load_embedder(self.embedder).encode(questions).numpy()
        sims = q @ self.vectors.T
        out = []
        for row in sims:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([Hit(self.entries[int(j)], float(row[j])) for j in top])
        return out


def _draw(db: str, judge: Any, size: int, allow_privileged_role: bool) -> list[Entry]:
    from sqltune.linking.profile import profile_database
    from sqltune.linking.shapes import draw_verified

    own = None
    if judge is None:
        from sqltune.judge import Judge

        judge = own = Judge(workers=1, timeout=10.0, allow_privileged_role=allow_privileged_role)
    try:
        prof = profile_database(db, allow_privileged_role=allow_privileged_role)
        entries = []
        for d in draw_verified(prof, size * ATTEMPTS, random.Random(SEED), judge, distinct_results=False):
            if d.cand.questions:
                entries.append(Entry(d.cand.sql, d.cand.questions[0], d.cand.shape))
            if len(entries) >= size:
                break
        return entries
    finally:
        if own is not None:
            own.close()


_LOCK = threading.Lock()
_OPEN: dict[tuple[str, int, str], QueryBank | None] = {}


def bank_for(
    db: str, size: int = SIZE, embedder: str = "minilm", allow_privileged_role: bool = False
) -> QueryBank | None:
    """The bank of ``db``, opened once per process; None when the database cannot be profiled (the judge
    then says why its queries fail). A missing encoder package is the user's to fix: ConfigError."""
    from sqltune.errors import DataError, ExecutionError

    key = (db, size, embedder)
    with _LOCK:
        if key not in _OPEN:
            try:
                _OPEN[key] = QueryBank.open(db, None, size, embedder, allow_privileged_role=allow_privileged_role)
            except (ExecutionError, DataError, OSError):
                _OPEN[key] = None
        return _OPEN[key]


def spellings(sql: str, engine: str = "sqlite") -> list[str]:
    """A bank query as drawn, and as sqlglot writes it when that differs (upper-case keywords and functions,
    its own quoting): the same query in the two spellings a model's training data may have used. Both are
    scored and the likelier stands for the query, so a spelling the model never saw does not decide between
    two readings of a question. What runs is always the query as drawn (it was verified)."""
    import sqlglot

    from sqltune.db.target import SQLGLOT_DIALECT

    d = SQLGLOT_DIALECT.get(engine, "sqlite")
    try:
        canon = sqlglot.transpile(sql, read=d, write=d)[0]
    except (sqlglot.errors.SqlglotError, IndexError):
        return [sql]
    return [sql] if canon == sql else [sql, canon]


def runs(judge: Any, db: str, sqls: list[str]) -> list[bool | None]:
    """Whether each of the model's answers runs on ``db``, through the judge (read-only, its timeout and row
    cap): an answer that fails cannot be the answer, so the bank's likeliest query stands in for it. None where
    the database itself could not be reached (nothing is known of the answer)."""
    todo = [k for k, s in enumerate(sqls) if s]
    out: list[bool | None] = [False] * len(sqls)
    for k, res in zip(todo, judge.run([(db, [sqls[k]]) for k in todo]), strict=True):
        out[k] = ran_first(res, sqls[k])
    return out


def ran_first(result: Any, sql: str) -> bool | None:
    """Whether ``sql``, the first query of a judge's run (``result``), ran: False for an empty answer, None
    where the database itself could not be reached."""
    return None if result.db_error else bool(sql and result.ok and result.ok[0])


def named_values(index: Any, questions: list[str]) -> list[dict[str, float]]:
    """Per question, the values its words name (lower-cased) and how similar (0-100), from a database's value
    index (:class:`sqltune.linking.values.ValueIndex`); empty without one."""
    if index is None:
        return [{} for _ in questions]
    out = []
    for q in questions:
        got: dict[str, float] = {}
        for h in index.lookup(q):
            got[h.value.lower()] = max(got.get(h.value.lower(), 0.0), h.score)
        out.append(got)
    return out


def disagreements(sql: str, question: str, named: dict[str, float] | None, engine: str = "sqlite") -> int:
    """How many values ``sql`` and ``question`` disagree on (see :data:`VALUES`): the text literals of ``sql``
    (``%`` wildcards aside) the question does not mention, plus the values the question names (``named``, from
    :func:`named_values`, at :data:`NAMED` or more) that ``sql`` does not use."""
    import sqlglot
    from rapidfuzz import fuzz
    from sqlglot import exp

    from sqltune.db.target import SQLGLOT_DIALECT

    try:
        tree = sqlglot.parse_one(sql, read=SQLGLOT_DIALECT.get(engine, "sqlite"))
    except (sqlglot.errors.SqlglotError, ValueError):
        return 0
    if tree is None:
        return 0
    q = question.lower()
    named = named or {}
    lits = {str(x.this).strip("%").strip().lower() for x in tree.find_all(exp.Literal) if x.is_string}
    lits.discard("")
    unasked = sum(1 for v in lits if not (v in q or v in named or fuzz.partial_ratio(v, q) >= MENTIONED))
    dropped = sum(1 for v, score in named.items() if score >= NAMED and not any(v == x or v in x for x in lits))
    return unasked + dropped


def choose(
    backend: Any,
    prompts: list[list[dict[str, str]]],
    own: list[str],
    hits: list[list[Hit]],
    own_ran: list[bool | None] | None = None,
    engine: str = "sqlite",
    spell: bool = True,
    questions: list[str] | None = None,
    prior: float = PRIOR,
    similarity: float = SIMILARITY,
    named: list[dict[str, float]] | None = None,
    values: float = VALUES,
) -> list[dict[str, Any]]:
    """For each prompt, whether a bank query replaces the model's own SQL: the backend's
    ``score(prompts, answers)`` (the log-likelihood of each answer after the prompt) decides between the
    model's answer and each hit (scored in both :func:`spellings`, the likelier kept). With ``questions``
    (each prompt's question) and ``prior`` > 0, each answer is also scored after the same prompt with its
    question left out (:func:`sqltune.prompts.without_question`), and what decides is ``score - prior *
    that``: how much more likely the question makes the answer (see :data:`PRIOR`). A hit farther in meaning
    than the nearest pays ``similarity`` times the difference of their cosines (:data:`SIMILARITY`). With
    ``questions``, every candidate also pays ``values`` per value it and its question disagree on
    (:func:`disagreements`; ``named``: the values each question names, from :func:`named_values`). The
    model's answer is out
    of the running where it is empty or did not run (``own_ran`` False, from :func:`runs`); a tie keeps it.
    Returns per prompt ``{"sql", "from_bank", "scores", "priors", "own_ran", "bank_sql", "bank_question",
    "similarity", "disagreements"}`` (``scores``: the model's answer's log-likelihood, then each hit's;
    ``priors``: the same without the question, or None; ``disagreements``: each one's count of values it and
    the question disagree on, or None); a prompt with no hit keeps its SQL, unscored. ``spell=False`` scores each
    hit as drawn only (what the benchmark of the chooser compares)."""
    from sqltune.prompts import without_question

    rows = [k for k, h in enumerate(hits) if h]
    forms = {k: [spellings(x.entry.sql, engine) if spell else [x.entry.sql] for x in hits[k]] for k in rows}
    answers = {k: [own[k], *(s for f in forms[k] for s in f)] for k in rows}
    flat = backend.score([prompts[k] for k in rows], [answers[k] for k in rows])
    kept: dict[int, list[int]] = {}  # per prompt: the model's answer, then each hit's likelier spelling
    for k, got in zip(rows, flat, strict=True):
        kept[k], at = [0], 1
        for f in forms[k]:
            kept[k].append(at + max(range(len(f)), key=lambda i: got[at + i]))
            at += len(f)
    blanks: dict[int, list[float]] = {}
    if questions is not None and prior > 0:
        # only what stands for each candidate is scored again, after the prompt without its question
        free = [(k, without_question(prompts[k], questions[k])) for k in rows]
        free = [(k, m) for k, m in free if m is not None]
        if free:
            got_free = backend.score([m for _, m in free], [[answers[k][i] for i in kept[k]] for k, _ in free])
            blanks = {k: b for (k, _), b in zip(free, got_free, strict=True)}
    out: list[dict[str, Any]] = [{"sql": s, "from_bank": False} for s in own]
    for k, got in zip(rows, flat, strict=True):
        ran = own_ran[k] if own_ran is not None else None
        blank = blanks.get(k)
        sc = [got[i] for i in kept[k]]
        pr: list[float | None] = list(blank) if blank else [None] * len(sc)
        if not own[k] or ran is False:
            sc[0] = float("-inf")  # no SQL of its own, or one that fails: the bank's best stands
        rank = [
            x - prior * p if p is not None and p > float("-inf") and x > float("-inf") else x
            for x, p in zip(sc, pr, strict=True)
        ]
        near = max(h.similarity for h in hits[k])
        rank = [rank[0], *(x - similarity * (near - h.similarity) for x, h in zip(rank[1:], hits[k], strict=True))]
        off: list[int] | None = None
        if questions is not None and values > 0:
            cands = [own[k], *(h.entry.sql for h in hits[k])]
            nv = named[k] if named is not None else None
            off = [disagreements(c, questions[k], nv, engine) if c else 0 for c in cands]
            rank = [x - values * d for x, d in zip(rank, off, strict=True)]
        best = max(range(len(rank)), key=lambda i: (rank[i], -i))
        top = hits[k][max(best - 1, 0)]  # the bank query taken, else the nearest
        out[k] = {
            "sql": own[k] if best == 0 else hits[k][best - 1].entry.sql,
            "from_bank": best > 0,
            "scores": [_r(x) for x in sc],
            "priors": [_r(x) for x in pr] if blank else None,
            "own_ran": ran,
            "bank_sql": top.entry.sql,
            "bank_question": top.entry.question,
            "similarity": round(top.similarity, 4),
            "disagreements": off,
        }
    return out


def _r(x: float | None) -> float | None:
    return round(x, 3) if x is not None and x > float("-inf") else None


__all__ = [
    "NAMED",
    "NEAREST",
    "PICK_FIELDS",
    "PRIOR",
    "SIMILARITY",
    "VALUES",
    "Entry",
    "Hit",
    "QueryBank",
    "bank_for",
    "choose",
    "disagreements",
    "named_values",
    "ran_first",
    "runs",
    "spellings",
]
