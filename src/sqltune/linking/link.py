"""Schema linking: the tables and columns a question needs, ranked before the model sees the prompt.

The one prompt builder (:func:`sqltune.prompts.question_schema`) calls :func:`link` with the same
:class:`LinkSettings` for training prompts (``data build``) and for inference (predict reads the data
stage's prompts; ask, serve, mcp and LangChain rebuild them with the model's prompt contract), so a model is
trained on the prompts it will be served.

Ranking (lexical, no model): every column is a document of its table's and its own name (split at ``_``,
case changes and digits, lower-cased, plurals folded), its description and its value description;
BM25 (``rank_bm25``) scores the question (and evidence) against them, plus the table name's own score,
plus the value index's hits (:mod:`sqltune.linking.values`: a column holding a value the question names).
With an ``embedder`` (a sentence encoder, :mod:`sqltune.models.embed`), each column also scores the cosine
between the question and its words and description, so "inhabitants" finds ``residents_total``
without a shared word.

Selection: ``top-k`` keeps the ``top_k`` best columns; ``budget`` keeps the whole schema when it fits
``budget`` prompt tokens, else the most columns, best first, that fit; ``auto`` keeps the columns that the
learned ranker (:mod:`sqltune.linking.learned`, fitted on Spider train) finds at least ``threshold`` likely
to be needed, at most ``top_k``. Either way a table is kept when a
kept column or its own name matches, the kept tables are joined by the shortest foreign-key paths between
them (the tables on the path kept, with their keys), and every kept table keeps its primary key and the foreign keys that join it.
The values a question names are shown beside their columns.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqltune.db.schema import Column, PerSchema, Schema, Table
from sqltune.errors import ConfigError
from sqltune.linking.names import namespace, renamed, short_name

MODES = ("off", "top-k", "budget", "auto")

_SPLIT = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def words(text: str) -> list[str]:
    """Lower-cased words of a name or a sentence: ``customerID`` -> customer, id; ``first_name`` -> first,
    name; plurals folded (``countries`` -> country, ``orders`` -> order)."""
    out = []
    for part in re.split(r"[^A-Za-z0-9]+", text):
        for w in _SPLIT.findall(part):
            out.append(_fold(w.lower()))
    return out


def _fold(w: str) -> str:
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


@dataclass(frozen=True)
class LinkSettings:
    """How prompts' schemas are filtered (a part of the prompt contract)."""

    mode: str = "off"
    """off | top-k | budget | auto."""
    top_k: int = 12
    """top-k: columns kept (besides the keys that join the kept tables); auto: the most kept."""
    budget: int = 1024
    """budget: prompt tokens (system and user turns) the schema is cut to fit."""
    values: bool = False
    """Show the values the question names (from the value index) beside their columns."""
    max_values: int = 3
    """Values shown per column at most."""
    categories: int = 0
    """Show every value of the text columns that hold at most this many distinct ones (0: none)."""
    embedder: str = ""
    """A sentence encoder that ranks columns by meaning beside the words ("": words only; ``minilm``: the
    packaged all-MiniLM-L6-v2; or a folder or hub id)."""
    threshold: float = 0.14
    """auto: keep the columns the learned ranker finds at least this likely to be needed."""
    short_names: bool = True
    """Show a kept ``<namespace>__<table>`` by its own name when no other kept table is shown so
    (:mod:`sqltune.linking.names`); answers are read back to the real names. A contract written before
    this setting existed reads as off."""
    focus: float = 0.9
    """A schema of several namespaces (``<namespace>__<table>``): rank only the tables of the namespace that
    matches the question best and of those that match it at least this share as well and that foreign keys
    join to it (1.0: the best alone; 0: every namespace), linked as a database of their own
    (:func:`standalone`). Tables without a namespace are always ranked. A contract written before this
    setting existed reads as 0."""

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"schema_filter={self.mode!r}: choose one of {', '.join(MODES)}")
        if self.top_k < 1 or self.budget < 64 or self.max_values < 1:
            raise ConfigError("schema_top_k and schema_max_values must be at least 1, schema_budget at least 64")
        if not 0 <= self.categories <= 100:
            raise ConfigError(f"schema_categories={self.categories}: give 0 (off) to 100 values per column")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"schema_threshold={self.threshold}: give a probability between 0 and 1")
        if not 0.0 <= self.focus <= 1.0:
            raise ConfigError(f"schema_focus={self.focus}: give a share from 0 (every namespace) to 1 (the best alone)")
        if self.embedder:
            from sqltune.models.embed import embedder_path

            embedder_path(self.embedder)

    @property
    def active(self) -> bool:
        return self.mode != "off" or self.values or self.categories > 0

    @property
    def needs_index(self) -> bool:
        """Whether prompts read the database's value index (question values, or every value of few)."""
        return self.values or self.categories > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> LinkSettings:
        if not d:
            return cls()
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known.setdefault("short_names", False)  # prompts built before short names showed full names
        known.setdefault("focus", 0.0)  # and every namespace
        s = cls(**known)
        s.validate()
        return s


