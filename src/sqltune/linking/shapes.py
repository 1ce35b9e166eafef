"""Query shapes over a profiled database (``sqltune data synth``'s pairs, the query bank): each draws tables, columns and real values from a database profile
and returns a SQL query with several phrasings of its question.

The shapes cover Spider's hardness levels: projections, filters on text, numbers, dates, NULLs
and LIKE; counts, aggregates, DISTINCT; ORDER BY/LIMIT; GROUP BY and HAVING; joins along
declared and inferred foreign keys; nested queries (a comparison with an aggregate, NOT IN);
and set operations. A shape returns ``None`` when the database has nothing it can use (no
numeric column, no foreign key, ...). Identifiers are quoted only where SQLite needs it.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from sqlglot.tokens import Tokenizer

from sqltune.db.dialect import transpile
from sqltune.errors import DataError, ExecutionError
from sqltune.linking.profile import ColumnProfile, DatabaseProfile, TableProfile

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = {k.upper() for k in Tokenizer.KEYWORDS}


def ident(name: str) -> str:
    """An identifier as SQLite reads it: bare when it can be, double-quoted otherwise."""
    if _PLAIN.match(name) and name.upper() not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def lit(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def plural(w: str) -> str:
    if w.endswith(("s", "x", "z", "ch", "sh")):
        return w if w.endswith("s") else w + "es"
    if w.endswith("y") and len(w) > 1 and w[-2] not in "aeiou":
        return w[:-1] + "ies"
    return w + "s"


@dataclass
class Candidate:
    shape: str
    sql: str
    questions: list[str]
    tables: list[str]
    columns: list[str] = field(default_factory=list)
    allow_empty: bool = False
    """A question about absence: an empty result is an answer."""


Shape = Callable[[random.Random, DatabaseProfile], Candidate | None]


def _tables(prof: DatabaseProfile) -> list[TableProfile]:
    return [t for t in prof.tables if t.rows > 0 and t.columns]


def _cols(t: TableProfile, kind: str | None = None, keys: bool = False, min_distinct: int = 1) -> list[ColumnProfile]:
    out = []
    for c in t.columns:
        if kind and c.kind != kind:
            continue
        if not keys and c.is_key:
            continue
        if c.distinct < min_distinct:
            continue
        out.append(c)
    return out


def _pick(rng: random.Random, xs: list[Any]) -> Any:
    return rng.choice(xs) if xs else None


def _value(rng: random.Random, c: ColumnProfile) -> Any:
    return rng.choice(c.values[:10]) if c.values else None


_FIRST = re.compile(r"^(?:first|given|fore)[_ ]?name$|^f_?name$", re.I)
_LAST = re.compile(r"^(?:last|family|sur)[_ ]?name$|^l_?name$", re.I)


@dataclass
class NameColumns(ColumnProfile):
    """A person's name kept in two columns (first and last name): asked for as one "name", selected as both
    (``SELECT first_name, last_name``), as people and Spider's gold queries name a person. It stands for the
    first of its columns wherever a shape compares columns."""

    parts: tuple[ColumnProfile, ...] = ()

    @property
    def words(self) -> str:
        return "name"


def person_name(t: TableProfile) -> NameColumns | None:
    """The table's first-and-last-name pair, where it has one."""
    first = next((c for c in t.columns if _FIRST.match(c.name)), None)
    last = next((c for c in t.columns if _LAST.match(c.name)), None)
    if first is None or last is None:
        return None
    return NameColumns(
        first.name, first.type, first.kind, False, first.distinct, first.null_share, first.values, (first, last)
    )


def col_names(c: ColumnProfile) -> list[str]:
    """The column names ``c`` selects."""
    return [p.name for p in c.parts] if isinstance(c, NameColumns) else [c.name]


def sel(c: ColumnProfile, alias: str = "") -> str:
    """``c`` in a select list (both columns of a person's name), qualified by ``alias`` when given."""
    pre = f"{alias}." if alias else ""
    return ", ".join(pre + ident(n) for n in col_names(c))


def _name_col(rng: random.Random, t: TableProfile) -> ColumnProfile | None:
    """The column a person would ask for: a person's first and last name together (most often, where the
    table has both), else one whose name says name/title, else any non-key text column."""
    pair = person_name(t)
    if pair is not None and rng.random() < 0.75:
        return pair
    texts = _cols(t, "text", min_distinct=2)
    named = [c for c in texts if re.search(r"name|title", c.name, re.I)]
    picked: ColumnProfile | None = _pick(rng, named or texts or _cols(t, min_distinct=1))
    return picked


def list_column(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, _tables(prof))
    c = _name_col(rng, t) if t else None
    if c is None:
        return None
    tw, cw = t.words, c.words
    return Candidate(
        "list",
        f"SELECT {sel(c)} FROM {ident(t.name)}",
        [
            f"List the {cw} of every {tw}.",
            f"What are the {plural(cw)} of all {plural(tw)}?",
            f"Show the {cw} for each {tw}.",
            f"Give me all {tw} {plural(cw)}.",
        ],
        [t.name],
        col_names(c),
    )


def count_rows(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, _tables(prof))
    if t is None:
        return None
    tw = plural(t.words)
    return Candidate(
        "count",
        f"SELECT count(*) FROM {ident(t.name)}",
        [f"How many {tw} are there?", f"Count the {tw}.", f"What is the number of {tw}?", f"How many {tw} do we have?"],
        [t.name],
    )


