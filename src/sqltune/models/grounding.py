"""Value grounding while decoding: a text literal the model compares to a column with ``=``, ``!=``, ``<>`` or
``IN (...)`` can only spell one of the values that column holds.

A small model copies the question's words into its SQL (``WHERE status = 'waiting'`` for "orders still waiting to
go out", ``department = 'Company'``): the query runs and returns nothing, and no later choice among its answers
can mend that. Grounding masks, at each decoding step, the tokens that would take such a literal off every value
of its column, so the model chooses among the values the database holds (``'pending'``), by its own
probabilities.

* **Which values**: a :class:`Grounding` maps (table, column), in lower case, to every distinct value of that
  column; only columns whose every distinct value is known (the value index's closed columns,
  :meth:`sqltune.linking.values.ValueIndex.closed_values`) are grounded, so a value that exists is never masked.
* **Which column**: the identifier before the operator; a qualifier is read through the aliases the query so far
  gives (``FROM products AS T1``); an unqualified column takes the values of the tables the query so far names
  that have it grounded (every table's, before its FROM), and none when none of them has: another table's values
  would only mislead.
* **Never a dead end**: a literal the model opened with text no value starts with (a token that carries the
  quote and letters) is left alone, and so is a ``LIKE`` pattern; numbers, dates and high-cardinality columns are
  not grounded.
* **Where**: the hf backend's batched generation (a ``LogitsProcessor``) and its continuous batcher apply the same
  :class:`ValueGuide`; backends that generate elsewhere (openai, llamacpp, vllm) do not ground and say so in their
  ``info()``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

QUOTE = "'"

_IDENT = r"(?:\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][\w$]*)"
_COMPARE = re.compile(rf"(?:({_IDENT})\s*\.\s*)?({_IDENT})\s*(?:=|!=|<>)\s*$", re.S)
_IN_LIST = re.compile(
    rf"(?:({_IDENT})\s*\.\s*)?({_IDENT})\s+(?:NOT\s+)?IN\s*\(\s*(?:'(?:[^']|'')*'\s*,\s*)*$", re.S | re.I
)
_TABLE_REF = re.compile(rf"\b(?:FROM|JOIN)\s+({_IDENT})(?:\s+(?:AS\s+)?({_IDENT}))?", re.I)
_FROM_LIST = re.compile(rf",\s*({_IDENT})(?:\s+(?:AS\s+)?({_IDENT}))?")
_NOT_ALIAS = frozenset(
    [
        "where",
        "join",
        "on",
        "inner",
        "left",
        "right",
        "full",
        "cross",
        "natural",
        "group",
        "order",
        "having",
        "limit",
        "union",
        "intersect",
        "except",
        "as",
        "using",
        "select",
    ]
)
_START = re.compile(r"(SELECT|WITH)\b", re.I)


def _bare(name: str) -> str:
    return name[1:-1] if name[:1] in '"`[' else name


@dataclass(frozen=True, eq=False)
class Grounding:
    """The values decoding may compare a column to: (table, column) in lower case -> all of its distinct values.
    Equal by identity: a database's grounding is built once and its guides are cached by it."""

    values: Mapping[tuple[str, str], tuple[str, ...]]
    by_column: dict[str, set[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by: dict[str, set[str]] = {}
        for table, column in self.values:
            by.setdefault(column, set()).add(table)
        object.__setattr__(self, "by_column", by)

    def column_values(self, qualifier: str | None, column: str, sql_before: str) -> frozenset[str] | None:
        """The values ``qualifier.column`` may take, as SQL writes them between quotes (a quote doubled), where
        ``sql_before`` is the query up to the literal; None when the column is not grounded (unknown, or not
        every value known)."""
        column = _bare(column).lower()
        tables = self.by_column.get(column)
        if not tables:
            return None
        aliases: dict[str, str] = {}
        mentioned: set[str] = set()
        for m in [*_TABLE_REF.finditer(sql_before), *_FROM_LIST.finditer(sql_before)]:
            table = _bare(m.group(1)).lower()
            mentioned.add(table)
            if m.group(2) and _bare(m.group(2)).lower() not in _NOT_ALIAS:
                aliases[_bare(m.group(2)).lower()] = table
        if qualifier:
            q = _bare(qualifier).lower()
            owner = aliases.get(q, q)
            if owner not in tables:
                return None  # an alias not defined yet, or a table without the column: nothing to ground by
            chosen = {owner}
        elif mentioned:
            chosen = tables & mentioned
            if not chosen:
                return None  # none of the query's tables has it grounded (another table's values would mislead)
        else:
            chosen = tables
        out: set[str] = set()
        for t in chosen:
            out.update(v.replace(QUOTE, QUOTE * 2) for v in self.values[(t, column)])
        return frozenset(out) if out else None


def sql_state(text: str) -> tuple[str, int | None, int | None] | None:
    """The SQL an answer has written so far, where the single-quoted literal it ends inside opened (None: it
    ends outside one), and where the literal its last character closed opened (None: it did not close one: that
    quote may yet be the first of a doubled one). None when the answer is not writing SQL now: before or after
    its fenced block, or prose (an answer without a fence is SQL only when it starts with SELECT or WITH, so a
    chain of thought's words are never read as SQL)."""
    fences = text.count("```")
    if fences:
        if fences % 2 == 0:
            return None
        head = text.rfind("```")
        nl = text.find("\n", head)
        if nl < 0:
            return None  # still writing the fence's language tag
        sql = text[nl + 1 :]
    else:
        if not _START.match(text.lstrip()):
            return None
        sql = text.lstrip()
    opened: int | None = None
    closed: int | None = None
    i, n = 0, len(sql)
    while i < n:
        if sql[i] == QUOTE:
            if opened is None:
                opened, closed = i, None
            elif i + 1 < n and sql[i + 1] == QUOTE:
                i += 1  # a doubled quote inside the literal
            else:
                opened, closed = None, opened
                if i + 1 < n:
                    closed = None
        elif opened is None:
            closed = None
        i += 1
    return sql, opened, closed


class TokenTable:
    """Every token's text as it reads inside a longer text (decoded after an anchor token, so a SentencePiece
    token's leading space is kept), with the tokens that hold a quote listed apart. Built once per tokenizer."""

    _cache: dict[int, TokenTable] = {}
    _lock = threading.Lock()

    def __init__(self, tokenizer: Any):
        anchor = tokenizer.encode("a", add_special_tokens=False)[-1:]
        head = tokenizer.decode(anchor)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        size = len(tokenizer)
        texts = tokenizer.batch_decode([anchor + [i] for i in range(size)])
        self.by_text: dict[str, list[int]] = {}
        self.quoted: list[tuple[int, str]] = []
        for i, t in enumerate(texts):
            if i in special or not t.startswith(head):
                continue
            t = t[len(head) :]
            if not t or "\ufffd" in t:
                continue
            self.by_text.setdefault(t, []).append(i)
            if QUOTE in t:
                self.quoted.append((i, t))
        self.size = size

    @classmethod
    def of(cls, tokenizer: Any) -> TokenTable:
        key = id(tokenizer)
        with cls._lock:
            table = cls._cache.get(key)
            if table is None:
                table = cls._cache[key] = cls(tokenizer)
            return table


class ValueGuide:
    """For one database and one tokenizer: which tokens may come next after an answer's text so far."""

    def __init__(self, grounding: Grounding, table: TokenTable):
        self.grounding, self.table = grounding, table
        self.steps = 0
        """Decoding steps this guide restricted: what the answer's :class:`~sqltune.models.generation.Completion`
        reports as ``grounded``."""

    def allowed(self, text: str) -> tuple[set[int] | None, set[int] | None]:
        """``(allowed, banned)`` for the next token after ``text``: at most one is not None (None, None: any)."""
        state = sql_state(text)
        if state is None:
            return None, None
        sql, opened, closed = state
        if opened is None and closed is not None:
            # the last quote closed a literal that is no value, but may be the first of a doubled quote inside one
            values = self._values_before(sql[:closed])
            body = sql[closed + 1 : -1]
            if values is not None and body not in values and any(v.startswith(body + QUOTE) for v in values):
                opened = closed
        if opened is not None:
            values = self._values_before(sql[:opened])
            if values is None:
                return None, None
            ok = self._continuations(sql[opened + 1 :], values)
            if ok:
                self.steps += 1
            return (ok or None), None
        values = self._values_before(sql)
        if values is None:
            return None, None
        starts = _prefixes(values)
        bad: set[int] = set()
        for i, t in self.table.quoted:  # a token that opens the literal and spells its first letters
            j = t.find(QUOTE)
            if t[:j].strip():
                continue
            body = t[j + 1 :]
            if not (body in starts or _closes(body, values)):
                bad.add(i)
        if bad:
            self.steps += 1
        return None, (bad or None)

    def _continuations(self, prefix: str, values: frozenset[str]) -> set[int]:
        """The tokens that keep a literal written as far as ``prefix`` on its way to one of ``values``, or
        close it on one (and run on); none when ``prefix`` is already off every value."""
        left = [v[len(prefix) :] + QUOTE for v in values if v.startswith(prefix)]
        ok: set[int] = set()
        by_text = self.table.by_text
        for rest in left:
            for k in range(1, len(rest) + 1):
                ids = by_text.get(rest[:k])
                if ids:
                    ok.update(ids)
        if left:
            for i, t in self.table.quoted:  # a token that closes the literal and runs on
                if _closes(prefix + t, values):
                    ok.add(i)
        return ok

    def _values_before(self, sql: str) -> frozenset[str] | None:
        m = _COMPARE.search(sql) or _IN_LIST.search(sql)
        if not m:
            return None
        return self.grounding.column_values(m.group(1), m.group(2), sql)


def _closes(body: str, values: frozenset[str]) -> bool:
    """Whether ``body`` (a literal's text after its opening quote) holds its closing quote right after one of
    ``values`` (as SQL writes them); what follows the closing quote is free."""
    j = 0
    while True:
        j = body.find(QUOTE, j)
        if j < 0:
            return False
        if body[j + 1 : j + 2] == QUOTE:
            j += 2  # a doubled quote, or a closing quote followed by an opening one: read as doubled
            continue
        return body[:j] in values


_PREFIXES: dict[frozenset[str], frozenset[str]] = {}


def _prefixes(values: frozenset[str]) -> frozenset[str]:
    """Every prefix (the empty one included) of every value: cached per value set."""
    got = _PREFIXES.get(values)
    if got is None:
        if len(_PREFIXES) > 256:
            _PREFIXES.clear()
        got = _PREFIXES[values] = frozenset(v[:k] for v in values for k in range(len(v) + 1))
    return got


def mask_scores(scores: Any, allowed: set[int] | None, banned: set[int] | None) -> Any:
    """One row's scores (a 1-d tensor) with every token outside ``allowed`` (or inside ``banned``) at -inf;
    when that would leave no finite score (a sampler's top-p cut every allowed token), the allowed tokens
    get equal scores instead."""
    import torch

    if allowed is not None:
        keep = torch.tensor(sorted(i for i in allowed if i < scores.shape[-1]), dtype=torch.long, device=scores.device)
        if keep.numel() == 0:
            return scores
        out = torch.full_like(scores, float("-inf"))
        picked = scores.index_select(-1, keep)
        if not torch.isfinite(picked).any():
            picked = torch.zeros_like(picked)
        out[keep] = picked
        return out
    if banned is not None:
        drop = torch.tensor(sorted(i for i in banned if i < scores.shape[-1]), dtype=torch.long, device=scores.device)
        out = scores.clone()
        out[drop] = float("-inf")
        if not torch.isfinite(out).any():
            return scores
        return out
    return scores


class GroundingProcessor:
    """A transformers ``LogitsProcessor``: row ``r`` of a ``generate`` batch is guided by ``guides[r]`` (None:
    free); ``start`` is where the answers begin in ``input_ids``."""

    def __init__(self, tokenizer: Any, guides: list[ValueGuide | None], start: int):
        self.tokenizer, self.guides, self.start = tokenizer, guides, start

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for r, guide in enumerate(self.guides):
            if guide is None:
                continue
            text = self.tokenizer.decode(input_ids[r, self.start :].tolist(), skip_special_tokens=True)
            allowed, banned = guide.allowed(text)
            if allowed is not None or banned is not None:
                scores[r] = mask_scores(scores[r], allowed, banned)
        return scores


__all__ = ["Grounding", "GroundingProcessor", "TokenTable", "ValueGuide", "mask_scores", "sql_state"]