@dataclass
class Linked:
    """What :func:`link` kept, and why."""

    schema: Schema
    tables: list[dict[str, Any]] = field(default_factory=list)
    """Every table, best first: name, score, kept, why (matched | column | join path | dropped)."""
    columns: list[dict[str, Any]] = field(default_factory=list)
    """The kept columns and the best dropped ones, best first: table, column, score, kept, why."""
    values: list[dict[str, Any]] = field(default_factory=list)
    """The value index's hits shown in the prompt: table, column, value, score, span."""
    full_columns: int = 0
    kept_columns: int = 0
    names: dict[str, str] = field(default_factory=dict)
    """The tables the prompt shows by a short name: ``{shown: real}`` (:mod:`sqltune.linking.names`)."""
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    """A schema of several namespaces, with ``focus`` on: the ranked ones and the best of the dropped,
    best first: namespace, score, kept."""

    def kept(self) -> set[tuple[str, str]]:
        return {(t.name.lower(), c.name.lower()) for t in self.schema.tables for c in t.columns}

    def kept_tables(self) -> set[str]:
        return {t.name.lower() for t in self.schema.tables}

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "columns": self.columns,
            "values": self.values,
            "full_columns": self.full_columns,
            "kept_columns": self.kept_columns,
            "names": self.names,
            "namespaces": self.namespaces,
        }


_MODELS = PerSchema(256)
"""The ranking state of recent schemas (:class:`_Ranking`)."""


class _Bm25:
    """A ``rank_bm25`` Okapi model (its fitted idf, document frequencies and lengths) whose scores for a
    query come from an inverted index: ``BM25Okapi.get_scores`` reads every document's frequencies in Python
    for every query word, too slow for a schema of thousands of columns; this adds, word by word in the
    query's order, the same per-document terms of the same formula, for the documents holding the word
    (the others add zero), so the scores are the library's bit for bit."""

    def __init__(self, docs: list[list[str]]) -> None:
        import numpy as np
        from rank_bm25 import BM25Okapi

        self.n = len(docs)
        self.model = BM25Okapi([d or ["\x00"] for d in docs]) if docs else None  # it divides by the mean length
        self.postings: dict[str, tuple[Any, Any]] = {}
        if self.model is None:
            return
        m = self.model
        cols: dict[str, tuple[list[int], list[int]]] = {}
        for i, freqs in enumerate(m.doc_freqs):
            for w, f in freqs.items():
                ids, fs = cols.setdefault(w, ([], []))
                ids.append(i)
                fs.append(f)
        doc_len = np.array(m.doc_len)
        norm = m.k1 * (1 - m.b + m.b * doc_len / m.avgdl)
        for w, (ids, fs) in cols.items():
            idx = np.array(ids, dtype=np.int64)
            q_freq = np.array(fs)
            self.postings[w] = (idx, (m.idf.get(w) or 0) * (q_freq * (m.k1 + 1) / (q_freq + norm[idx])))

    def scores(self, query: list[str]) -> Any:
        """Every document's score, negative ones as zero (a float64 array)."""
        import numpy as np

        score = np.zeros(self.n)
        for q in query:
            hit = self.postings.get(q)
            if hit is not None:
                score[hit[0]] += hit[1]
        return np.maximum(score, 0.0)


@dataclass
class _Ranking:
    """What ranking a schema's columns needs, built once per schema object."""

    columns: _Bm25
    tables: _Bm25
    names: list[frozenset[str]]
    """Each column's name words (schema order)."""
    keys: list[tuple[str, str]]
    """(table, column) of each column, schema order."""
    table_of: Any
    """Each column's table (an index into ``schema.tables``)."""
    group_of_table: Any
    """Each table's group of tables joined by foreign keys."""
    groups: int
    name_len: Any
    """Words in each column's name."""
    word_columns: dict[str, Any]
    """A name word -> the columns whose names hold it."""
    by_lower: dict[tuple[str, str], list[int]]
    """(table, column) in lower case -> the columns (value index hits are in lower case)."""
    namespaces: list[str]
    """The schema's namespaces (``<namespace>__<table>``), sorted; empty when it has fewer than two."""
    namespace_of_table: dict[str, int]
    """A namespaced table -> its namespace (an index into ``namespaces``)."""
    namespace_words: dict[str, Any]
    """A word of a namespace's table and column names -> the namespaces that hold it."""
    namespace_bm25: _Bm25 | None
    """A BM25 model of each namespace's table and column names (one document a namespace)."""
    namespace_links: dict[str, set[str]]
    """A namespace -> the others a foreign key joins it to."""


def _components(schema: Schema) -> dict[str, int]:
    """Each table's group of tables joined by foreign keys (a database merged from several has several)."""
    parent = {t.name: t.name for t in schema.tables}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for fk in schema.foreign_keys:
        if fk.table in parent and fk.ref_table in parent:
            parent[find(fk.table)] = find(fk.ref_table)
    roots: dict[str, int] = {}
    return {t.name: roots.setdefault(find(t.name), len(roots)) for t in schema.tables}


