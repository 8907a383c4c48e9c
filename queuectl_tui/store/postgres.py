"""PostgreSQL: URLs and their redaction, the reconnecting peewee database, session settings,
and LISTEN/NOTIFY."""

from __future__ import annotations

import math
import os
import socket
import threading
from typing import TYPE_CHECKING

from peewee import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    SqliteDatabase,
)

from queuectl_tui import paths
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store.models import (
    database,
)

if TYPE_CHECKING:
    from pathlib import Path

    from peewee import _ConnectionState


from queuectl_tui.store.dialects import BUSY_TIMEOUT_MS
from queuectl_tui.store.transactions import _begin

PG_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT = 5  # seconds: an unreachable server is one clear line, not a long hang
IDLE_IN_TRANSACTION_MS = 30_000


#: libpq connection parameters whose value is a secret; a URL can carry any of them in its query
#: string (``?password=…``). Those that name files (passfile, sslkey) are shown.
SECRET_PARAMS = frozenset({"password", "sslpassword", "oauth_client_secret"})


def redact(url: str) -> str:
    """The URL with every secret it carries replaced by ``***``: the password before the host,
    each secret parameter of the query string (``SECRET_PARAMS``, their names percent-encoded
    or not) and any parameter whose value itself holds one (``dbname=host=h password=p``, a
    URL). What messages, screens and ``status --json`` show: the one place that hides them."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("://", 1)[0] + "://…"
    changed = password is not None
    if changed:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}")
    if parts.query:
        fields = []
        for field in parts.query.split("&"):
            key, eq, value = field.partition("=")
            if eq and (
                unquote(key.replace("+", " ")).strip().lower() in SECRET_PARAMS
                or _holds_secret(unquote(value.replace("+", " ")))
            ):
                field, changed = f"{key}=***", True
            fields.append(field)
        parts = parts._replace(query="&".join(fields))
    return urlunsplit(parts) if changed else url


def _holds_secret(value: str) -> bool:
    """A parameter's value that is a connection string of its own with a secret in it."""
    if paths.is_url(value.strip()):
        return redact(value.strip()) != value.strip()
    import re

    return (
        re.search(r"(?i)(?:^|[\s'\"])(?:" + "|".join(sorted(SECRET_PARAMS)) + r")\s*=", value)
        is not None
    )


