"""The LitGPT text-to-SQL article's two text metrics, exactly as it defines them (sqlparse)."""

from __future__ import annotations

import functools
import re

_WORD = re.compile(r"\b\w+\b")


@functools.lru_cache(maxsize=8192)
def _article_normal(sql: str) -> str:
    import sqlparse

    return sqlparse.format(sql, keyword_case="upper", strip_comments=True)


def token_match(gold: str, pred: str) -> float:
    """The LitGPT text-to-SQL article's token match score: the share of the gold query's distinct
    word tokens that the prediction also has, ``|set(pred) & set(gold)| / |set(gold)|``, with
    ``\\b\\w+\\b`` tokens of ``sqlparse.format(q, keyword_case="upper", strip_comments=True)``
    (case-sensitive, except keywords). 0.0 when the gold has no token."""
    ref = set(_WORD.findall(_article_normal(gold)))
    if not ref:
        return 0.0
    return len(set(_WORD.findall(_article_normal(pred))) & ref) / len(ref)


def exact_match(gold: str, pred: str) -> bool:
    """The article's exact match: the two queries are equal after that same sqlparse formatting
    (whitespace at the ends aside)."""
    return _article_normal(gold).strip() == _article_normal(pred).strip()