def filter_text(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if len(_cols(t, "text", min_distinct=2)) >= 1])
    if t is None:
        return None
    where = _pick(rng, _cols(t, "text", min_distinct=2))
    out = _name_col(rng, t)
    if out is None or out.name == where.name:
        out = _pick(rng, [c for c in _cols(t, min_distinct=1) if c.name != where.name])
    if out is None:
        return None
    v = _value(rng, where)
    tw, ow, ww = t.words, out.words, where.words
    return Candidate(
        "filter_text",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(where.name)} = {lit(v)}",
        [
            f"What is the {ow} of the {plural(tw)} whose {ww} is {v}?",
            f"Show the {ow} of {plural(tw)} with {ww} {v}.",
            f"Which {plural(ow)} belong to {plural(tw)} where the {ww} is {v}?",
            f"For {tw} with {ww} equal to {v}, list the {ow}.",
        ],
        [t.name],
        [*col_names(out), where.name],
    )


def filter_not(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "text", min_distinct=2)])
    if t is None:
        return None
    where = _pick(rng, _cols(t, "text", min_distinct=2))
    out = _name_col(rng, t)
    if out is None or out.name == where.name:
        return None
    v = _value(rng, where)
    tw, ow, ww = t.words, out.words, where.words
    return Candidate(
        "filter_not",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(where.name)} != {lit(v)}",
        [
            f"Which {plural(tw)} do not have {ww} {v}? Give their {ow}.",
            f"List the {ow} of {plural(tw)} whose {ww} is not {v}.",
            f"Show the {ow} of every {tw} except those with {ww} {v}.",
        ],
        [t.name],
        [*col_names(out), where.name],
    )


def filter_number(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "number", min_distinct=3)])
    if t is None:
        return None
    n = _pick(rng, _cols(t, "number", min_distinct=3))
    out = _name_col(rng, t)
    if out is None or out.name == n.name:
        return None
    v = _value(rng, n)
    op, words_ = rng.choice([(">", "greater than"), ("<", "less than"), (">=", "at least"), ("<=", "at most")])
    tw, ow, nw = t.words, out.words, n.words
    return Candidate(
        "filter_number",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(n.name)} {op} {lit(v)}",
        [
            f"Which {plural(tw)} have a {nw} {words_} {v}? Show their {ow}.",
            f"List the {ow} of {plural(tw)} with {nw} {words_} {v}.",
            f"What {plural(ow)} do {plural(tw)} whose {nw} is {words_} {v} have?",
        ],
        [t.name],
        [*col_names(out), n.name],
    )


def filter_date(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "date", min_distinct=2)])
    if t is None:
        return None
    d = _pick(rng, _cols(t, "date", min_distinct=2))
    out = _name_col(rng, t)
    v = _value(rng, d)
    if out is None or out.name == d.name or not isinstance(v, str) or len(v) < 4:
        return None
    year = v[:4]
    tw, ow, dw = plural(t.words), out.words, d.words
    if rng.random() < 0.5:
        return Candidate(
            "filter_year",
            f"SELECT {sel(out)} FROM {ident(t.name)} WHERE strftime('%Y', {ident(d.name)}) = {lit(year)}",
            [
                f"Which {tw} have a {dw} in {year}? Give their {ow}.",
                f"List the {ow} of {tw} whose {dw} falls in {year}.",
                f"Show the {ow} of the {tw} from {year} (by {dw}).",
            ],
            [t.name],
            [*col_names(out), d.name],
        )
    return Candidate(
        "filter_date",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(d.name)} > {lit(v)}",
        [
            f"Which {tw} have a {dw} after {v}? Show their {ow}.",
            f"List the {ow} of {tw} with {dw} later than {v}.",
            f"What is the {ow} of every {t.words} whose {dw} comes after {v}?",
        ],
        [t.name],
        [*col_names(out), d.name],
    )


def count_where(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "text", min_distinct=2)])
    if t is None:
        return None
    c = _pick(rng, _cols(t, "text", min_distinct=2))
    v = _value(rng, c)
    tw, cw = plural(t.words), c.words
    return Candidate(
        "count_where",
        f"SELECT count(*) FROM {ident(t.name)} WHERE {ident(c.name)} = {lit(v)}",
        [
            f"How many {tw} have {cw} {v}?",
            f"Count the {tw} whose {cw} is {v}.",
            f"What is the number of {tw} with {cw} {v}?",
        ],
        [t.name],
        [c.name],
    )


def distinct_values(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if [c for c in _cols(t, "text") if 1 < c.distinct < t.rows]])
    if t is None:
        return None
    c = _pick(rng, [c for c in _cols(t, "text") if 1 < c.distinct < t.rows])
    tw, cw = t.words, c.words
    return Candidate(
        "distinct",
        f"SELECT DISTINCT {ident(c.name)} FROM {ident(t.name)}",
        [
            f"What are the different {plural(cw)} of {plural(tw)}?",
            f"List the distinct {cw} values in {tw}.",
            f"Which {plural(cw)} appear among the {plural(tw)}?",
        ],
        [t.name],
        [c.name],
    )