def parse_pg_url(url: str) -> tuple[str, dict]:
    """(database name, connect parameters) from ``postgresql://user:password@host:port/db?…``
    (query parameters such as ``sslmode`` or ``options`` are passed on to libpq)."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    shown = redact(url)
    usage = "expected postgresql://user:password@host:port/dbname or a file path"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"bad database URL {shown} ({exc}); {usage}") from None
    if parts.scheme.lower() not in PG_SCHEMES:
        raise InvalidInput(f"unsupported database URL {shown}; {usage}")
    name = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not name or "/" in name:
        raise InvalidInput(f"database URL {shown} names no database; {usage}")
    params: dict = {
        "host": unquote(parts.hostname) if parts.hostname else None,
        "port": port,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }
    params = {key: value for key, value in params.items() if value is not None}
    params.update(parse_qsl(parts.query))
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    # Who each session is, in pg_stat_activity (the host and PID of a worker, say).
    params.setdefault("application_name", f"queuectl-tui {socket.gethostname()} {os.getpid()}")
    return name, params


def _postgres_class():
    # peewee's own wrapper of driver errors: at module level in peewee, absent from its stubs
    from peewee import PostgresqlDatabase, __exception_wrapper__  # type: ignore[attr-defined]

    class Postgres(PostgresqlDatabase):
        """A connection the server dropped (restart, failover, idle kill) is replaced at the
        next statement outside a transaction; inside one, the error reaches the caller, whose
        transaction is then rolled back as a whole (a worker retries it)."""

        url = display = ""
        liveness: dict | None = None  # what keep_alive asks of new connections
        _state: _ConnectionState  # peewee's, absent from its stubs: this thread's connection

        def _initialize_connection(self, conn):
            # As SQLite's busy timeout: a lock held too long fails the waiter with a message
            # (a worker retries) instead of hanging. A session idle inside a transaction (a
            # frozen process: SIGSTOP, a paused VM) is ended by the server, which releases
            # the write lock for everyone else; that process's transaction is rolled back.
            # A worker's heartbeat session also bounds each statement (see keep_alive).
            limit = _session.statement_ms
            with conn.cursor() as cursor:
                cursor.execute(
                    f"SET lock_timeout = {BUSY_TIMEOUT_MS}; "
                    f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}"
                    + (f"; SET statement_timeout = {limit}" if limit else "")
                )
            _session.liveness = self.liveness

        def cursor(self, named_cursor=None):
            state = self._state
            if not state.closed and state.conn.closed and not self.in_transaction():
                state.reset()  # the dead connection: nothing to close, connect anew
            return super().cursor(named_cursor)

        def rollback(self):
            if not self._state.closed and self._state.conn.closed:
                return  # the server already ended the transaction with the connection
            super().rollback()

        # A statement on a connection that is gone raises InterfaceError, which is not a
        # DatabaseError: made one, so that every caller's handling of a database failure
        # (a worker's retry, the CLI's one line) covers a lost server too.
        def _execute_cursor(self, *args, **kwargs):
            try:
                # peewee's (private), absent from its stubs
                return super()._execute_cursor(*args, **kwargs)  # type: ignore[misc]
            except InterfaceError as exc:
                raise OperationalError(f"connection lost ({exc})") from None

        def begin(self, *args, **kwargs):
            first, _begin.first = _begin.first, None
            try:
                if first is None:
                    return super().begin(*args, **kwargs)
                with __exception_wrapper__:  # BEGIN and the write lock in one round trip
                    cursor = self.cursor()
                    cursor.execute("BEGIN; " + first[0], first[1])
                    _begin.result = cursor.fetchone()
            except InterfaceError as exc:
                raise OperationalError(f"connection lost ({exc})") from None

        def commit(self):
            try:
                return super().commit()
            except InterfaceError as exc:
                raise OperationalError(f"connection lost ({exc})") from None

    return Postgres


# A worker on another host than the server must notice a silent network (packets dropped, no
# reset) well within its lease: other hosts take its job back once the lease has passed
# without a heartbeat. Left to the kernel, a statement sent into a cut waits for TCP's
# retransmissions, which back off exponentially (a 7.5 s cut held a heartbeat for 14.5 s),
# and an idle connection notices nothing for two hours. keep_alive bounds both by the lease.


class _Session(threading.local):
    statement_ms = 0  # this thread's statement_timeout (the heartbeat's session), 0: none
    liveness: dict | None = None  # the keep_alive parameters its connection was opened with


_session = _Session()


def unanswered_limit(lease: float) -> float:
    """How long a worker waits for the network to answer a statement before it gives the
    connection up and opens another: a sixth of the lease, from half a second to ten."""
    return min(max(lease / 6, 0.5), 10.0)


def keep_alive(lease: float, *, bound_statements: bool = False) -> None:
    """PostgreSQL: give up, within ``unanswered_limit(lease)``, a connection the network no
    longer carries, and reopen it (libpq's ``tcp_user_timeout``, TCP keepalives and
    ``connect_timeout``, as parameters of every connection opened from now on, except those
    the URL sets itself). The calling thread's own connection is reopened with them unless a
    transaction is open; ``bound_statements`` also sets its ``statement_timeout`` to that
    limit, so that a statement stuck on the server side (a lock) fails as fast. No-op on
    SQLite."""
    obj = database.obj
    if obj is None or isinstance(obj, SqliteDatabase):
        return
    limit = unanswered_limit(lease)
    wanted = {
        "tcp_user_timeout": round(limit * 1000),
        "keepalives": 1,
        "keepalives_idle": max(1, round(limit)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "connect_timeout": max(2, math.ceil(limit)),
    }
    from urllib.parse import parse_qsl, urlsplit

    own = {key for key, _ in parse_qsl(urlsplit(obj.url).query)}
    wanted = {key: value for key, value in wanted.items() if key not in own}
    if obj.liveness != wanted:
        obj.connect_params.update(wanted)
        obj.liveness = wanted
    statement_ms = round(limit * 1000) if bound_statements else 0
    if _session.liveness != wanted or _session.statement_ms != statement_ms:
        _session.statement_ms = statement_ms
        if not database.is_closed() and not database.in_transaction():
            database.close()  # opened anew, with them, at the next statement


def describe_target(target: Path | str | None = None) -> str:
    """Which database, as a person may see it: a file path, or the URL without its password."""
    if target is None:
        obj = database.obj
        return getattr(obj, "display", "") or str(getattr(obj, "database", "?"))
    return redact(target) if paths.is_url(target) else str(target)


def notify_channel(schema: str) -> str:
    """The NOTIFY channel of a schema's queue, as the trigger function above names it: within
    PostgreSQL's 63 bytes of an identifier, the schema's name when it fits, else its md5 (the
    prefixes differ, so the two forms never meet)."""
    raw = schema.encode()
    if len(raw) <= 54:
        return "queuectl." + schema
    import hashlib  # rarely needed: its import costs a command's start-up a few ms

    return "queuectl#" + hashlib.md5(raw, usedforsecurity=False).hexdigest()


class _Listener(threading.local):
    conn = None  # the connection LISTEN was sent on (a reconnect needs it again)
    #: the queue's schema: its notifications come on its own channel, naming it
    schema: str | None = None
    count = 0  # notifications about this queue from other sessions seen so far
    control = 0  # those of them about queues, meta or settings (pause, resume, limits)
    #: a watcher wants every job change (a worker: only work, cancels and control)
    watching = True


_listener = _Listener()


def listen_for_work() -> None:
    """This thread listens as a worker: for work, cancels and control changes, not for the
    claims and ends of other workers (see ``_listen``)."""
    _listener.watching = False


def _listen():
    """This thread's PostgreSQL connection, listening to the queue's channel. A watcher (any
    listener but a worker) also holds the watchers' lock shared for its session: job updates
    that make no work notify only while someone holds it (queuectl_notify_changed). A claim
    holds it exclusive for a moment: a few tries, then none (the watcher then wakes at its
    fallback polls rather than at every end)."""
    conn = database.connection()
    if _listener.conn is not conn:
        _listener.schema = database.execute_sql("SELECT current_schema()").fetchone()[0]
        from psycopg2 import sql  # a channel is an identifier: quoted by the driver

        channel = sql.Identifier(notify_channel(_listener.schema))
        cursor = database.cursor()
        cursor.execute(sql.SQL("LISTEN {}").format(channel))
        if _listener.watching:
            from queuectl_tui.store.pgsql import WATCH

            for _ in range(3):
                cursor.execute(WATCH)
                if cursor.fetchone()[0]:
                    break
        _listener.conn = conn
    return conn


def _drain(conn) -> None:
    try:
        conn.poll()
    except Exception as exc:  # psycopg2's own error, not wrapped by peewee: a lost connection
        raise OperationalError(f"connection lost ({' '.join(str(exc).split())})") from None
    me, schema = conn.get_backend_pid(), _listener.schema
    assert schema is not None  # _listen() read it
    for note in conn.notifies:
        if note.pid != me and note.payload == schema:
            _listener.count += 1
        elif note.pid != me and note.payload == schema + " control":
            _listener.count += 1
            _listener.control += 1
    conn.notifies.clear()


def wait_change(timeout: float) -> None:
    """PostgreSQL: sleep until another session commits a change to jobs, queues or settings
    (a NOTIFY from the triggers below) or ``timeout`` seconds pass. Callers compare
    ``change_token()`` before and after."""
    import select

    try:
        conn = _listen()
        seen = _listener.count
        _drain(conn)  # read along with earlier statements' results: no need to sleep
        if _listener.count == seen:
            select.select([conn], [], [], max(0.0, timeout))
            _drain(conn)
    except Exception as exc:  # a dropped connection: reported by the next real statement
        if not isinstance(exc, (DatabaseError, InterfaceError, OSError, ValueError)):
            raise
        import time

        time.sleep(min(timeout, 0.05))