def _namespace_state(schema: Schema) -> dict[str, Any]:
    """What scoring a schema's namespaces needs (:class:`_Ranking`'s namespace fields)."""
    import numpy as np

    of_table = {t.name: ns for t in schema.tables if (ns := namespace(t.name))}
    spaces = sorted(set(of_table.values()))
    if len(spaces) < 2:
        return {
            "namespaces": [],
            "namespace_of_table": {},
            "namespace_words": {},
            "namespace_bm25": None,
            "namespace_links": {},
        }
    pos = {ns: i for i, ns in enumerate(spaces)}
    docs: list[list[str]] = [[] for _ in spaces]
    for t in schema.tables:
        if t.name in of_table:
            doc = docs[pos[of_table[t.name]]]
            doc += _doc_terms(words(short_name(t.name) or t.name))
            for c in t.columns:
                doc += _doc_terms(words(c.name))
    links: dict[str, set[str]] = {}
    for fk in schema.foreign_keys:
        a, b = of_table.get(fk.table), of_table.get(fk.ref_table)
        if a and b and a != b:
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)
    holders: dict[str, set[int]] = {}
    for i, doc in enumerate(docs):
        for w in doc:
            holders.setdefault(w, set()).add(i)
    return {
        "namespaces": spaces,
        "namespace_of_table": {t: pos[ns] for t, ns in of_table.items()},
        "namespace_words": {w: np.array(sorted(v), dtype=np.int64) for w, v in holders.items()},
        "namespace_bm25": _Bm25(docs),
        "namespace_links": links,
    }


def namespace_scores(
    schema: Schema, question: str, evidence: str = "", hits: list[Any] | None = None
) -> dict[str, float]:
    """How well each namespace of ``schema`` matches a question (empty for a schema of fewer than two): the
    question's words its table and column names hold, plus the best value-index hit in its tables (0..1),
    plus a tenth of its BM25 score (a namespace is one document of its names), so that the rarer words
    weigh on ties."""
    import numpy as np

    r = _models(schema)
    if not r.namespaces:
        return {}
    q = _question_terms(question, evidence)
    cover = np.zeros(len(r.namespaces))
    for w in {w for w in q if not w.startswith("~")}:
        held = [a for a in (r.namespace_words.get(w), r.namespace_words.get(f"~{w[:5]}")) if a is not None]
        if held:
            cover[np.unique(np.concatenate(held))] += 1
    value = np.zeros(len(r.namespaces))
    for h in hits or []:
        i = r.namespace_of_table.get(h.table)
        if i is not None:
            value[i] = max(value[i], h.score / 100.0)
    bm25 = r.namespace_bm25.scores(q) if r.namespace_bm25 is not None else 0.0
    total = cover + value + 0.1 * bm25
    return dict(zip(r.namespaces, total.tolist(), strict=True))


_FOCUSED = PerSchema(256)
"""The focused schemas of recent schemas, per set of dropped namespaces (one object each, so that the
ranking state of each is built once)."""


def focused(schema: Schema, scores: dict[str, float], share: float) -> tuple[Schema, set[str]]:
    """``schema`` without the tables of the namespaces other than the best one (of equal scores, the first
    by name) and those scoring at least ``share`` of it that foreign keys join to the kept ones (and without
    the foreign keys to the dropped); the dropped namespaces. A question cannot join two namespaces that no
    key joins: of two that match it nearly as well, it asks about one. The same dropped namespaces give the
    same object."""
    top = max(scores.values(), default=0.0)
    if share <= 0.0 or top <= 0.0:
        return schema, set()
    links = _models(schema).namespace_links
    near = {ns for ns, s in scores.items() if s >= share * top}
    keep = {min(ns for ns in near if scores[ns] == top)}
    frontier = list(keep)
    while frontier:  # the near ones joined to a kept one, transitively
        for other in links.get(frontier.pop(), ()):
            if other in near and other not in keep:
                keep.add(other)
                frontier.append(other)
    gone = set(scores) - keep
    if not gone:
        return schema, set()

    def build() -> Schema:
        r = _models(schema)
        drop = {t for t, i in r.namespace_of_table.items() if r.namespaces[i] in gone}
        tables = tuple(t for t in schema.tables if t.name not in drop)
        fks = tuple(f for f in schema.foreign_keys if f.table not in drop and f.ref_table not in drop)
        return replace(schema, tables=tables, foreign_keys=fks)

    return _FOCUSED.get(schema, build, "\x00".join(sorted(gone))), gone


_STANDALONE = PerSchema(256)


def standalone(schema: Schema) -> tuple[Schema, dict[str, str]]:
    """``schema`` (the tables of the namespaces the linker focused on) as a database of its own: each
    namespaced table ``<namespace>__<name>`` named ``<name>`` where no other of its tables would be, and
    ``{name: real name}`` of the renamed ones. Ranked as such, one namespace gets the prompt its own database
    would get: the same words, the same scores relative to its own columns, the same values."""

    def build() -> tuple[Schema, dict[str, str]]:
        counts: dict[str, int] = {}
        for t in schema.tables:
            n = (short_name(t.name) or t.name).lower()
            counts[n] = counts.get(n, 0) + 1
        new: dict[str, str] = {}
        for t in schema.tables:
            short = short_name(t.name)
            if short is not None and counts[short.lower()] == 1:
                new[t.name] = short
        return renamed(schema, new), {v: k for k, v in new.items()}

    return _STANDALONE.get(schema, build)  # type: ignore[no-any-return]


def value_query(question: str, evidence: str = "") -> str:
    """What the value index is asked for a question (:meth:`sqltune.linking.values.ValueIndex.lookup`)."""
    return f"{question} {evidence}".strip()


