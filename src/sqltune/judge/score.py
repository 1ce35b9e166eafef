"""Scoring, pure: one candidate's result against the gold result, result identity, voting.

Nothing here executes SQL; :mod:`sqltune.judge.worker` runs the queries (read-only, killable)
and calls these functions, and so does everything that says whether SQL is "correct": the eval
stage, self-consistency voting, gold verification (and the CoT filter, the RL reward and
serve's repair loop), so that the word means one thing everywhere.

The row cap is one policy, :data:`ROW_CAP` (from :mod:`sqltune.db.execute`): every query that is
judged fetches at most that many rows, and a result that hits it is flagged ``truncated``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqltune.db.execute import ROW_CAP
from sqltune.judge.compare import diagnose_miss, normalize_rows, results_equal

# Why a candidate is not correct: every type a verdict can carry, in report order.
ERROR_TYPES = (
    "empty_prediction",  # no SQL in the model's output
    "missing_prediction",  # no prediction for this question at all
    "syntax_error",
    "unknown_table",
    "unknown_column",
    "runtime_error",
    "write_attempt",  # refused by the read-only engine
    "multiple_statements",
    "timeout",  # stopped at the time limit (or its worker killed)
    "wrong_column_count",
    "wrong_rows",
    "wrong_order",  # right rows, wrong order, where the gold orders its result
)

__all__ = ["ERROR_TYPES", "ROW_CAP", "Verdict", "score_candidate", "result_key", "majority_vote", "soft_f1"]


@dataclass(frozen=True)
class Verdict:
    """One candidate SQL judged against the gold result."""

    ok: bool
    """The candidate executed."""
    correct: bool
    """Its result equals the gold result in the comparison mode."""
    error: str | None = None
    """The engine's message when it did not execute."""
    error_type: str | None = None
    """One of ERROR_TYPES when not correct; None when correct."""
    soft_f1: float = 0.0
    """BIRD mini-dev's soft-F1 of the two results."""
    rows: int = 0
    truncated: bool = False
    """The result hit ROW_CAP."""
    key: str | None = None
    """result_key of its rows (for voting), when asked for."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed(error: str | None, error_type: str | None) -> Verdict:
    return Verdict(ok=False, correct=False, error=error, error_type=error_type)


def score_candidate(
    gold: dict[str, Any],
    rows: list[tuple[Any, ...]],
    columns: list[str],
    mode: str,
    order_matters: bool,
    truncated: bool = False,
    want_key: bool = False,
) -> Verdict:
    """The verdict on an executed candidate (``rows``, ``columns``) against ``gold``: a packed
    result with ``rows`` and ``columns`` (see :func:`sqltune.judge.worker.pack`)."""
    correct = results_equal(gold["rows"], rows, mode, order_matters, gold["columns"], columns)
    etype = None if correct else diagnose_miss(gold["rows"], rows, gold["columns"], columns, mode, order_matters)
    return Verdict(
        ok=True,
        correct=correct,
        error_type=etype,
        soft_f1=soft_f1(gold["rows"], rows),
        rows=len(rows),
        truncated=truncated,
        key=result_key(rows) if want_key else None,
    )


def result_key(rows: list[tuple[Any, ...]]) -> str:
    """Identity of a result as a bag of rows (for voting)."""
    norm = sorted(repr(r) for r in normalize_rows(rows))
    return hashlib.sha256("\n".join(norm).encode("utf-8", errors="surrogatepass")).hexdigest()


def majority_vote(keys: list[str | None]) -> int:
    """Index of the chosen candidate: the largest group of equal results; a candidate that failed
    to execute (key None) gets no vote; ties go to the group holding the earliest (greedy) candidate."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k is not None:
            groups.setdefault(k, []).append(i)
    if not groups:
        return 0
    best = max(groups.values(), key=lambda idxs: (len(idxs), -idxs[0]))
    return best[0]


def _row_match(pred_row: tuple[Any, ...], gold_row: tuple[Any, ...]) -> tuple[float, float, float]:
    total = len(gold_row) or 1
    matches = sum(1 for v in pred_row if v in gold_row)
    pred_only = len(pred_row) - matches
    gold_only = sum(1 for v in gold_row if v not in pred_row)
    return matches / total, pred_only / total, gold_only / total


def _same_row(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def soft_f1(gold: Sequence[Sequence[Any]], pred: Sequence[Sequence[Any]]) -> float:
    """BIRD mini-dev's soft-F1: rows de-duplicated and paired by position, cell overlap per row.

    The official script de-duplicates through a Python set, so its row pairing depends on hash
    order; here rows keep their first-appearance order, which makes the score deterministic.
    """
    if not gold and not pred:
        return 1.0
    if len(gold) == len(pred) and all(map(_same_row, gold, pred)):
        return 1.0  # identical rows pair with themselves: every cell matches
    g = list(dict.fromkeys(map(tuple, gold)))
    p = list(dict.fromkeys(map(tuple, pred)))
    tp = fp = fn = 0.0
    for i, grow in enumerate(g):
        if i >= len(p):
            fn += 1
            continue
        m, po, go = _row_match(p[i], grow)
        tp, fp, fn = tp + m, fp + po, fn + go
    fp += max(0, len(p) - len(g))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