def aggregate(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "number", min_distinct=2)])
    if t is None:
        return None
    n = _pick(rng, _cols(t, "number", min_distinct=2))
    fn, w = rng.choice([("max", "highest"), ("min", "lowest"), ("avg", "average"), ("sum", "total")])
    tw, nw = plural(t.words), n.words
    return Candidate(
        "aggregate",
        f"SELECT {fn}({ident(n.name)}) FROM {ident(t.name)}",
        [f"What is the {w} {nw} of all {tw}?", f"Find the {w} {nw} among {tw}.", f"Give the {w} {nw} over the {tw}."],
        [t.name],
        [n.name],
    )


def null_check(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if [c for c in t.columns if 0 < c.null_share < 1 and not c.is_key]])
    if t is None:
        return None
    c = _pick(rng, [c for c in t.columns if 0 < c.null_share < 1 and not c.is_key])
    neg = rng.random() < 0.5
    tw, cw = plural(t.words), c.words
    qs = (
        [
            f"How many {tw} have a {cw}?",
            f"Count the {tw} whose {cw} is known.",
            f"How many {tw} have their {cw} filled in?",
        ]
        if neg
        else [f"How many {tw} have no {cw}?", f"Count the {tw} with a missing {cw}.", f"How many {tw} lack a {cw}?"]
    )
    return Candidate(
        "null_check",
        f"SELECT count(*) FROM {ident(t.name)} WHERE {ident(c.name)} IS {'NOT ' if neg else ''}NULL",
        qs,
        [t.name],
        [c.name],
    )


def like_filter(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "text", min_distinct=3)])
    if t is None:
        return None
    c = _pick(rng, _cols(t, "text", min_distinct=3))
    v = _value(rng, c)
    if not isinstance(v, str):
        return None
    parts = [w for w in re.findall(r"[A-Za-z]{3,}", v)]
    if not parts:
        return None
    sub = rng.choice(parts)
    tw, cw = plural(t.words), c.words
    return Candidate(
        "like",
        f"SELECT {ident(c.name)} FROM {ident(t.name)} WHERE {ident(c.name)} LIKE {lit('%' + sub + '%')}",
        [
            f"Which {tw} have a {cw} containing '{sub}'?",
            f"List the {plural(cw)} that include the word '{sub}'.",
            f"Find {tw} whose {cw} mentions '{sub}'.",
        ],
        [t.name],
        [c.name],
    )


def order_limit(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "number", min_distinct=3) and t.rows >= 3])
    if t is None:
        return None
    n = _pick(rng, _cols(t, "number", min_distinct=3))
    out = _name_col(rng, t)
    if out is None or out.name == n.name:
        return None
    desc = rng.random() < 0.6
    k = rng.choice([1, 1, 3, 5])
    tw, ow, nw = t.words, out.words, n.words
    most = "highest" if desc else "lowest"
    if k == 1:
        qs = [
            f"Which {tw} has the {most} {nw}? Give its {ow}.",
            f"What is the {ow} of the {tw} with the {most} {nw}?",
            f"Name the {tw} with the {most} {nw}.",
        ]
    else:
        qs = [
            f"List the {ow} of the {k} {plural(tw)} with the {most} {nw}.",
            f"Which {k} {plural(tw)} have the {most} {nw}?",
            f"Top {k} {plural(tw)} by {nw} ({'largest' if desc else 'smallest'} first): their {ow}.",
        ]
    return Candidate(
        "order_limit",
        f"SELECT {sel(out)} FROM {ident(t.name)} ORDER BY {ident(n.name)} {'DESC' if desc else 'ASC'} LIMIT {k}",
        qs,
        [t.name],
        [*col_names(out), n.name],
    )


def order_date(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """The first or latest rows by a date: "who was hired first", "the most recent order"."""
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "date", min_distinct=3) and t.rows >= 3])
    if t is None:
        return None
    d = _pick(rng, _cols(t, "date", min_distinct=3))
    out = _name_col(rng, t)
    if out is None or out.name == d.name:
        return None
    latest = rng.random() < 0.5
    k = rng.choice([1, 1, 1, 3, 5])
    tw, ow, dw = t.words, out.words, d.words
    when, new = ("latest", "most recent") if latest else ("earliest", "first")
    if k == 1:
        qs = [
            f"Which {tw} has the {when} {dw}? Give its {ow}.",
            f"What is the {ow} of the {new} {tw} by {dw}?",
            f"Name the {tw} with the {'newest' if latest else 'oldest'} {dw}.",
        ]
    else:
        qs = [
            f"List the {ow} of the {k} {plural(tw)} with the {when} {dw}.",
            f"Which {k} {plural(tw)} came {'last' if latest else 'first'} by {dw}?",
        ]
    return Candidate(
        "order_date",
        f"SELECT {sel(out)} FROM {ident(t.name)} ORDER BY {ident(d.name)} {'DESC' if latest else 'ASC'} LIMIT {k}",
        qs,
        [t.name],
        [*col_names(out), d.name],
    )


def date_extreme(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """The earliest or latest date of a column: "when was the first order placed"."""
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "date", min_distinct=2)])
    if t is None:
        return None
    d = _pick(rng, _cols(t, "date", min_distinct=2))
    latest = rng.random() < 0.5
    tw, dw = plural(t.words), d.words
    when = "latest" if latest else "earliest"
    return Candidate(
        "date_extreme",
        f"SELECT {'max' if latest else 'min'}({ident(d.name)}) FROM {ident(t.name)}",
        [
            f"What is the {when} {dw} among {tw}?",
            f"When was the {'most recent' if latest else 'first'} {t.words} {dw}?",
            f"Give the {when} {dw} of all {tw}.",
        ],
        [t.name],
        [d.name],
    )