def _models(schema: Schema) -> _Ranking:
    """The ranking state of a schema (BM25 models of its columns and tables, name words, groups), built once
    per schema object."""

    def build() -> _Ranking:
        import numpy as np

        docs = []
        for t in schema.tables:
            for c in t.columns:
                d = _doc_terms(words(c.name)) * 2 + _doc_terms(words(t.name))
                docs.append(d + _doc_terms(words(c.description)) + _doc_terms(words(c.value_description)))
        names = [frozenset(words(c.name)) for t in schema.tables for c in t.columns]
        group = _components(schema)
        word_cols: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            for w in name:
                word_cols.setdefault(w, []).append(i)
        by_lower: dict[tuple[str, str], list[int]] = {}
        keys = [(t.name, c.name) for t in schema.tables for c in t.columns]
        for i, (tn, cn) in enumerate(keys):
            by_lower.setdefault((tn.lower(), cn.lower()), []).append(i)
        return _Ranking(
            columns=_Bm25(docs),
            tables=_Bm25([_doc_terms(words(t.name)) for t in schema.tables]),
            names=names,
            keys=keys,
            table_of=np.array([i for i, t in enumerate(schema.tables) for _ in t.columns], dtype=np.int64),
            group_of_table=np.array([group[t.name] for t in schema.tables], dtype=np.int64),
            groups=len(set(group.values())),
            name_len=np.array([len(n) for n in names], dtype=np.int64),
            word_columns={w: np.array(v, dtype=np.int64) for w, v in word_cols.items()},
            by_lower=by_lower,
            **_namespace_state(schema),
        )

    return _MODELS.get(schema, build)  # type: ignore[no-any-return]


QUESTION_WORDS = frozenset(
    [
        "a",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "average",
        "be",
        "been",
        "by",
        "count",
        "did",
        "display",
        "do",
        "each",
        "every",
        "find",
        "for",
        "from",
        "get",
        "give",
        "had",
        "have",
        "how",
        "in",
        "is",
        "it",
        "just",
        "least",
        "less",
        "list",
        "many",
        "me",
        "more",
        "most",
        "much",
        "my",
        "no",
        "not",
        "number",
        "of",
        "on",
        "only",
        "or",
        "our",
        "per",
        "please",
        "return",
        "show",
        "some",
        "tell",
        "than",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "those",
        "to",
        "total",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "with",
        "your",
    ]
)
"""Words of a question that name no table, column or value (articles, auxiliaries, question words, verbs of
asking): shared by the ranker and the value index."""
QUESTION_STOPWORDS = QUESTION_WORDS | frozenset(
    [
        "both",
        "different",
        "distinct",
        "doe",
        "either",
        "ha",
        "max",
        "maximum",
        "min",
        "minimum",
        "other",
        "same",
        "sum",
        "u",
    ]
)
"""Question words that name no column: aggregates and function words (folded as :func:`words` folds)."""

LEXICON = {
    "young": ["age", "birth", "born", "dob"],
    "old": ["age", "birth", "born", "dob"],
    "older": ["age", "birth", "born", "dob"],
    "younger": ["age", "birth", "born", "dob"],
    "oldest": ["age", "birth", "born", "dob"],
    "youngest": ["age", "birth", "born", "dob"],
    "tall": ["height"],
    "taller": ["height"],
    "tallest": ["height"],
    "short": ["height", "length"],
    "shortest": ["height", "length"],
    "heavy": ["weight"],
    "heavier": ["weight"],
    "heaviest": ["weight"],
    "lightest": ["weight"],
    "long": ["length", "duration"],
    "longest": ["length", "duration"],
    "expensive": ["price", "cost"],
    "cheap": ["price", "cost"],
    "cheapest": ["price", "cost"],
    "cost": ["price"],
    "price": ["cost"],
    "earliest": ["date", "year", "time"],
    "latest": ["date", "year", "time"],
    "recent": ["date", "year", "time"],
    "nation": ["country", "nationality"],
    "nationality": ["country", "nation"],
    "country": ["nationality", "nation"],
    "money": ["amount", "price", "cost", "salary", "earning"],
    "paid": ["amount", "salary", "payment"],
    "earn": ["earning", "salary"],
    "salary": ["wage", "pay"],
    "female": ["sex", "gender"],
    "male": ["sex", "gender"],
    "woman": ["sex", "gender"],
    "man": ["sex", "gender"],
    "populous": ["population"],
    "people": ["population"],
    "big": ["size", "area", "capacity"],
    "biggest": ["size", "area", "capacity"],
    "largest": ["size", "area", "capacity", "population"],
    "smallest": ["size", "area", "capacity", "population"],
    "born": ["birth"],
    "live": ["city", "address", "state", "country"],
    "located": ["location", "city", "address", "country"],
}
"""Generic English words a question uses for what a column's name says otherwise (the column words each
question word also looks for); a database's own words come from its names, descriptions and values."""

GROUP_WEIGHT = 1.5
"""How much a group of joined tables that matches the question as a whole lifts its columns (several groups)."""

EMBED_WEIGHT = 6.0
"""How much the question's cosine with a column (the embedder's; below zero counts as zero) adds to its score."""

_VECTORS = PerSchema(64)
"""Column vectors of recent schemas, per embedder."""


_TEXT_VECTORS: dict[tuple[str, str], Any] = {}
"""Column vectors by embedder and text, so that a namespace linked as a database of its own
(:func:`standalone`) reads the vectors encoded for the whole schema; the oldest dropped past
``TEXT_VECTORS_MAX``."""
TEXT_VECTORS_MAX = 50_000

_PREFILLED = PerSchema(16)
"""The schemas whose namespaced columns' texts were encoded, per embedder."""


