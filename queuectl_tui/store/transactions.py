"""Write transactions: one per change, the write lock taken with its BEGIN, and calls run
after the commit."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from peewee import (
    DatabaseError,
)

from queuectl_tui.store.models import (
    database,
)

if TYPE_CHECKING:
    pass

from queuectl_tui.store.dialects import is_sqlite
from queuectl_tui.store.sqlite import _writers


@contextmanager
def write_transaction(*, hot: bool = False, fold_after: bool = True) -> Iterator[None]:
    """A transaction that takes the write lock up front.

    On SQLite, BEGIN IMMEDIATE: readers never upgrade to writers mid-transaction (which could
    fail with SQLITE_BUSY despite the busy timeout), so competing claimers simply queue.
    On PostgreSQL a transaction-scoped advisory lock per schema, taken in the round trip of
    BEGIN (store/pgsql.py): shared for the worker's hot path (``hot``: claims, finishes, hand-backs,
    which run side by side), exclusive for every other write, which so still sees a queue no
    claim is changing (a ``pause`` that has returned waited for the claims under way). A claim
    try-locks the limited queues it may take from itself (``queuectl_cycle``).

    After a disk-full or I/O error SQLite has already rolled the transaction back, and the
    ROLLBACK that follows fails with "no transaction is active"; that error would hide the one
    that matters, so the original is raised instead.

    What ``after_commit`` asked for runs once the outermost one has committed; on PostgreSQL,
    an outermost exclusive write then folds the sessions' count rows (pgsql.FOLD), unless
    ``fold_after`` is False (a write that leaves no count row, in a session that may never fold
    otherwise: its first fold would compile the function for nothing).
    """
    sqlite = is_sqlite()
    outermost = not database.in_transaction()
    atomic = database.atomic("IMMEDIATE") if sqlite else database.atomic()
    queued = _writers.enter() if sqlite else False
    committed = False
    if outermost and not sqlite:
        from queuectl_tui.store import pgsql

        _begin.first = (pgsql.WRITE_LOCK_SHARED if hot else pgsql.WRITE_LOCK, ())
    try:
        with atomic:
            yield
        committed = True
    except DatabaseError as exc:
        cause: BaseException | None = exc
        while cause is not None and "no transaction is active" in str(cause):
            cause = cause.__context__  # the failed ROLLBACK, raw then wrapped, then the reason
        if cause is not exc and isinstance(cause, (DatabaseError, sqlite3.Error)):
            raise cause from None
        raise
    finally:
        if queued:
            _writers.leave()
        if outermost:
            calls, _after.calls = _after.calls, []
            if not sqlite:
                _begin.first = _begin.result = None
    if outermost and committed:
        if not sqlite and not hot and fold_after:
            fold()
        for call in calls:
            try:
                call()
            except DatabaseError:
                pass  # its own steps are each whole; what is left is recovery's (see callers)


class _Begin(threading.local):
    """PostgreSQL: the statement sent with this thread's next BEGIN (one round trip), and its
    row."""

    first: tuple[str, object] | None = None
    result: tuple[Any, ...] | None = None


_begin = _Begin()


def fold() -> None:
    """PostgreSQL: fold the count and rollup rows of sessions not writing now into one row per
    key (``queuectl_fold``; one folder at a time, the others return at once). Best effort."""
    if database.obj is None or is_sqlite() or database.in_transaction():
        return
    from queuectl_tui.store.pgsql import FOLD

    try:
        database.execute_sql(FOLD)
    except DatabaseError:
        pass


class _AfterCommit(threading.local):
    calls: list[Callable[[], object]] = []


_after = _AfterCommit()


def after_commit(call: Callable[[], object]) -> None:
    """Run ``call()`` once the outermost write transaction of this thread has committed (never
    if it rolls back): follow-up work that must not hold that transaction's write lock, such
    as sending a long chain of dependents to the DLQ in short steps. A database error in it is
    not the committed change's: it is dropped, and the caller arranges for recovery to redo
    what it left (see ``engine.fail_dependents``)."""
    _after.calls = [*_after.calls, call]
