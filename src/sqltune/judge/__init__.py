"""The one judge of SQL: scoring (:mod:`.score`, pure), comparison modes (:mod:`.compare`),
Spider hardness (:mod:`.hardness`), exact match (:mod:`.match`), the gold cache
(:mod:`.cache`), what runs in the workers (:mod:`.worker`) and the :class:`Judge` that owns
them (:mod:`.judge`). Eval, self-consistency voting and gold verification all go through it."""

from sqltune.db.execute import ROW_CAP
from sqltune.judge.judge import Judge
from sqltune.judge.score import ERROR_TYPES, Verdict, majority_vote, result_key
from sqltune.judge.worker import RunResult, ScoreJob, ScoreResult

__all__ = [
    "ERROR_TYPES",
    "ROW_CAP",
    "Judge",
    "RunResult",
    "ScoreJob",
    "ScoreResult",
    "Verdict",
    "majority_vote",
    "result_key",
]