def column_text(t: Table, c: Column, table_name: str | None = None) -> str:
    """What the embedder reads of a column: its table's (or ``table_name``) and its own name in words, and
    its description."""
    return " ".join([*words(table_name or t.name), *words(c.name), c.description or ""]).strip()


def _encode(name: str, texts: list[str]) -> Any:
    """The embedder ``name``'s vectors of ``texts`` (a matrix, one row a text), each text encoded once."""
    import torch

    from sqltune.models.embed import load_embedder

    got = {x: v for x in texts if (v := _TEXT_VECTORS.get((name, x))) is not None}
    missing = [x for x in dict.fromkeys(texts) if x not in got]
    if missing:
        for x, v in zip(missing, load_embedder(name).encode(missing), strict=True):
            got[x] = _TEXT_VECTORS[(name, x)] = v
        while len(_TEXT_VECTORS) > TEXT_VECTORS_MAX:
            _TEXT_VECTORS.pop(next(iter(_TEXT_VECTORS)))
    return torch.stack([got[x] for x in texts])


def _prefill(schema: Schema, name: str) -> None:
    """Encode, in one batch, the texts every namespaced column of ``schema`` has once its namespace is
    linked on its own (its table by its own name), the first time a question focuses on some."""

    def build() -> bool:
        texts = [column_text(t, c, short_name(t.name)) for t in schema.tables for c in t.columns]
        if texts:
            _encode(name, texts)
        return True

    _PREFILLED.get(schema, build, name)


def prepare(schema: Schema, settings: LinkSettings) -> None:
    """Build, before the first question, what linking ``schema`` with ``settings`` builds once: the ranking
    models and, with an embedder, the column vectors (by their own table names on a schema of several
    namespaces, as the focus links them), so the first question takes as long as the others."""
    if not settings.active or settings.mode == "off":
        return
    r = _models(schema)
    if settings.embedder:
        if r.namespaces and settings.focus > 0.0:
            _prefill(schema, settings.embedder)
        elif schema.tables:
            _column_vectors(schema, settings.embedder)


def _column_vectors(schema: Schema, name: str) -> Any:
    """The embedder ``name``'s vector of every column of ``schema`` (schema order), built once per schema."""
    return _VECTORS.get(
        schema, lambda: _encode(name, [column_text(t, c) for t in schema.tables for c in t.columns]), name
    )


def _embedding_scores(schema: Schema, question: str, evidence: str, name: str) -> Any:
    """The cosine of the question with every column (in schema order, a float64 array), by the embedder
    ``name``."""
    import numpy as np

    from sqltune.models.embed import load_embedder

    emb = load_embedder(name)
    vecs = _column_vectors(schema, name)
    q = emb.encode([f"{question} {evidence}".strip()])[0]
    return np.asarray((vecs @ q).numpy(), dtype=np.float64)


_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


def _question_terms(question: str, evidence: str) -> list[str]:
    q = [w for w in words(question) + words(evidence) if w not in QUESTION_STOPWORDS]
    extra: list[str] = []
    for w in q:
        extra.extend(LEXICON.get(w, []))
    if _YEAR.search(question):
        extra.extend(["year", "date"])
    return q + extra + [f"~{w[:5]}" for w in q if len(w) >= 5]


def _doc_terms(name_words: list[str]) -> list[str]:
    return name_words + [f"~{w[:5]}" for w in name_words if len(w) >= 5]


def rank(
    schema: Schema, question: str, evidence: str = "", hits: list[Any] | None = None, embedder: str = ""
) -> dict[str, Any]:
    """Scores of every table and column for a question: ``{"tables": {name: score}, "columns": {(t, c): score},
    "value_hits": {(t, c): [hit, ...]}, "parts": {...}}`` (``parts``: what each score is made of, per column,
    for the learned ranker); ``embedder``: a sentence encoder's name (adds meaning to words)."""
    import numpy as np

    q = _question_terms(question, evidence)
    qset = set(q)
    r = _models(schema)
    n = len(r.keys)
    bm25 = r.columns.scores(q)
    sims = _embedding_scores(schema, question, evidence, embedder) if embedder and n else np.zeros(n)
    table_scores = r.tables.scores(q)
    tscore = {t.name: float(s) for t, s in zip(schema.tables, table_scores, strict=True)}
    named = np.zeros(n, dtype=np.int64)  # how many of each column's name words the question says
    for w in qset:
        cols = r.word_columns.get(w)
        if cols is not None:
            named[cols] += 1
    exact = ((named == r.name_len) & (r.name_len > 0)).astype(np.float64)  # the question says its whole name
    value = np.zeros(n)
    by_col: dict[tuple[str, str], list[Any]] = {}
    for h in hits or []:
        by_col.setdefault((h.table.lower(), h.column.lower()), []).append(h)
    for key, hs in by_col.items():
        for i in r.by_lower.get(key, ()):
            value[i] = max(h.score for h in hs) / 100.0 * 3.0
    final = bm25 + EMBED_WEIGHT * np.maximum(0.0, sims)
    final = final + exact + value + 0.25 * table_scores[r.table_of]
    if r.groups > 1:
        # a group of joined tables that matches the question as a whole lifts its columns: of two
        # "singer" tables, the one whose neighbours match the rest of the question
        group = r.group_of_table[r.table_of]
        order = np.lexsort((-final, group))  # by group, best column first
        g_sorted = group[order]
        first = np.searchsorted(g_sorted, g_sorted)  # where each column's group starts
        top3 = order[np.arange(n) - first < 3]
        best3 = np.bincount(group[top3], weights=final[top3], minlength=r.groups)
        gmax = np.zeros(r.groups)
        np.maximum.at(gmax, r.group_of_table, table_scores)
        strength = best3 + gmax
        top = strength.max() or 1.0
        final = final + GROUP_WEIGHT * strength[group] / top
    parts = {
        "bm25": bm25,
        "cosine": sims,
        "exact": exact,
        "value": value / 3.0,
        "tables": tscore,
        "names": r.names,
        "final": final,
    }
    return {
        "tables": tscore,
        "columns": dict(zip(r.keys, final.tolist(), strict=True)),
        "value_hits": by_col,
        "parts": parts,
    }