def _grouping(rng: random.Random, prof: DatabaseProfile) -> tuple[TableProfile, ColumnProfile] | None:
    """A table and a column to group it by: one whose values repeat (more than one, fewer than the rows)."""
    t = _pick(rng, [t for t in _tables(prof) if [c for c in _cols(t) if 1 < c.distinct < max(t.rows, 2)]])
    if t is None:
        return None
    return t, _pick(rng, [c for c in _cols(t) if 1 < c.distinct < max(t.rows, 2)])


def group_most(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """The most (or least) common value of a column: "which segment is the biggest"."""
    tg = _grouping(rng, prof)
    if tg is None:
        return None
    t, g = tg
    most = rng.random() < 0.75
    tw, gw = plural(t.words), g.words
    word = "most" if most else "fewest"
    return Candidate(
        "group_most",
        f"SELECT {ident(g.name)} FROM {ident(t.name)} GROUP BY {ident(g.name)} "
        f"ORDER BY count(*) {'DESC' if most else 'ASC'} LIMIT 1",
        [
            f"Which {gw} has the {word} {tw}?",
            f"What is the {'most' if most else 'least'} common {gw} among {tw}?",
            f"Which {gw} do the {word} {tw} have?" if most else f"Which {gw} is the rarest among {tw}?",
        ],
        [t.name],
        [g.name],
    )


def group_count(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    tg = _grouping(rng, prof)
    if tg is None:
        return None
    t, g = tg
    tw, gw = plural(t.words), g.words
    return Candidate(
        "group_count",
        f"SELECT {ident(g.name)}, count(*) FROM {ident(t.name)} GROUP BY {ident(g.name)}",
        [
            f"How many {tw} are there for each {gw}?",
            f"Count the {tw} per {gw}.",
            f"For every {gw}, how many {tw} are there?",
        ],
        [t.name],
        [g.name],
    )


def group_having(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    tg = _grouping(rng, prof)
    if tg is None:
        return None
    t, g = tg
    k = rng.choice([1, 2, 3])
    tw, gw = plural(t.words), g.words
    return Candidate(
        "group_having",
        f"SELECT {ident(g.name)} FROM {ident(t.name)} GROUP BY {ident(g.name)} HAVING count(*) > {k}",
        [
            f"Which {plural(gw)} have more than {k} {tw}?",
            f"List the {plural(gw)} shared by more than {k} {tw}.",
            f"Find every {gw} that appears in over {k} {tw}.",
        ],
        [t.name],
        [g.name],
    )


def above_average(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "number", min_distinct=3)])
    if t is None:
        return None
    n = _pick(rng, _cols(t, "number", min_distinct=3))
    out = _name_col(rng, t)
    if out is None or out.name == n.name:
        return None
    above = rng.random() < 0.6
    tw, ow, nw = t.words, out.words, n.words
    side = "above" if above else "below"
    return Candidate(
        "nested_avg",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(n.name)} {'>' if above else '<'} "
        f"(SELECT avg({ident(n.name)}) FROM {ident(t.name)})",
        [
            f"Which {plural(tw)} have a {nw} {side} the average? Give their {ow}.",
            f"List the {ow} of {plural(tw)} whose {nw} is {side} average.",
            f"Show the {ow} of every {tw} with a {'higher' if above else 'lower'} than average {nw}.",
        ],
        [t.name],
        [*col_names(out), n.name],
    )


def _join(rng: random.Random, prof: DatabaseProfile) -> tuple[Any, TableProfile, TableProfile] | None:
    fks = [
        f for f in prof.joins if prof.table(f.table).rows and prof.table(f.ref_table).rows and f.table != f.ref_table
    ]
    if not fks:
        return None
    f = rng.choice(fks)
    return f, prof.table(f.table), prof.table(f.ref_table)


def _join_named(
    rng: random.Random, prof: DatabaseProfile
) -> tuple[Any, TableProfile, TableProfile, ColumnProfile] | None:
    """A foreign key with its child and parent tables and the parent's name-like column."""
    j = _join(rng, prof)
    if j is None:
        return None
    name = _name_col(rng, j[2])
    return None if name is None else (*j, name)


