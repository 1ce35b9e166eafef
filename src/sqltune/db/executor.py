"""What every engine's executor shares: the interface (:class:`Executor`), value normalisation, the fetch
under a row cap, and the one warning for a privileged role. The engines' modules import this one;
:mod:`sqltune.db.engine` opens them."""

from __future__ import annotations

import datetime as _dt
import decimal
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqltune.db.execute import QueryResult

T = TypeVar("T")

#: how long a session keeps opening again while other sessions of its role end it (pg_terminate_backend, KILL USER)
REOPEN_SECONDS = 15.0


class Executor(Protocol):
    """An open, read-only connection to one database."""

    engine: str

    def run(self, sql: str, timeout: float = 30.0, max_rows: int | None = None) -> QueryResult: ...

    def close(self) -> None: ...


_WARNED: set[str] = set()


def warn_privileged(target: str, role: str, problems: list[str], unguarded: str) -> None:
    """Say loudly, once per process and database, that a privileged role runs model SQL
    (``--allow-privileged-role``) and what is then no longer guaranteed."""
    if target in _WARNED:
        return
    _WARNED.add(target)
    logging.getLogger("sqltune.db").warning(
        "%s: running as %r, which can do more than read (%s), because --allow-privileged-role is set. Every "
        "statement still runs alone in a read-only transaction with its time limit; NOT guaranteed: %s.",
        target,
        role,
        "; ".join(problems),
        unguarded,
    )


def normalize_value(v: Any) -> Any:
    """One value as the judge compares it (see the module docstring)."""
    if v is None or isinstance(v, int | float | str):
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            return float(v)
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, _dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, _dt.date | _dt.time):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    return str(v)


def normalize_row(row: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    return tuple(normalize_value(v) for v in row)


def fetch(cursor: Any, max_rows: int | None) -> tuple[list[tuple[Any, ...]], bool]:
    """Up to ``max_rows`` rows of an executed DB-API cursor (normalised) and whether there were more."""
    if cursor.description is None:
        return [], False
    if max_rows is None:
        return [normalize_row(r) for r in cursor.fetchall()], False
    rows = cursor.fetchmany(max_rows + 1)
    return [normalize_row(r) for r in rows[:max_rows]], len(rows) > max_rows


def while_lost(step: Callable[[], T], lost: Callable[[BaseException], bool], seconds: float = REOPEN_SECONDS) -> T:
    """Run ``step`` (opening a session) again while its error says the connection was lost, backing off
    from 20 ms to 0.5 s, for up to ``seconds``; any other error, and the last one, is raised.

    A read-only role may end its own other sessions, so a hostile statement can cut off sessions that are
    opening at that moment, again and again for as long as it runs; a refusal (bad host, role, database)
    is never lost and raises at once."""
    deadline = time.monotonic() + seconds
    pause = 0.02
    while True:
        try:
            return step()
        except Exception as e:
            if not lost(e) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
