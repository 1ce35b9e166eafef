"""The value index: the distinct text values of every column of one database version, so a question that
names a value ("german customers", "Gemany", "the Electronics category") finds the column holding it.

* **Engine**: SQLite's FTS5 with its ``trigram`` tokenizer (case-insensitive substring and trigram
  search), ranked by FTS5's BM25, re-ranked by edit similarity (``rapidfuzz``): a typo, another case or
  a part of a longer value still finds it.
* **Read through the executor**: the values are read with the one executor interface
  (:func:`sqltune.db.engine.connect`: read-only, time-limited), so it works on every engine sqltune runs.
* **Bounded**: at most ``max_per_column`` distinct values per column, values of at most ``max_chars``
  characters that hold a letter (numbers and dates are words of their own, not names), and a build stops
  at ``max_seconds`` (the index says it is partial).
* **One per database version, cached**: ``$SQLTUNE_HOME/cache/values/<key>.sqlite``; the key is the file's
  path, size and modification time for SQLite and DuckDB files, and the schema with every table's row count
  for a server database. A changed database gets a new index the next time it is opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqltune.db.schema import Schema, introspect
from sqltune.db.target import SQLGLOT_DIALECT, resolve
from sqltune.linking.link import QUESTION_WORDS, words

INDEX_VERSION = 4
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[\w']+", re.UNICODE)
STOPWORDS = QUESTION_WORDS | frozenset(
    [
        "about",
        "being",
        "between",
        "does",
        "has",
        "into",
        "its",
        "name",
        "names",
        "one",
        "out",
        "over",
        "two",
        "under",
        "us",
    ]
)
"""Words that name no value (a value that is only such words is still indexed; a question span is not)."""

SIMILAR = 20
"""Values a span's trigram search ranks (by FTS5's BM25) before edit similarity re-ranks them."""
SIMILAR_READ = 200
"""Values a span's trigram search reads, so that a lookup for some tables has its ``SIMILAR`` best too."""

MAX_SIMILAR = 2
"""Values of one column a span may fit by similarity alone before it is taken to name none of them."""


def cache_root() -> Path:
    return Path(os.environ.get("SQLTUNE_HOME", Path.home() / ".cache" / "sqltune")) / "cache" / "values"


@dataclass(frozen=True)
class ValueHit:
    table: str
    column: str
    value: str
    score: float
    """0-100: the edit similarity of the question's words and the value (100: the same, ignoring case)."""
    span: str
    """The question's words that matched."""


def _quoted_sql(table: str, column: str, limit: int, dialect: str) -> str:
    from sqlglot import exp

    col = exp.column(column, quoted=True)
    q = exp.select(col).distinct().from_(exp.table_(table, quoted=True)).where(col.is_(exp.null()).not_()).limit(limit)
    return q.sql(dialect=dialect)


def version_key(db: str, schema: Schema | None = None, allow_privileged_role: bool = False) -> str:
    """What identifies this database version (see the module docstring)."""
    t = resolve(db)
    if t.engine in ("sqlite", "duckdb") and t.path:
        p = Path(t.path).resolve()
        st = p.stat()
        raw = ["file", str(p), st.st_size, st.st_mtime_ns]
    else:
        from sqltune.db.engine import connect

        schema = schema or introspect(db)
        counts = []
        conn = connect(db, allow_privileged_role=allow_privileged_role)
        try:
            for tb in schema.tables:
                from sqlglot import exp

                sql = exp.select(exp.func("COUNT", exp.Star())).from_(exp.table_(tb.name, quoted=True))
                r = conn.run(sql.sql(dialect=SQLGLOT_DIALECT[t.engine]), timeout=30)
                counts.append(r.rows[0][0] if r.ok and r.rows else None)
        finally:
            conn.close()
        cols = [[tb.name, [c.name for c in tb.columns]] for tb in schema.tables]
        raw = ["server", t.raw, cols, counts]
    return hashlib.sha256(json.dumps([INDEX_VERSION, raw], default=str).encode()).hexdigest()[:32]