def learned(schema: Schema, question: str, ranked: dict[str, Any], embedder: str = "") -> dict[str, Any]:
    """``ranked`` with each column's score replaced by the learned ranker's probability that the question
    needs it (:mod:`sqltune.linking.learned`)."""
    from sqltune.linking.learned import probabilities

    probs = probabilities(schema, question, ranked["parts"], embedder)
    cols = [(t.name, c.name) for t in schema.tables for c in t.columns]
    return {**ranked, "columns": dict(zip(cols, probs, strict=True))}


def _join_paths(schema: Schema, keep: list[str]) -> tuple[set[str], dict[str, str]]:
    """The tables that join ``keep`` (shortest foreign-key paths from the first kept table to each other one),
    and why each added table is there."""
    graph: dict[str, set[str]] = {t.name: set() for t in schema.tables}
    for fk in schema.foreign_keys:
        if fk.table in graph and fk.ref_table in graph:
            graph[fk.table].add(fk.ref_table)
            graph[fk.ref_table].add(fk.table)
    if not keep:
        return set(), {}
    added: dict[str, str] = {}
    connected = {keep[0]}
    for target in keep[1:]:
        if target in connected:
            continue
        prev: dict[str, str | None] = {s: None for s in connected}
        queue = deque(connected)
        while queue:
            v = queue.popleft()
            if v == target:
                break
            for w in sorted(graph[v]):
                if w not in prev:
                    prev[w] = v
                    queue.append(w)
        if target not in prev:  # no path: kept on its own
            connected.add(target)
            continue
        node: str | None = target
        while node is not None and node not in connected:
            connected.add(node)
            if node not in keep:
                added[node] = f"joins {target}"
            node = prev[node]
    return connected, added


