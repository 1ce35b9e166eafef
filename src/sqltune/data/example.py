"""The one example record every source becomes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    """One text-to-SQL example.

    Fields (also the keys of every record sqltune writes):
      id          unique within the dataset (Spider: ``<split>-<index>``; BIRD: question_id)
      db_id       database name
      db_path     path of the SQLite file (or a SQLAlchemy URL)
      question    natural-language question
      evidence    external knowledge (BIRD's ``evidence``); may be empty
      sql         gold SQL
      difficulty  the benchmark's label (BIRD: simple/moderate/challenging); may be empty
      source      where it came from: spider, bird, pairs, demo
    """

    id: str
    db_id: str
    db_path: str
    question: str
    evidence: str
    sql: str
    difficulty: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Skip:
    """An input example that was not written, and why."""

    id: str
    db_id: str
    reason: str
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
