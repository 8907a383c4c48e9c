"""What differs between the backends, as one object per backend, chosen by the open database.

The rest of the package never asks which backend it runs on: it reads a capability
(``dialect().listens``) or calls a method (``dialect().minute_bucket(expr)``), as peewee's
``Database`` subclasses and huey's ``SqlStorage`` do. Statements are named, in ``.sql`` files
(store/sql/__init__.py): each backend has its text for each name (``queries``), run as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from peewee import (
    ColumnBase,
    DatabaseError,
    InterfaceError,
    OperationalError,
    SqliteDatabase,
    fn,
)

from queuectl_tui.store.models import database
from queuectl_tui.store.queries import (
    POSTGRES_BULK,
    POSTGRES_QUERIES,
    SQLITE_BULK,
    SQLITE_QUERIES,
)

BUSY_TIMEOUT_MS = 15_000

#: A statement's parameters: in order, or by name (``%(key)s`` markers).
Params = Sequence[Any] | Mapping[str, Any]


class Cursor(Protocol):
    """What callers read of a driver's cursor (sqlite3's or psycopg2's) after a statement."""

    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ...) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Dialect:
    """The SQLite dialect, and the interface of every dialect."""

    name = "sqlite"
    #: Another session's commit wakes a waiter (LISTEN/NOTIFY), rather than a poll of the file.
    listens = False
    #: Workers on other hosts may take a job back: a running job whose worker lost its lease
    #: is ended (on one host, a live worker's job is never taken back for a late heartbeat).
    many_hosts = False
    #: A writer frozen inside its transaction keeps the writers' lock (an flock on this host)
    #: until it dies: recovery kills it. PostgreSQL ends an idle transaction itself.
    frees_frozen_writers = True
    #: A worker's batch of ends, and its batch of claims, are one statement each (functions
    #: on the server) rather than a few statements per job.
    batch_statements = False
    #: The bulk enqueue writes its checked lines to a spool in the form of the server's COPY
    #: and moves them into job with one COPY (``copy_in``), staging them only to find out why
    #: that failed; else it stages every line in a TEMP table of this connection, checked
    #: there and moved in by one INSERT ... SELECT.
    copies = False
    #: This backend's statements, by name (store/sql: the portable ones and its own).
    queries = SQLITE_QUERIES
    #: The bulk enqueue's statements, by name (``sql/<backend>/enqueue.sql``).
    bulk = SQLITE_BULK

    def execute(self, name: str, params: Params = ()) -> Cursor:
        """Run the named statement of this backend (``queries``) as it is: not prepared, for a
        statement run now and then (PostgreSQL plans it with the values it is given)."""
        return database.execute_sql(self.queries[name], params)

    def run(self, name: str, params: Params = ()) -> Cursor:
        """Run the named per-job statement of this backend (``queries``); PostgreSQL prepares
        it once per connection."""
        return database.execute_sql(self.queries[name], params)

    def copy_in(self, sql: str, source: Any) -> None:
        """Run ``COPY ... FROM STDIN`` (``sql``) with the text ``source.read(size)`` gives:
        PostgreSQL's alone (``copies``)."""
        raise NotImplementedError("COPY is PostgreSQL's")

    def enqueue_prelude(self, digest: str, data: str) -> list[tuple[str, str]]:
        """An enqueue's first step under the write lock: store its environment row (unless
        stored) and read the settings' rows (key, JSON value). Two statements here, where a
        statement is no round trip."""
        params = {"digest": digest, "data": data}
        database.execute_sql(self.bulk["environment_insert"], params)
        return database.execute_sql(self.bulk["settings_rows"]).fetchall()

    def minute_bucket(self, expr: ColumnBase) -> ColumnBase:
        """Whole minutes of a float expression: a cast truncates on SQLite."""
        return expr.cast("INTEGER")

    def id_list(self, ids: Sequence[int]) -> Any:
        """A list of ids as one parameter: a JSON array (read with json_each)."""
        import json

        return json.dumps(list(ids))

    def next_due_params(self, queues: list[str] | None) -> Any:
        """The parameters of ``next_due`` for a worker's queues (none: every queue): ?2 is a
        JSON list (?1 unused)."""
        import json

        return (None, json.dumps(queues) if queues else None)

    def begin_snapshot(self, *, read_only: bool = False) -> None:
        """Make the open transaction's reads see one state: SQLite's deferred transaction keeps
        the snapshot of its first read already."""