def select(
    schema: Schema, ranked: dict[str, Any], n_columns: int
) -> tuple[Schema, dict[str, str], set[tuple[str, str]]]:
    """The schema with the best ``n_columns`` columns, their tables, the tables whose names the question
    matches, the join paths between them and every kept table's keys."""
    chosen = {k for k, _ in heapq.nlargest(n_columns, ranked["columns"].items(), key=lambda kv: kv[1])}
    tscore = ranked["tables"]
    best_table = max(tscore.values(), default=0.0)
    named = sorted((t for t, s in tscore.items() if s > 0 and s >= 0.5 * best_table), key=lambda t: -tscore[t])
    named = named[: max(2, n_columns // 2)]  # tables whose name the question says; a few at most
    table_best = dict(tscore)
    for (t, _), s in ranked["columns"].items():
        if s > table_best[t]:
            table_best[t] = s
    position = {t.name: i for i, t in enumerate(schema.tables)}  # ties in schema order, not a set's (hash) order
    tables_by_score = sorted({t for t, _ in chosen} | set(named), key=lambda t: (-table_best[t], position[t]))
    keep, added = _join_paths(schema, tables_by_score)
    why = {t: ("matched" if t in named else "column") for t in tables_by_score}
    why.update({t: w for t, w in added.items()})
    keys: set[tuple[str, str]] = set()
    for fk in schema.foreign_keys:
        if fk.table in keep and fk.ref_table in keep:
            keys.add((fk.table, fk.column))
            keys.add((fk.ref_table, fk.ref_column))
    tables = []
    for t in schema.tables:
        if t.name not in keep:
            continue
        cols = tuple(c for c in t.columns if (t.name, c.name) in chosen or c.primary_key or (t.name, c.name) in keys)
        if not cols:
            cols = t.columns[:1]
        tables.append(_restrict_table(t, cols))
    fks = tuple(
        f
        for f in schema.foreign_keys
        if f.table in keep
        and f.ref_table in keep
        and (f.table, f.column) in keys
        and (f.ref_table, f.ref_column) in keys
    )
    return replace(schema, tables=tuple(tables), foreign_keys=fks), why, chosen


def _restrict_table(t: Table, cols: tuple[Column, ...]) -> Table:
    if len(cols) == len(t.columns):
        return t
    names = [c.name for c in cols]
    idx = [i for i, n in enumerate(t.sample_columns) if n in names]
    rows = tuple(tuple(r[i] for i in idx) for r in t.sample_rows)
    sample_cols = tuple(t.sample_columns[i] for i in idx)
    return replace(t, columns=cols, ddl="", sample_columns=sample_cols, sample_rows=rows)


def with_categories(schema: Schema, categories: dict[tuple[str, str], tuple[str, ...]]) -> Schema:
    """The schema with ``Column.categories`` set from ``categories`` ((table, column) in lower case -> every
    value: :meth:`sqltune.linking.values.ValueIndex.categories`)."""
    if not categories:
        return schema
    tables = []
    for t in schema.tables:
        cols = tuple(
            replace(c, categories=categories[(t.name.lower(), c.name.lower())])
            if (t.name.lower(), c.name.lower()) in categories
            else c
            for c in t.columns
        )
        tables.append(replace(t, columns=cols))
    return replace(schema, tables=tuple(tables))


def with_values(schema: Schema, hits: list[Any], max_values: int) -> Schema:
    """The schema with each kept column's matched values (``Column.values``) set."""
    by_col: dict[tuple[str, str], list[str]] = {}
    for h in hits:
        vs = by_col.setdefault((h.table.lower(), h.column.lower()), [])
        if h.value not in vs and len(vs) < max_values:
            vs.append(h.value)
    if not by_col:
        return schema
    tables = []
    for t in schema.tables:
        cols = tuple(replace(c, values=tuple(by_col.get((t.name.lower(), c.name.lower()), ()))) for c in t.columns)
        tables.append(replace(t, columns=cols))
    return replace(schema, tables=tuple(tables))


def link(
    schema: Schema,
    question: str,
    evidence: str,
    settings: LinkSettings,
    hits: list[Any] | None = None,
    fits: Any = None,
    index: Any = None,
) -> Linked:
    """The schema a prompt shows for this question (see the module docstring).

    ``hits``: the value index's hits for the question; ``fits(schema) -> bool``: whether a prompt with
    this schema fits the budget (``budget`` mode); ``index``: the value index the hits came from (a schema
    of several namespaces asks it again for the values of the namespaces it focuses on)."""
    hits = hits or []
    spaces: dict[str, float] = {}
    if settings.mode != "off" and settings.focus > 0.0:
        spaces = namespace_scores(schema, question, evidence, hits)
        pool, gone = focused(schema, spaces, settings.focus)
        if gone:
            return _link_focused(schema, pool, question, evidence, settings, hits, fits, index, spaces, gone)
    n_all = sum(len(t.columns) for t in schema.tables)
    whole = ranked = rank(schema, question, evidence, hits, settings.embedder)
    if settings.mode == "auto":
        ranked = learned(schema, question, ranked, settings.embedder)
    pool = schema
    if settings.mode == "off":
        kept, why, chosen = schema, {t.name: "all" for t in schema.tables}, set(ranked["columns"])
    elif settings.mode == "top-k":
        kept, why, chosen = select(pool, ranked, settings.top_k)
    elif settings.mode == "auto":
        likely = heapq.nlargest(settings.top_k, ranked["columns"].values())
        kept, why, chosen = select(pool, ranked, max(1, sum(1 for p in likely if p >= settings.threshold)))
    else:
        if fits is None:
            raise ConfigError("schema_filter=budget needs a tokenizer to count prompt tokens")
        full_values = with_values(pool, hits, settings.max_values) if settings.values else pool
        if fits(full_values):
            kept, why, chosen = pool, {t.name: "all" for t in pool.tables}, set(ranked["columns"])
        else:
            lo, hi = 1, sum(len(t.columns) for t in pool.tables)
            best = select(pool, ranked, 1)
            while lo <= hi:  # the most columns that fit
                mid = (lo + hi) // 2
                cand = select(pool, ranked, mid)
                shown = with_values(cand[0], hits, settings.max_values) if settings.values else cand[0]
                if fits(shown):
                    best, lo = cand, mid + 1
                else:
                    hi = mid - 1
            kept, why, chosen = best
    kept_tables = {t.name for t in kept.tables}
    kept_cols = {(t.name, c.name) for t in kept.tables for c in t.columns}
    shown_hits = [h for h in hits if (h.table, h.column) in kept_cols] if settings.values else []
    if shown_hits:
        kept = with_values(kept, shown_hits, settings.max_values)
    table_rows = sorted(
        (
            {
                "table": t.name,
                "score": round(whole["tables"][t.name], 3),
                "kept": t.name in kept_tables,
                "why": why.get(t.name, "dropped"),
            }
            for t in schema.tables
        ),
        key=lambda r: (not r["kept"], -r["score"]),
    )
    col_rows = []
    listed = [kv for kv in ranked["columns"].items() if kv[0] in kept_cols]
    top = heapq.nlargest(len(kept_cols) + 20, ranked["columns"].items(), key=lambda kv: kv[1])
    listed += [kv for kv in top if kv[0] not in kept_cols]
    for (t, c), s in sorted(listed, key=lambda kv: -kv[1]):  # every kept column, and the best of the others
        k = (t, c) in kept_cols
        reason = "ranked" if (t, c) in chosen else ("key" if k else "dropped")
        if ranked["value_hits"].get((t.lower(), c.lower())):
            reason += "+value"
        col_rows.append({"table": t, "column": c, "score": round(s, 3), "kept": k, "why": reason})
    return Linked(
        schema=kept,
        tables=table_rows,
        columns=col_rows,
        values=[asdict(h) for h in shown_hits],
        full_columns=n_all,
        kept_columns=len(kept_cols),
        namespaces=_namespace_rows(spaces, set()),
    )


def _link_focused(
    schema: Schema,
    pool: Schema,
    question: str,
    evidence: str,
    settings: LinkSettings,
    hits: list[Any],
    fits: Any,
    index: Any,
    spaces: dict[str, float],
    gone: set[str],
) -> Linked:
    """:func:`link` of a schema of several namespaces, focused on ``pool``'s (``gone``: the others): ``pool``
    is linked as a database of its own (:func:`standalone`), with the values of its tables alone, and what
    it keeps is named back by the real names."""
    local, real = standalone(pool)
    if settings.embedder:
        _prefill(schema, settings.embedder)
    to_local = {v: k for k, v in real.items()}
    left = {t.name for t in pool.tables}
    if index is not None and settings.values:
        hits = index.lookup(value_query(question, evidence), tables=left)
    hits = [replace(h, table=to_local.get(h.table, h.table)) for h in hits if h.table in left]
    inner = link(local, question, evidence, replace(settings, focus=0.0), hits, fits)
    r = _models(schema)
    q = _question_terms(question, evidence)
    score = dict(zip((t.name for t in schema.tables), r.tables.scores(q).tolist(), strict=True))
    others = [
        {"table": t, "score": round(score[t], 3), "kept": False, "why": "other namespace"}
        for t, i in r.namespace_of_table.items()
        if r.namespaces[i] in gone
    ]
    return Linked(
        schema=renamed(inner.schema, real),
        tables=[{**row, "table": real.get(row["table"], row["table"])} for row in inner.tables]
        + sorted(others, key=lambda row: -row["score"]),
        columns=[{**row, "table": real.get(row["table"], row["table"])} for row in inner.columns],
        values=[{**v, "table": real.get(v["table"], v["table"])} for v in inner.values],
        full_columns=sum(len(t.columns) for t in schema.tables),
        kept_columns=inner.kept_columns,
        namespaces=_namespace_rows(spaces, gone),
    )


def _namespace_rows(scores: dict[str, float], gone: set[str]) -> list[dict[str, Any]]:
    """The ranked namespaces and the five best dropped ones, best first."""
    rows = sorted(scores.items(), key=lambda kv: -kv[1])
    kept = [r for r in rows if r[0] not in gone]
    shown = kept + [r for r in rows if r[0] in gone][:5]
    return [{"namespace": ns, "score": round(v, 3), "kept": ns not in gone} for ns, v in shown]


@dataclass(frozen=True, kw_only=True)
class SchemaFilterConfig:
    """The schema-linking options of the commands that build prompts (``data build``, ``ask``, ``serve``,
    ``mcp``); unset, ``data build`` filters nothing and serving takes the model's prompt contract."""

    schema_filter: str | None = None
    """off | top-k | budget | auto: each prompt shows only the tables and columns its question needs (auto: those
    the learned ranker finds likely; default: off; serving: the model's prompt contract)."""
    schema_top_k: int | None = None
    """top-k: columns kept besides the keys that join the kept tables (default 12)."""
    schema_budget: int | None = None
    """budget: prompt tokens the schema is cut to fit (default: max_prompt_tokens, else 1024)."""
    schema_values: bool | None = None
    """Show the values a question names, found in the database's value index, beside their columns."""
    schema_categories: int | None = None
    """Show every value of the text columns that hold at most N distinct ones (a status, a country), so a
    question's words meet the stored spelling (default 0: none; serving: the model's prompt contract)."""
    schema_threshold: float | None = None
    """auto: keep the columns the learned ranker finds at least this likely to be needed (default 0.14)."""
    schema_embedder: str | None = None
    """Rank columns by meaning too, with a sentence encoder: minilm (pip install "sqltune[embed]", offline), a
    folder or a hub id (default: words only; serving: the model's prompt contract)."""
    schema_short_names: bool | None = None
    """Show a kept <namespace>__<table> by its own name when no other kept table is shown so, and read
    answers back to the real names (default on; serving: the model's prompt contract)."""
    schema_focus: float | None = None
    """A schema of several <namespace>__ prefixes: rank only the tables of the namespace that matches the
    question best, and of those matching at least this share as well that foreign keys join to it (1: the
    best alone; 0: every namespace; default 0.9; serving: the model's prompt contract)."""

    def link_settings(self, base: LinkSettings | None = None, budget: int | None = None) -> LinkSettings:
        """``base`` (a model's contract; default: off) with the options that are set; ``budget``: the
        budget when neither sets one."""
        b = base or LinkSettings()
        if budget is not None and (base is None or base.mode != "budget"):
            b = replace(b, budget=budget)
        s = replace(
            b,
            mode=self.schema_filter if self.schema_filter is not None else b.mode,
            top_k=self.schema_top_k if self.schema_top_k is not None else b.top_k,
            budget=self.schema_budget if self.schema_budget is not None else b.budget,
            values=self.schema_values if self.schema_values is not None else b.values,
            categories=self.schema_categories if self.schema_categories is not None else b.categories,
            embedder=self.schema_embedder if self.schema_embedder is not None else b.embedder,
            threshold=self.schema_threshold if self.schema_threshold is not None else b.threshold,
            short_names=self.schema_short_names if self.schema_short_names is not None else b.short_names,
            focus=self.schema_focus if self.schema_focus is not None else b.focus,
        )
        s.validate()
        return s

    def link_options_set(self) -> bool:
        return any(
            v is not None
            for v in (
                self.schema_filter,
                self.schema_top_k,
                self.schema_budget,
                self.schema_values,
                self.schema_categories,
                self.schema_embedder,
                self.schema_threshold,
                self.schema_short_names,
                self.schema_focus,
            )
        )