def join_filter(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    j = _join(rng, prof)
    if j is None:
        return None
    f, child, parent = j
    out = _name_col(rng, child)
    where = _pick(rng, _cols(parent, "text", min_distinct=2))
    if out is None or where is None:
        return None
    v = _value(rng, where)
    cw, pw, ow, ww = child.words, parent.words, out.words, where.words
    return Candidate(
        "join_filter",
        f"SELECT {sel(out, 'T1')} FROM {ident(child.name)} AS T1 JOIN {ident(parent.name)} AS T2 "
        f"ON T1.{ident(f.column)} = T2.{ident(f.ref_column)} WHERE T2.{ident(where.name)} = {lit(v)}",
        [
            f"What are the {plural(ow)} of {plural(cw)} whose {pw} has {ww} {v}?",
            f"List the {ow} of every {cw} linked to a {pw} with {ww} {v}.",
            f"For the {pw} with {ww} {v}, show the {ow} of its {plural(cw)}.",
        ],
        [child.name, parent.name],
        [*col_names(out), where.name],
    )


def join_most(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    j = _join_named(rng, prof)
    if j is None:
        return None
    f, child, parent, name = j
    cw, pw, nw = child.words, parent.words, name.words
    return Candidate(
        "join_most",
        f"SELECT {sel(name, 'T2')} FROM {ident(child.name)} AS T1 JOIN {ident(parent.name)} AS T2 "
        f"ON T1.{ident(f.column)} = T2.{ident(f.ref_column)} GROUP BY T1.{ident(f.column)} ORDER BY count(*) DESC LIMIT 1",
        [
            f"Which {pw} has the most {plural(cw)}? Give its {nw}.",
            f"What is the {nw} of the {pw} with the largest number of {plural(cw)}?",
            f"Name the {pw} that has the most {plural(cw)}.",
        ],
        [child.name, parent.name],
        col_names(name),
    )


def join_count_group(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    j = _join_named(rng, prof)
    if j is None:
        return None
    f, child, parent, name = j
    cw, pw, nw = child.words, parent.words, name.words
    return Candidate(
        "join_group",
        f"SELECT {sel(name, 'T2')}, count(*) FROM {ident(child.name)} AS T1 JOIN {ident(parent.name)} AS T2 "
        f"ON T1.{ident(f.column)} = T2.{ident(f.ref_column)} GROUP BY {sel(name, 'T2')}",
        [
            f"How many {plural(cw)} does each {pw} have? Show the {pw} {nw}.",
            f"For each {pw} {nw}, count its {plural(cw)}.",
            f"List every {pw}'s {nw} with the number of {plural(cw)}.",
        ],
        [child.name, parent.name],
        col_names(name),
    )


def not_in(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    j = _join_named(rng, prof)
    if j is None:
        return None
    f, child, parent, name = j
    cw, pw, nw = child.words, parent.words, name.words
    return Candidate(
        "not_in",
        f"SELECT {sel(name)} FROM {ident(parent.name)} WHERE {ident(f.ref_column)} NOT IN "
        f"(SELECT {ident(f.column)} FROM {ident(child.name)} WHERE {ident(f.column)} IS NOT NULL)",
        [
            f"Which {plural(pw)} have no {plural(cw)}? Give their {nw}.",
            f"List the {nw} of {plural(pw)} without any {cw}.",
            f"Find the {plural(pw)} that no {cw} refers to.",
        ],
        [parent.name, child.name],
        col_names(name),
        allow_empty=True,
    )


def set_operation(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    t = _pick(rng, [t for t in _tables(prof) if len(_cols(t, "text", min_distinct=2)) >= 1])
    if t is None:
        return None
    a = _pick(rng, _cols(t, "text", min_distinct=2))
    out = _name_col(rng, t)
    if out is None or out.name == a.name or len(a.values) < 2:
        return None
    v1, v2 = rng.sample(a.values[:10], 2)
    op, w = rng.choice([("UNION", "or"), ("EXCEPT", "but not")])
    tw, ow, aw = plural(t.words), out.words, a.words
    q = f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(a.name)} = "
    if op == "UNION":
        qs = [
            f"List the {ow} of {tw} whose {aw} is {v1} or {v2}.",
            f"Which {tw} have {aw} {v1} or {aw} {v2}? Give their {ow}.",
        ]
    else:
        nums = _cols(t, "number", min_distinct=2)
        if not nums:
            return None
        n = rng.choice(nums)
        cut = _value(rng, n)
        sql = (
            f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(a.name)} = {lit(v1)} EXCEPT "
            f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(n.name)} > {lit(cut)}"
        )
        return Candidate(
            "set_except",
            sql,
            [
                f"Which {ow} values occur among {tw} with {aw} {v1} but never among those with {n.words} above {cut}?",
                f"List the {plural(ow)} of {tw} with {aw} {v1}, except those of {tw} whose {n.words} is over {cut}.",
            ],
            [t.name],
            [*col_names(out), a.name, n.name],
            allow_empty=True,
        )
    return Candidate("set_union", f"{q}{lit(v1)} UNION {q}{lit(v2)}", qs, [t.name], [*col_names(out), a.name])


def filter_and(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """Two conditions at once: a text value and a number bound."""
    t = _pick(
        rng, [t for t in _tables(prof) if _cols(t, "text", min_distinct=2) and _cols(t, "number", min_distinct=3)]
    )
    if t is None:
        return None
    a, n = _pick(rng, _cols(t, "text", min_distinct=2)), _pick(rng, _cols(t, "number", min_distinct=3))
    out = _name_col(rng, t)
    if out is None or out.name in (a.name, n.name):
        return None
    va, vn = _value(rng, a), _value(rng, n)
    op, w = rng.choice([(">", "above"), ("<", "below")])
    tw, ow, aw, nw = plural(t.words), out.words, a.words, n.words
    return Candidate(
        "filter_and",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(a.name)} = {lit(va)} AND {ident(n.name)} {op} {lit(vn)}",
        [
            f"Which {tw} with {aw} {va} have a {nw} {w} {vn}? Give their {ow}.",
            f"List the {ow} of {tw} whose {aw} is {va} and whose {nw} is {w} {vn}.",
            f"Show the {ow} for {tw} with {aw} {va} and {nw} {w} {vn}.",
        ],
        [t.name],
        [*col_names(out), a.name, n.name],
    )


def project_two(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """Two columns of the rows that match a value."""
    t = _pick(rng, [t for t in _tables(prof) if len(_cols(t, min_distinct=2)) >= 3])
    if t is None:
        return None
    where = _pick(rng, _cols(t, "text", min_distinct=2) or _cols(t, min_distinct=2))
    rest = [c for c in _cols(t, min_distinct=1) if c.name != where.name]
    if len(rest) < 2:
        return None
    c1, c2 = rng.sample(rest, 2)
    v = _value(rng, where)
    tw, ww = t.words, where.words
    return Candidate(
        "project_two",
        f"SELECT {ident(c1.name)}, {ident(c2.name)} FROM {ident(t.name)} WHERE {ident(where.name)} = {lit(v)}",
        [
            f"What are the {c1.words} and {c2.words} of the {plural(tw)} with {ww} {v}?",
            f"For {plural(tw)} whose {ww} is {v}, show the {c1.words} and the {c2.words}.",
            f"Give the {c1.words} and {c2.words} of every {tw} with {ww} {v}.",
        ],
        [t.name],
        [c1.name, c2.name, where.name],
    )


def group_aggregate(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """An average, total, largest or smallest number per group."""
    t = _pick(
        rng,
        [
            t
            for t in _tables(prof)
            if _cols(t, "number", min_distinct=3) and [c for c in _cols(t) if 1 < c.distinct < max(t.rows, 2)]
        ],
    )
    if t is None:
        return None
    g = _pick(rng, [c for c in _cols(t) if 1 < c.distinct < max(t.rows, 2)])
    n = _pick(rng, [c for c in _cols(t, "number", min_distinct=3) if c.name != g.name])
    if n is None:
        return None
    fn, w = rng.choice([("avg", "average"), ("sum", "total"), ("max", "largest"), ("min", "smallest")])
    tw, gw, nw = plural(t.words), g.words, n.words
    return Candidate(
        "group_aggregate",
        f"SELECT {ident(g.name)}, {fn}({ident(n.name)}) FROM {ident(t.name)} GROUP BY {ident(g.name)}",
        [
            f"What is the {w} {nw} of {tw} for each {gw}?",
            f"For every {gw}, give the {w} {nw} of its {tw}.",
            f"Show each {gw} with the {w} {nw} among its {tw}.",
        ],
        [t.name],
        [g.name, n.name],
    )


def filter_between(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """A number inside a range."""
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, "number", min_distinct=4)])
    if t is None:
        return None
    n = _pick(rng, _cols(t, "number", min_distinct=4))
    out = _name_col(rng, t)
    if out is None or out.name == n.name or len(n.values) < 2:
        return None
    lo, hi = sorted(rng.sample(n.values[:10], 2))
    if lo == hi:
        return None
    tw, ow, nw = plural(t.words), out.words, n.words
    return Candidate(
        "filter_between",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(n.name)} BETWEEN {lit(lo)} AND {lit(hi)}",
        [
            f"Which {tw} have a {nw} between {lo} and {hi}? Give their {ow}.",
            f"List the {ow} of {tw} whose {nw} is from {lo} to {hi}.",
            f"Show the {ow} of every {t.words} with {nw} in the range {lo} to {hi}.",
        ],
        [t.name],
        [*col_names(out), n.name],
    )


def filter_or(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """Either of two conditions on different columns."""
    t = _pick(rng, [t for t in _tables(prof) if len(_cols(t, min_distinct=2)) >= 3])
    if t is None:
        return None
    a, b = rng.sample(_cols(t, min_distinct=2), 2)
    out = _name_col(rng, t)
    va, vb = _value(rng, a), _value(rng, b)
    if out is None or out.name in (a.name, b.name) or va is None or vb is None:
        return None
    tw, ow = plural(t.words), out.words
    if b.kind == "number":
        cond, said = f"{ident(b.name)} > {lit(vb)}", f"{b.words} above {vb}"
    else:
        cond, said = f"{ident(b.name)} = {lit(vb)}", f"{b.words} {vb}"
    return Candidate(
        "filter_or",
        f"SELECT {sel(out)} FROM {ident(t.name)} WHERE {ident(a.name)} = {lit(va)} OR {cond}",
        [
            f"Which {tw} have {a.words} {va} or {said}? Give their {ow}.",
            f"List the {ow} of {tw} whose {a.words} is {va} or that have {said}.",
            f"Show the {ow} of the {tw} with either {a.words} {va} or {said}.",
        ],
        [t.name],
        [*col_names(out), a.name, b.name],
    )


def filtered_aggregate(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """An aggregate of the rows that match a value."""
    t = _pick(
        rng, [t for t in _tables(prof) if _cols(t, "number", min_distinct=3) and _cols(t, "text", min_distinct=2)]
    )
    if t is None:
        return None
    n, where = _pick(rng, _cols(t, "number", min_distinct=3)), _pick(rng, _cols(t, "text", min_distinct=2))
    v = _value(rng, where)
    fn, w = rng.choice([("avg", "average"), ("sum", "total"), ("max", "largest"), ("min", "smallest")])
    tw, nw, ww = plural(t.words), n.words, where.words
    return Candidate(
        "filtered_aggregate",
        f"SELECT {fn}({ident(n.name)}) FROM {ident(t.name)} WHERE {ident(where.name)} = {lit(v)}",
        [
            f"What is the {w} {nw} of {tw} with {ww} {v}?",
            f"Among {tw} whose {ww} is {v}, what is the {w} {nw}?",
            f"Give the {w} {nw} for the {tw} with {ww} {v}.",
        ],
        [t.name],
        [n.name, where.name],
    )


def count_distinct(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """How many different values a column takes, overall or among matching rows."""
    t = _pick(rng, [t for t in _tables(prof) if _cols(t, min_distinct=2)])
    if t is None:
        return None
    c = _pick(rng, _cols(t, min_distinct=2))
    tw, cw = plural(t.words), c.words
    where = _pick(rng, [x for x in _cols(t, "text", min_distinct=2) if x.name != c.name])
    if where is not None and rng.random() < 0.6:
        v = _value(rng, where)
        return Candidate(
            "count_distinct",
            f"SELECT count(DISTINCT {ident(c.name)}) FROM {ident(t.name)} WHERE {ident(where.name)} = {lit(v)}",
            [
                f"How many different {plural(cw)} do {tw} with {where.words} {v} have?",
                f"Count the distinct {plural(cw)} among {tw} whose {where.words} is {v}.",
                f"For {tw} with {where.words} {v}, how many distinct {cw} values are there?",
            ],
            [t.name],
            [c.name, where.name],
        )
    return Candidate(
        "count_distinct",
        f"SELECT count(DISTINCT {ident(c.name)}) FROM {ident(t.name)}",
        [
            f"How many different {plural(cw)} do the {tw} have?",
            f"Count the distinct {plural(cw)} of {tw}.",
            f"How many distinct {cw} values appear among {tw}?",
        ],
        [t.name],
        [c.name],
    )


def join_project(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """A column from each side of a foreign key, for the child rows that match a value."""
    j = _join_named(rng, prof)
    if j is None:
        return None
    f, child, parent, name = j
    out = _pick(rng, [c for c in _cols(child, min_distinct=2)])
    if out is None:
        return None
    where = _pick(rng, [c for c in _cols(child, min_distinct=2) if c.name != out.name])
    cw, pw, nw, ow = child.words, parent.words, name.words, out.words
    sql = (
        f"SELECT {sel(out, 'T1')}, {sel(name, 'T2')} FROM {ident(child.name)} AS T1 JOIN "
        f"{ident(parent.name)} AS T2 ON T1.{ident(f.column)} = T2.{ident(f.ref_column)}"
    )
    if where is None:
        return Candidate(
            "join_project",
            sql,
            [
                f"Show the {ow} of every {cw} with the {nw} of its {pw}.",
                f"List each {cw}'s {ow} and its {pw}'s {nw}.",
                f"For every {cw}, give its {ow} and the {nw} of the {pw} it belongs to.",
            ],
            [child.name, parent.name],
            [*col_names(out), *col_names(name)],
        )
    v = _value(rng, where)
    if where.kind == "number":
        cond, said = f"T1.{ident(where.name)} > {lit(v)}", f"{where.words} above {v}"
    else:
        cond, said = f"T1.{ident(where.name)} = {lit(v)}", f"{where.words} {v}"
    return Candidate(
        "join_project",
        f"{sql} WHERE {cond}",
        [
            f"For {plural(cw)} with {said}, show their {ow} and the {nw} of their {pw}.",
            f"List the {ow} and the {pw} {nw} of every {cw} with {said}.",
            f"Which {plural(cw)} have {said}? Give each one's {ow} and its {pw}'s {nw}.",
        ],
        [child.name, parent.name],
        [*col_names(out), *col_names(name), where.name],
    )


def join_aggregate(rng: random.Random, prof: DatabaseProfile) -> Candidate | None:
    """An aggregate over the child rows of the parents that match a value."""
    j = _join(rng, prof)
    if j is None:
        return None
    f, child, parent = j
    n = _pick(rng, [c for c in _cols(child, "number", min_distinct=3)])
    where = _pick(rng, _cols(parent, "text", min_distinct=2))
    if n is None or where is None:
        return None
    v = _value(rng, where)
    fn, w = rng.choice([("avg", "average"), ("sum", "total"), ("max", "largest"), ("min", "smallest"), ("count", "")])
    cw, pw, nw, ww = child.words, parent.words, n.words, where.words
    on = f"FROM {ident(child.name)} AS T1 JOIN {ident(parent.name)} AS T2 ON T1.{ident(f.column)} = T2.{ident(f.ref_column)}"
    if fn == "count":
        return Candidate(
            "join_count",
            f"SELECT count(*) {on} WHERE T2.{ident(where.name)} = {lit(v)}",
            [
                f"How many {plural(cw)} belong to a {pw} with {ww} {v}?",
                f"Count the {plural(cw)} whose {pw} has {ww} {v}.",
                f"What is the number of {plural(cw)} of {plural(pw)} with {ww} {v}?",
            ],
            [child.name, parent.name],
            [where.name],
        )
    return Candidate(
        "join_aggregate",
        f"SELECT {fn}(T1.{ident(n.name)}) {on} WHERE T2.{ident(where.name)} = {lit(v)}",
        [
            f"What is the {w} {nw} of {plural(cw)} whose {pw} has {ww} {v}?",
            f"For the {plural(pw)} with {ww} {v}, give the {w} {nw} of their {plural(cw)}.",
            f"Among {plural(cw)} of a {pw} with {ww} {v}, what is the {w} {nw}?",
        ],
        [child.name, parent.name],
        [n.name, where.name],
    )


SHAPES: dict[str, Shape] = {
    "list": list_column,
    "count": count_rows,
    "filter_text": filter_text,
    "filter_not": filter_not,
    "filter_number": filter_number,
    "filter_date": filter_date,
    "count_where": count_where,
    "distinct": distinct_values,
    "aggregate": aggregate,
    "null_check": null_check,
    "like": like_filter,
    "order_limit": order_limit,
    "order_date": order_date,
    "date_extreme": date_extreme,
    "group_most": group_most,
    "group_count": group_count,
    "group_having": group_having,
    "nested_avg": above_average,
    "join_filter": join_filter,
    "join_most": join_most,
    "join_group": join_count_group,
    "not_in": not_in,
    "set_op": set_operation,
    "filter_and": filter_and,
    "project_two": project_two,
    "group_aggregate": group_aggregate,
    "filter_between": filter_between,
    "filter_or": filter_or,
    "filtered_aggregate": filtered_aggregate,
    "count_distinct": count_distinct,
    "join_project": join_project,
    "join_aggregate": join_aggregate,
}
"""Every shape, by name: synthesis draws from them in turn."""


BATCH = 32
"""Candidates executed per round (split over the judge's workers)."""


def check(cand: Candidate, ok: bool, error_type: str | None, n: int, truncated: bool, rows: list[Any]) -> str | None:
    """Why an executed candidate is rejected (None: kept). ``rows``: the first rows of its result."""
    if not ok:
        return "timeout" if error_type == "timeout" else "sql_error"
    if truncated:
        return "too_many_rows"
    if n == 0 and not cand.allow_empty:
        return "empty"
    if n and all(v is None for r in rows for v in r):
        return "all_null"
    return None


@dataclass
class Drawn:
    """One verified candidate: its SQL ran read-only and returned a result no earlier one returned."""

    cand: Candidate
    rows: int
    """Rows of its result."""
    preview: tuple[list[str], list[Any]]
    """Its columns and first rows."""


@dataclass
class DrawStats:
    draws: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def draw_verified(
    prof: DatabaseProfile,
    limit: int,
    rng: random.Random,
    judge: Any,
    stats: DrawStats | None = None,
    distinct_results: bool = True,
) -> Iterator[Drawn]:
    """Candidates from every shape in turn (at most ``limit`` draws), each executed through ``judge``
    (:meth:`sqltune.judge.Judge.run`: read-only, a hard timeout, a row cap) and yielded when it runs, returns
    rows (unless its question is about absence), not only NULLs, and (``distinct_results``) a result no
    candidate yielded before returned; without it, every distinct SQL that passes. Lazy: the caller stops when it has enough, and what it draws from ``rng`` in between keeps its
    place in the sequence (a seed gives the same pairs). ``stats`` counts draws and rejections by reason."""
    stats = stats if stats is not None else DrawStats()
    seen_sql: set[str] = set()
    seen_result: set[str] = set()
    names = list(SHAPES)
    columns = [c.name for t in prof.tables for c in t.columns]
    while stats.draws < limit:
        batch: list[Candidate] = []
        while len(batch) < BATCH and stats.draws < limit:
            shape = names[stats.draws % len(names)]
            stats.draws += 1
            cand = SHAPES[shape](rng, prof)
            if cand is not None and prof.engine != "sqlite":  # the shapes write SQLite: the target's dialect
                try:
                    cand = replace(cand, sql=transpile(cand.sql, prof.engine, columns, lower=False))
                except ExecutionError:
                    stats.rejected["transpile_failed"] += 1
                    continue
            if cand is None:
                stats.rejected["shape_not_applicable"] += 1
            elif cand.sql in seen_sql:
                stats.rejected["duplicate_sql"] += 1
            else:
                seen_sql.add(cand.sql)
                batch.append(cand)
        if not batch:
            return
        half = (len(batch) + 1) // 2
        groups = [g for g in (batch[:half], batch[half:]) if g]
        results = judge.run([(prof.path, [c.sql for c in g]) for g in groups], keep_rows=50, max_bytes=200_000)
        for g, res in zip(groups, results, strict=True):
            if res.db_error:
                raise DataError(f"{prof.path}: {res.db_error}")
            for i, cand in enumerate(g):
                first = res.results[i][1] if res.results else []
                why = check(cand, res.ok[i], res.error_types[i], res.rows[i], res.truncated[i], first)
                if why is None and distinct_results and res.keys[i] in seen_result:
                    why = "same_result"
                if why is not None:
                    stats.rejected[why] += 1
                    continue
                seen_result.add(res.keys[i])
                yield Drawn(cand, res.rows[i], (res.results[i][0], first[:5]) if res.results else ([], []))


__all__ = [
    "SHAPES",
    "Candidate",
    "DrawStats",
    "Drawn",
    "NameColumns",
    "check",
    "col_names",
    "draw_verified",
    "ident",
    "lit",
    "person_name",
    "plural",
    "sel",
]
