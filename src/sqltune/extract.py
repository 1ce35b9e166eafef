"""Getting one SQL query out of a model's text, whatever the model wrapped around it.

Rules, in order:

0. An answer that opens with a bare SQL statement closed by ``;`` is that statement (``cot=False``): what a
   model writes after it (a base model goes on with more questions, made-up results, other queries) is
   not read, so generation may stop at the ``;``.
1. Fenced blocks (```sql ... ```, or unlabelled ``` blocks that look like SQL): the **last** one
   when the output reasons first (chain of thought, ``cot=True``), the **first** one otherwise.
2. "The SQL query / statement ... is:" followed by the query.
3. Otherwise the text itself, starting at the first SELECT or WITH.

The candidate is then cut at the first statement boundary (``;``) so that several statements
yield the first SELECT/WITH; what follows the query is dropped: a line that reads like a
sentence, a comment line (``-- Result: ...``), or a new SELECT after a blank line. ``extract_sql`` never raises: it returns ``""`` when it finds nothing.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_LEAD = re.compile(
    r"(?:sql|query|statement|answer)[^\n:]{0,80}?(?:is|would be|:)\s*:?\s*\n?",
    re.I,
)
_START = re.compile(r"\b(SELECT\b|WITH\s+(?:RECURSIVE\s+)?[\w\"`\[\]]+\s*(?:\([^)]*\)\s*)?AS\s*\()", re.I)
_SQL_KEYWORD = re.compile(
    r"^\s*(SELECT|WITH|FROM|WHERE|GROUP|ORDER|HAVING|LIMIT|OFFSET|JOIN|INNER|LEFT|RIGHT|FULL|CROSS|NATURAL|ON|AND|OR|"
    r"NOT|UNION|INTERSECT|EXCEPT|AS|CASE|WHEN|THEN|ELSE|END|IN|EXISTS|BETWEEN|LIKE|IS|DESC|ASC|BY|USING)\b"
)
_SENTENCE = re.compile(r"^\s*[A-Z][a-z']*(\s+[a-z'][a-z',.]*){2,}")
_PROSE_START = re.compile(
    r"^\s*(This|The|Here|Note|Explanation|It|That|These|Which|Where this|In this|I |We |You |Let|Output|Result)\b"
)


def _split_first_statement(sql: str) -> str:
    """The text up to the first ``;`` that is outside quotes, brackets and comments."""
    quote: str | None = None
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if quote:
            if c == quote:
                if i + 1 < n and sql[i + 1] == quote:  # doubled quote inside a string
                    i += 1
                else:
                    quote = None
        elif c in "'\"`":
            quote = c
        elif c == "[":
            quote = "]"
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c == ";":
            return sql[:i]
        i += 1
    return sql


def _drop_trailing_prose(sql: str) -> str:
    """Cut at the first line that reads like a sentence, or at a new query after a blank line."""
    kept: list[str] = []
    blank = False
    for i, line in enumerate(sql.split("\n")):
        if i and not _SQL_KEYWORD.match(line) and (_PROSE_START.match(line) or _SENTENCE.match(line)):
            break
        if i and line.lstrip().startswith("--"):
            break  # "-- Result:", "-- Output:" and the like after the query
        if i and blank and _START.match(line.lstrip()):
            break
        blank = not line.strip()
        kept.append(line)
    return "\n".join(kept)


def _clean(candidate: str) -> str:
    m = _START.search(candidate)
    if not m:
        return ""
    sql = candidate[m.start() :]
    sql = _split_first_statement(sql)
    sql = _drop_trailing_prose(sql)
    sql = re.sub(r"\s*```.*\Z", "", sql, flags=re.S)  # a fence after an unclosed quote, and what follows it
    return sql.strip().rstrip(";").strip()


def _fenced(text: str) -> list[str]:
    blocks = []
    for m in _FENCE.finditer(text):
        lang, body = m.group(1).lower(), m.group(2)
        if lang in ("sql", "sqlite", "postgresql", "mysql", "") and _START.search(body):
            blocks.append(body)
    return blocks


def _bare_statement(text: str) -> str:
    """Rule 0: the statement ``text`` opens with, once a ``;`` outside quotes and comments closes it; else ""."""
    body = text.lstrip()
    if not _START.match(body) or len(_split_first_statement(body)) == len(body):
        return ""
    return _clean(body)


def sql_block_closed(text: str) -> bool:
    """Whether ``text`` already holds the query :func:`extract_sql` (``cot=False``) takes, whatever follows: a
    bare statement it opens with, closed by ``;`` (rule 0), or a closed fenced SQL block. What a model writes
    after it cannot change the extracted query, so generation may stop there."""
    if _bare_statement(text):
        return True
    for m in _FENCE.finditer(text):
        if not m.group(0).endswith("```"):
            return False  # an unclosed block runs to the end of the text
        lang, body = m.group(1).lower(), m.group(2)
        if lang in ("sql", "sqlite", "postgresql", "mysql", "") and _START.search(body) and _clean(body):
            return True
    return False


def extract_sql(text: str | None, cot: bool = False) -> str:
    """The SQL query in ``text`` (see the module docstring); ``""`` if there is none."""
    try:
        if not text:
            return ""
        bare = "" if cot else _bare_statement(text)
        if bare:
            return bare
        blocks = _fenced(text)
        if blocks:
            for body in reversed(blocks) if cot else blocks:
                sql = _clean(body)
                if sql:
                    return sql
        for m in _LEAD.finditer(text):
            tail = text[m.end() :]
            s = _START.search(tail)
            if s and not tail[: s.start()].strip():
                sql = _clean(tail)
                if sql:
                    return sql
        return _clean(text)
    except Exception:  # pragma: no cover - a guarantee, exercised by the property test
        return ""


def reasoning_before_sql(text: str) -> str:
    """The text before the last SQL block of a chain-of-thought answer ("" when there is none)."""
    cut = text.rfind("```sql")
    return text[:cut].strip() if cut > 0 else ""