class PostgresDialect(Dialect):
    name = "postgres"
    listens = True
    many_hosts = True
    frees_frozen_writers = False
    batch_statements = True
    copies = True
    queries = POSTGRES_QUERIES
    bulk = POSTGRES_BULK

    def enqueue_prelude(self, digest: str, data: str) -> list[tuple[str, str]]:
        """One statement, one round trip (a data-modifying WITH)."""
        return database.execute_sql(
            self.bulk["environment_and_settings"], {"digest": digest, "data": data}
        ).fetchall()

    def __init__(self) -> None:
        # connection -> {sql: (name, keys), or None where the server refused to prepare it}
        self._prepared: WeakKeyDictionary[Any, dict[str, tuple[str, list[str]] | None]] = (
            WeakKeyDictionary()
        )

    def run(self, name: str, params: Params = ()) -> Cursor:
        """Each per-job statement is prepared once per connection and EXECUTEd after that: the
        server planned the claim anew each time, which cost as much as running it (0.3-0.4 ms).
        A statement the server cannot prepare runs as it is."""
        return self._execute(self.queries[name], params)

    def _execute(self, sql: str, params: Params) -> Cursor:
        connection = database.connection()
        known = self._prepared.setdefault(connection, {})
        if sql not in known:
            known[sql] = _prepare(sql, len(known))
        found = known[sql]
        if found is None:
            return database.execute_sql(sql, params)
        name, keys = found
        # keys: the statement names its markers, so its parameters are a mapping
        values = [params[key] for key in keys] if keys else list(params)  # type: ignore[call-overload]
        return database.execute_sql(_EXECUTE[len(values)].replace("NAME", name), values)

    def copy_in(self, sql: str, source: Any) -> None:
        # peewee's wrapper of driver errors (a taken id: IntegrityError), absent from its stubs
        from peewee import __exception_wrapper__  # type: ignore[attr-defined]

        try:
            with __exception_wrapper__:
                database.cursor().copy_expert(sql, source, size=_COPY_READ)
        except InterfaceError as exc:  # as every other statement's (store/postgres.py)
            raise OperationalError(f"connection lost ({exc})") from None

    def minute_bucket(self, expr: ColumnBase) -> ColumnBase:
        """Whole minutes: a cast rounds on PostgreSQL, FLOOR truncates."""
        return fn.FLOOR(expr)

    def id_list(self, ids: Sequence[int]) -> Any:
        """A list of ids as one parameter: an array (``= ANY(%s)``)."""
        return list(ids)

    def next_due_params(self, queues: list[str] | None) -> Any:
        return {"queues": queues or None}

    def begin_snapshot(self, *, read_only: bool = False) -> None:
        """REPEATABLE READ: otherwise each statement sees a moment of its own."""
        database.execute_sql(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" + (" READ ONLY" if read_only else "")
        )


def _prepare(sql: str, number: int) -> tuple[str, list[str]] | None:
    """PREPARE ``sql`` as queuectl_hot_N: its %s or %(key)s markers become $1, $2...; returns
    the name and the keys in order (empty for positional markers), or None if refused. A
    prepared statement outlives the transaction it was made in, even a rolled-back one; a
    refusal is undone by a savepoint so that it never aborts the caller's transaction."""
    keys: list[str] = []
    positions = 0

    def marker(match: re.Match[str]) -> str:
        nonlocal positions
        key = match.group(1)
        if key is None:
            positions += 1
            return f"${positions}"
        if key not in keys:
            keys.append(key)
        return f"${keys.index(key) + 1}"

    body = re.sub(r"%(?:\((\w+)\))?s", marker, sql)
    name = f"queuectl_hot_{number}"
    inside = database.in_transaction()
    try:
        if inside:
            database.execute_sql("SAVEPOINT queuectl_prepare")
        database.execute_sql(_PREPARE.replace("NAME", name) + body)
        if inside:
            database.execute_sql("RELEASE SAVEPOINT queuectl_prepare")
    except DatabaseError:
        if inside:
            database.execute_sql("ROLLBACK TO SAVEPOINT queuectl_prepare")
        return None
    return name, keys


_COPY_READ = 1 << 16  # characters of a COPY's text per read() (and per message to the server)
_PREPARE = "PREPARE NAME AS "
_EXECUTE = ["EXECUTE NAME"] + ["EXECUTE NAME (" + ", ".join(["%s"] * n) + ")" for n in range(1, 40)]

SQLITE = Dialect()
POSTGRES = PostgresDialect()
_chosen: tuple[object, Dialect] = (None, SQLITE)


def dialect() -> Dialect:
    """The dialect of the open database (found once per opened database)."""
    global _chosen
    obj = database.obj
    if _chosen[0] is not obj:
        _chosen = (obj, SQLITE if isinstance(obj, SqliteDatabase) else POSTGRES)
    return _chosen[1]


def is_sqlite() -> bool:
    """For the store's own modules: the open database is SQLite."""
    return dialect() is SQLITE