def _span_candidates(question: str) -> list[str]:
    """The question's word spans that could name a value: quoted strings and runs of 1-4 words that are not
    all stop words."""
    spans: list[str] = [m.group(1) or m.group(2) for m in re.finditer(r"\"([^\"]+)\"|'([^']{2,})'", question)]
    words = _WORD.findall(question)
    for n in (4, 3, 2, 1):
        for i in range(len(words) - n + 1):
            part = words[i : i + n]
            if part[0].lower() in STOPWORDS or part[-1].lower() in STOPWORDS:
                continue
            if n == 1 and (len(part[0]) < 3 or not _LETTER.search(part[0])):
                continue
            spans.append(" ".join(part))
    seen: set[str] = set()
    return [s for s in spans if not (s.lower() in seen or seen.add(s.lower()))]  # type: ignore[func-returns-value]


class ValueIndex:
    """Open (building it when this database version has none) with :meth:`open`; ask with :meth:`lookup`."""

    def __init__(self, path: Path, info: dict[str, Any]):
        self.path = path
        self.info = info
        self._local = threading.local()

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    @classmethod
    def open(
        cls,
        db: str,
        schema: Schema | None = None,
        max_per_column: int = 2000,
        max_chars: int = 80,
        max_seconds: float = 120.0,
        cache: Path | None = None,
        allow_privileged_role: bool = False,
    ) -> ValueIndex:
        key = version_key(db, schema, allow_privileged_role)
        root = cache or cache_root()
        path = root / f"{key}.sqlite"
        if path.is_file():
            try:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                info = json.loads(conn.execute("SELECT info FROM meta").fetchone()[0])
                conn.close()
                if info.get("max_per_column") == max_per_column and info.get("max_chars") == max_chars:
                    return cls(path, info)
            except (sqlite3.Error, TypeError, ValueError):
                pass  # unreadable or built with other bounds: built again
        return cls._build(db, schema, path, max_per_column, max_chars, max_seconds, allow_privileged_role)

    @classmethod
    def _build(
        cls,
        db: str,
        schema: Schema | None,
        path: Path,
        max_per_column: int,
        max_chars: int,
        max_seconds: float,
        allow_privileged_role: bool,
    ) -> ValueIndex:
        from sqltune.db.engine import connect

        t0 = time.perf_counter()
        target = resolve(db)
        schema = schema or introspect(db)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        os.close(fd)
        out = sqlite3.connect(tmp)
        out.execute("CREATE VIRTUAL TABLE v USING fts5(value, tbl UNINDEXED, col UNINDEXED, tokenize='trigram')")
        out.execute("CREATE TABLE exact (low TEXT, value TEXT, tbl TEXT, col TEXT)")
        out.execute("CREATE TABLE meta (info TEXT)")
        # per column: distinct non-NULL values read (up to max_per_column) and how many of them were indexed
        # closed: every distinct non-NULL value was read and is text kept as it is (what value grounding needs)
        out.execute(
            "CREATE TABLE cols (tbl TEXT, col TEXT, n_read INTEGER, n_kept INTEGER, n_rows INTEGER, closed INTEGER)"
        )
        n_values = n_columns = 0
        partial = False
        from sqlglot import exp

        dialect = SQLGLOT_DIALECT[target.engine]
        conn = connect(db, allow_privileged_role=allow_privileged_role)  # read-only, time-limited
        try:
            for tb in schema.tables:
                left = max_seconds - (time.perf_counter() - t0)
                if left <= 0:
                    partial = True
                    break
                counted = conn.run(
                    exp.select("COUNT(*)").from_(exp.table_(tb.name, quoted=True)).sql(dialect), timeout=min(30, left)
                )
                n_rows = int(counted.rows[0][0]) if counted.ok and counted.rows else 0
                for c in tb.columns:
                    left = max_seconds - (time.perf_counter() - t0)
                    if left <= 0:
                        partial = True
                        break
                    sql = _quoted_sql(tb.name, c.name, max_per_column, dialect)
                    r = conn.run(sql, timeout=min(30, left))
                    if not r.ok:
                        continue
                    vals = {
                        str(row[0]).strip()
                        for row in r.rows
                        if isinstance(row[0], str) and 0 < len(row[0].strip()) <= max_chars and _LETTER.search(row[0])
                    }
                    read = {row[0] for row in r.rows if row[0] is not None}
                    closed = len(read) < max_per_column and read == vals
                    out.execute(
                        "INSERT INTO cols VALUES (?, ?, ?, ?, ?, ?)",
                        (tb.name, c.name, len(read), len(vals), n_rows, int(closed)),
                    )
                    if vals:
                        n_columns += 1
                        n_values += len(vals)
                        out.executemany("INSERT INTO v VALUES (?, ?, ?)", [(v, tb.name, c.name) for v in sorted(vals)])
                        out.executemany(
                            "INSERT INTO exact VALUES (?, ?, ?, ?)",
                            [(v.lower(), v, tb.name, c.name) for v in sorted(vals)],
                        )
        finally:
            conn.close()
        info = {
            "version": INDEX_VERSION,
            "db": target.name,
            "values": n_values,
            "columns": n_columns,
            "max_per_column": max_per_column,
            "max_chars": max_chars,
            "partial": partial,
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        out.execute("CREATE INDEX exact_low ON exact (low)")
        out.execute("INSERT INTO meta VALUES (?)", (json.dumps(info),))
        out.commit()
        out.execute("VACUUM")
        out.close()
        info["bytes"] = os.path.getsize(tmp)
        os.replace(tmp, path)
        return cls(path, info)

    def lookup(
        self, question: str, limit: int = 10, min_score: float = 82.0, tables: set[str] | None = None
    ) -> list[ValueHit]:
        """The values the question names, best first: at most ``limit``, each at least ``min_score`` similar
        (0-100) to a span of the question's words; ``tables``: only the values of these tables (the
        namespaces schema linking focused on), as an index of those tables alone would find them (the similar
        ones among the index's ``SIMILAR_READ`` best for each span). The rows read for one question are kept
        for the next lookup of the same question, so asking again for some tables reads nothing.

        A value found only by similarity (not spelled as the span, in any case) is left out when the span is
        made of the schema's own words (*orchestras* is the table, not a part of 'Kirov Orchestra'), when it
        lies within a longer span that names a value exactly, or when it fits more than
        ``MAX_SIMILAR`` values of one column (a word many values share names none of them)."""
        from rapidfuzz import fuzz

        if tables is not None and not tables:
            return []
        names = self._name_words() if tables is None else self._table_words(frozenset(tables))
        memo = getattr(self._local, "memo", None)
        if memo is None or memo[0] != question:
            memo = self._local.memo = (question, {})
        read: dict[tuple[str, str], list[tuple[str, str, str]]] = memo[1]

        def rows_of(kind: str, key: str, sql: str) -> list[tuple[str, str, str]]:
            if (kind, key) not in read:
                read[(kind, key)] = self._conn.execute(sql, (key,)).fetchall()
            got = read[(kind, key)]
            return got if tables is None else [r for r in got if r[1] in tables]

        best: dict[tuple[str, str, str], ValueHit] = {}
        exact_spans: list[str] = []
        for span in _span_candidates(question):
            low = span.lower()
            grams = {low[i : i + 3] for i in range(len(low) - 2)}
            if not grams:
                continue
            try:
                # the value itself, in any case (a B-tree lookup); then, for a longer span, values that
                # contain it or (a typo) share its trigrams, by FTS5's rank
                rows = rows_of("exact", low, "SELECT value, tbl, col FROM exact WHERE low = ?")
                if rows:
                    exact_spans.append(low)
                elif (
                    len(low) >= 5
                    and span.count(" ") <= 1
                    and not set(words(low)) <= names
                    and not any(low in e for e in exact_spans)
                ):
                    query = " OR ".join('"' + g.replace('"', '""') + '"' for g in sorted(grams))
                    sql = f"SELECT value, tbl, col FROM v WHERE v MATCH ? ORDER BY rank LIMIT {SIMILAR_READ}"
                    rows = rows_of("similar", query, sql)[:SIMILAR]
            except sqlite3.OperationalError:
                continue
            similar: dict[tuple[str, str], list[ValueHit]] = {}
            for value, tbl, col in rows:
                v = value.lower()
                score = 100.0 if v == low else float(fuzz.ratio(low, v))
                if score < min_score and len(low) >= 4 and len(v) > len(low):
                    # a word or two of a longer value ("Electronics" in "Consumer Electronics")
                    score = float(fuzz.partial_ratio(low, v)) - 8.0 if len(low) >= len(v) / 3 else 0.0
                if score < min_score:
                    continue
                hit = ValueHit(tbl, col, value, score, span)
                if score < 100.0:
                    similar.setdefault((tbl, col), []).append(hit)
                    continue
                key = (tbl, col, value)
                if key not in best or best[key].score < score:
                    best[key] = hit
            for group in similar.values():
                if len(group) > MAX_SIMILAR:
                    continue
                for hit in group:
                    key = (hit.table, hit.column, hit.value)
                    if key not in best or best[key].score < hit.score:
                        best[key] = hit
        hits = sorted(best.values(), key=lambda h: (-h.score, -len(h.span), h.table, h.column, h.value))
        return hits[:limit]

    def _name_words(self) -> frozenset[str]:
        """The words of the indexed tables' and columns' names (folded as schema linking folds them)."""
        cached = getattr(self._local, "names", None)
        if cached is None:
            cached = frozenset(
                w for tbl, col in self._conn.execute("SELECT tbl, col FROM cols") for w in words(f"{tbl} {col}")
            )
            self._local.names = cached
        return cached

    def _table_words(self, tables: frozenset[str]) -> frozenset[str]:
        """The words of these tables' and their columns' names, a namespaced table's by its own name
        (:func:`sqltune.linking.names.short_name`), as the index of that namespace alone would have them."""
        from sqltune.linking.names import short_name

        cache = getattr(self._local, "table_words", None)
        if cache is None:
            cache = self._local.table_words = {}
        if tables not in cache:
            if len(cache) >= 256:
                cache.pop(next(iter(cache)))
            rows = self._conn.execute(
                f"SELECT tbl, col FROM cols WHERE tbl IN ({', '.join('?' * len(tables))})", tuple(sorted(tables))
            )
            cache[tables] = frozenset(w for tbl, col in rows for w in words(f"{short_name(tbl) or tbl} {col}"))
        return cache[tables]  # type: ignore[no-any-return]

    def categories(self, max_n: int) -> dict[tuple[str, str], tuple[str, ...]]:
        """Every value of each text column holding at most ``max_n`` distinct ones, all of them words
        (not numbers or dates kept as text), that repeat (at most 4 distinct values per 5 rows: a status or
        a country, not the names of a ten-row table): (table, column) in lower case -> its values, sorted."""
        cached = getattr(self._local, "categories", None)
        if cached is not None and cached[0] == max_n:
            return dict(cached[1])
        rows = self._conn.execute(
            "SELECT e.tbl, e.col, e.value FROM exact e JOIN cols c ON c.tbl = e.tbl AND c.col = e.col "
            "WHERE c.n_kept = c.n_read AND c.n_read BETWEEN 1 AND ? AND 5 * c.n_read <= 4 * c.n_rows "
            "ORDER BY e.tbl, e.col, e.value",
            (max_n,),
        ).fetchall()
        out: dict[tuple[str, str], list[str]] = {}
        for tbl, col, value in rows:
            out.setdefault((tbl.lower(), col.lower()), []).append(value)
        found = {k: tuple(v) for k, v in out.items()}
        self._local.categories = (max_n, found)
        return dict(found)

    def closed_values(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """Every value of each column whose distinct values were all read and are all text kept as they are
        (no number, date or over-long text among them, fewer than ``max_per_column``): (table, column) in lower
        case -> its values, sorted. What value grounding (:mod:`sqltune.models.grounding`) may restrict a literal
        to without ever masking a value the column holds."""
        cached = getattr(self._local, "closed", None)
        if cached is not None:
            return dict(cached)
        rows = self._conn.execute(
            "SELECT e.tbl, e.col, e.value FROM exact e JOIN cols c ON c.tbl = e.tbl AND c.col = e.col "
            "WHERE c.closed = 1 ORDER BY e.tbl, e.col, e.value"
        ).fetchall()
        out: dict[tuple[str, str], list[str]] = {}
        for tbl, col, value in rows:
            out.setdefault((tbl.lower(), col.lower()), []).append(value)
        found = {k: tuple(v) for k, v in out.items()}
        self._local.closed = found
        return dict(found)

    def grounding(self) -> Any:
        """The :class:`sqltune.models.grounding.Grounding` of this database: its closed columns' values."""
        from sqltune.models.grounding import Grounding

        return Grounding(self.closed_values())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
