"""Question phrasing in many independent forms: the same question written as a command, a question, a fragment,
a casual message or a polite request, with and without units, so that no surface form ties to one SQL shape.

Template and synthesized questions come in a few fixed phrasings per shape: a model trained on them learns that
"How many ... ?" means one query and "List the ..." another. :func:`forms` rewrites any English question into the
other forms by its leading words alone (no word list of a database, no model), keeping every value and number it
names, so the pair's SQL still answers it:

* **imperative**: "Which customers are based in London?" -> "Show me which customers are based in London."
* **interrogative**: "List the names of products under 10 dollars." -> "What are the names of products under 10
  dollars?"
* **elliptic**: "What is the unit price of Webcam?" -> "unit price of Webcam?"
* **informal**: lower case, contractions, no full stop, "pls": "what's the unit price of Webcam"
* **polite**: "Could you tell me what the unit price of Webcam is?"
* **units**: "10 dollars" -> "$10" or "10 bucks", "70000" -> "70k" (the number the SQL compares is unchanged).

A form that would not read (no rule fits the question's first words) is not made; :func:`diversify` adds up to
``k`` new forms per example, none equal (after normalisation) to a question already there.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

T = TypeVar("T")

FORMS = ("imperative", "interrogative", "elliptic", "informal", "polite")

_WS = re.compile(r"\s+")


def normalise(q: str) -> str:
    """What two phrasings share when they differ only in case, spacing and punctuation."""
    return _WS.sub(" ", re.sub(r"[^\w\s]", " ", q.lower())).strip()


def _body(q: str) -> str:
    return q.strip().rstrip("?.! ").strip()


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s  # keeps "USA", "UK" at the start


_BE_FIRST = re.compile(r"^(what|who|which)\s+(is|are|was|were)\s+(.+)$", re.I)
_WH = re.compile(r"^(how many|how much|what|which|who|when|where)\b\s*(.*)$", re.I)
_IMP = re.compile(r"^(list|show|give|find|name|count|tell me|get|return|display)\b(?:\s+me)?\s*(.*)$", re.I)


def _indirect(q: str) -> str | None:
    """The question as an indirect one ("what the price of X is"), or None when it is not a wh-question."""
    b = _body(q)
    m = _BE_FIRST.match(b)
    if m and re.match(r"^(the|a|an)\b", m.group(3), re.I):
        return f"{m.group(1).lower()} {m.group(3)} {m.group(2).lower()}"
    if _WH.match(b):
        if re.match(r"^(how many|how much|what|which|who)\b(\s+\w+)*?\s+(do|does|did)\b", b, re.I):
            return None  # "which category does X belong to" would need its auxiliary moved
        return _lower_first(b)
    return None


def imperative(q: str) -> str | None:
    b = _body(q)
    if _IMP.match(b):
        return None
    m = re.match(r"^how many (.+?) (?:are there|do we have|exist|are in the database)$", b, re.I)
    if m:
        return f"Count the {m.group(1)}."
    ind = _indirect(q)
    if ind is None:
        return None
    verb = "Show me" if ind.startswith("which") else "Tell me"
    return f"{verb} {ind}."


def interrogative(q: str) -> str | None:
    b = _body(q)
    m = _IMP.match(b)
    if not m or not m.group(2):
        return None
    verb, rest = m.group(1).lower(), m.group(2)
    if verb == "count":
        rest = re.sub(r"^(the|all)\s+", "", rest, flags=re.I)
        return f"How many {rest} are there?"
    if verb in ("list", "show", "display", "get", "return", "find", "name"):
        return f"What are {rest}?" if re.match(r"^(the|all)\b", rest, re.I) else f"Which {rest}?"
    return f"Can you {verb} me {rest}?"


def elliptic(q: str) -> str | None:
    b = _body(q)
    m = re.match(r"^how many (.+?) (?:are there|do we have|exist)$", b, re.I)
    if m:
        return f"number of {m.group(1)}?"
    m = re.match(r"^(?:what|which) (?:is|are) the (.+)$", b, re.I)
    if m:
        return f"{m.group(1)}?"
    m = _IMP.match(b)
    if m and m.group(2) and m.group(1).lower() != "count":
        rest = re.sub(r"^(the|all)\s+", "", m.group(2), flags=re.I)
        return f"{rest}, please"
    m = re.match(r"^which (\w+) (?:are|is) (.+)$", b, re.I)
    if m:
        return f"{m.group(1)} {m.group(2)}?"
    return None


_CONTRACT = [
    (re.compile(r"\bwhat is\b", re.I), "what's"),
    (re.compile(r"\bwho is\b", re.I), "who's"),
    (re.compile(r"\bdo not\b", re.I), "don't"),
    (re.compile(r"\bdoes not\b", re.I), "doesn't"),
    (re.compile(r"\bhave not\b", re.I), "haven't"),
]


def informal(q: str, rng: random.Random) -> str | None:
    b = _lower_first(_body(q))
    for pat, rep in _CONTRACT:
        b = pat.sub(rep, b)
    b = re.sub(r"^(give me|show me|list|tell me)\s+the\b", r"\1", b)
    tail = rng.choice(["", "", "?", " pls", " please", " thx"])
    head = rng.choice(["", "", "", "hey, ", "quick one: "])
    out = f"{head}{b}{tail}"
    return out if normalise(out) != normalise(q) or out != q else None


def polite(q: str, rng: random.Random) -> str | None:
    ind = _indirect(q)
    if ind is not None:
        return rng.choice(["Could you tell me {}?", "I'd like to know {}.", "Do you know {}?"]).format(ind)
    m = _IMP.match(_body(q))
    if m and m.group(2):
        return f"Could you {m.group(1).lower()} {'me ' if m.group(1).lower() in ('show', 'give') else ''}{m.group(2)}?"
    return None


def units(q: str, rng: random.Random) -> str:
    """Money and thousands written another way; the numbers stay what the SQL compares."""
    q = re.sub(
        r"\b(\d+(?:\.\d+)?) dollars\b",
        lambda m: rng.choice([f"${m.group(1)}", f"{m.group(1)} bucks", m.group(1)]),
        q,
    )
    return re.sub(
        r"\b([1-9]\d?)000\b(?![-/]\d)",
        lambda m: f"{m.group(1)}k" if rng.random() < 0.5 and not re.search(r"\b(19|20)$", m.group(1)) else m.group(0),
        q,
    )


def forms(question: str, rng: random.Random) -> list[str]:
    """Every form :data:`FORMS` makes of ``question`` (those that read), each with units written at random."""
    makers: list[Callable[[], str | None]] = [
        lambda: imperative(question),
        lambda: interrogative(question),
        lambda: elliptic(question),
        lambda: informal(question, rng),
        lambda: polite(question, rng),
    ]
    out: list[str] = []
    for make in makers:
        f = make()
        if f:
            out.append(units(f, rng))
    return out


def diversify(questions: Iterable[str], k: int, seed: int = 0, taken: Iterable[str] = ()) -> list[list[str]]:
    """Up to ``k`` new forms for each question, in a seeded random order of :data:`FORMS`; none normalises to a
    question given or ``taken`` (a test split's), nor to another new form."""
    qs = list(questions)
    rng = random.Random(seed)
    seen = {normalise(q) for q in [*qs, *taken]}
    out: list[list[str]] = []
    for q in qs:
        cands = forms(q, rng)
        rng.shuffle(cands)
        kept: list[str] = []
        for c in cands:
            n = normalise(c)
            if len(kept) >= k or n in seen:
                continue
            seen.add(n)
            kept.append(c)
        out.append(kept)
    return out


def add_forms(rows: list[T], k: int, seed: int = 0, taken: Iterable[str] = ()) -> list[T]:
    """``rows`` (examples or pair dicts, each with an ``id`` and a ``question``) followed by up to ``k`` more
    phrasings of each in other forms (:func:`diversify`), each a copy with its SQL, ``id`` ``<id>-f<j>``."""
    if k <= 0 or not rows:
        return rows

    def field(r: Any, name: str) -> str:
        return str(r[name] if isinstance(r, dict) else getattr(r, name))

    def copy(r: Any, j: int, q: str) -> Any:
        new_id = f"{field(r, 'id')}-f{j}"
        return {**r, "id": new_id, "question": q} if isinstance(r, dict) else replace(r, id=new_id, question=q)

    extra = diversify([field(r, "question") for r in rows], k, seed, taken)
    return rows + [copy(r, j, q) for r, qs in zip(rows, extra, strict=True) for j, q in enumerate(qs)]


__all__ = ["FORMS", "add_forms", "diversify", "forms", "normalise"]
