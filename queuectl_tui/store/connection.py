"""Opening and closing the database, its logs directory, its errors in words, and the change
signals the faces and waiters watch."""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import TYPE_CHECKING

from peewee import (
    DatabaseError,
    InterfaceError,
    SqliteDatabase,
)

from queuectl_tui import paths
from queuectl_tui.errors import DatabaseUnusable
from queuectl_tui.store.models import (
    database,
)

if TYPE_CHECKING:
    from pathlib import Path


from queuectl_tui.store import sqlite
from queuectl_tui.store.dialects import BUSY_TIMEOUT_MS, is_sqlite
from queuectl_tui.store.queries import SQLITE_QUERIES
from queuectl_tui.store.schema import _ensure_schema
from queuectl_tui.store.sqlite import _WriterQueue


def open_db(
    path: Path | str | None = None, *, create: bool = True, progress: bool = False
) -> SqliteDatabase:
    """Connect the models to the SQLite file at ``path`` (the configured default if None), or
    to the PostgreSQL database a ``postgresql://`` URL names. ``progress``: an upgrade of the
    schema shows a progress bar on a terminal (a command; never a worker or the console)."""
    path = path if path is not None else paths.target(None)
    if paths.is_url(path):
        return _open_postgres(path, progress)
    path = paths.real(os.fspath(path))  # links resolved, as str(Path(path)) without pathlib
    if database.obj is not None and getattr(database.obj, "database", None) == path:
        return database.obj
    close_db()
    if not os.path.exists(path):
        if not create:
            raise DatabaseUnusable(f"no database at {path}")
        try:
            paths.ensure_private_dir(os.path.dirname(path) or ".")
            # Create the file ourselves so that it is 0600 from its first byte.
            os.close(paths.create_new_file(path))
        except OSError as exc:
            raise DatabaseUnusable(f"cannot create database {path}: {exc.strerror}") from None
    elif not os.path.isfile(path):
        # SQLite would open a directory (and fail later) or a device such as /dev/null (and
        # write a journal beside it): refused before anything is created next to it.
        raise DatabaseUnusable(
            f"{path} is not a database file (it is a "
            f"{'directory' if os.path.isdir(path) else 'special file'})"
        )
    db = SqliteDatabase(
        path,
        pragmas={  # journal_mode=wal is set once the file is known to be ours (below)
            "synchronous": "normal",
            "foreign_keys": 1,
            "busy_timeout": BUSY_TIMEOUT_MS,
        },
        timeout=BUSY_TIMEOUT_MS / 1000,
        check_same_thread=False,
    )
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        _ensure_schema(db, progress)
        # Persistent in the file, and a change to it: only now that the file is known to be a
        # queuectl database (a foreign or newer one is refused above, byte for byte untouched).
        db.execute_sql("PRAGMA journal_mode=wal")
    except DatabaseUnusable:
        close_db()
        raise
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        close_db()
        raise DatabaseUnusable(describe_db_error(exc, path)) from None
    try:  # only beside a database known to be ours; also one moved without its logs
        paths.ensure_private_dir(paths.logs_path(path))
        os.close(_WriterQueue.open(path))  # there from the start: a refused write changes nothing
    except OSError:
        pass  # a read-only place: reading works; a job says why it has no log
    sqlite.reopened()  # writers look for the lock file again (the schema's first write came before)
    return db


def _open_postgres(url: str, progress: bool = False):
    if database.obj is not None and getattr(database.obj, "url", None) == url:
        return database.obj
    from queuectl_tui.store.postgres import _postgres_class, parse_pg_url, redact

    close_db()
    name, params = parse_pg_url(url)
    try:
        import psycopg2  # noqa: F401  (peewee picks it up)
    except ImportError:
        raise DatabaseUnusable(
            "PostgreSQL needs its driver: pip install 'queuectl-tui[postgres]'"
        ) from None
    db = _postgres_class()(name, **params)
    db.url, db.display = url, redact(url)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        _ensure_schema(db, progress)
    except DatabaseUnusable:
        close_db()
        raise
    except (DatabaseError, InterfaceError) as exc:
        close_db()
        raise DatabaseUnusable(describe_db_error(exc, db.display)) from None
    try:  # this host's logs (a server has no directory beside it)
        paths.ensure_private_dir(paths.home() / "logs")
    except OSError:
        pass
    return db


def close_db() -> None:
    if database.obj is not None:
        if not database.obj.is_closed():
            database.obj.close()
        database.initialize(None)


def db_path() -> Path:
    from pathlib import Path

    return Path(database.obj.database)


def logs_dir() -> Path:
    """Where this database's job logs and worker journals are on this host (worked out once
    per database: a worker asks for every job)."""
    global _logs
    obj = database.obj
    key = (obj, obj.database, os.environ.get("QUEUECTL_HOME"))
    if _logs[0] != key:
        _logs = (key, paths.logs_dir(obj.url if getattr(obj, "url", None) else obj.database))
    return _logs[1]


_logs: tuple = (None, None)


def describe_db_error(exc: Exception, path: Path | str | None = None) -> str:
    """One line for a database failure a user can cause or meet (corrupt, locked, read-only)."""
    from queuectl_tui.store.postgres import SECRET_PARAMS, describe_target

    path = path or (describe_target() if database.obj is not None else "?")
    msg = str(exc).strip() or exc.__class__.__name__
    if paths.is_url(str(path)) or (
        database.obj is not None and not is_sqlite()
    ):  # PostgreSQL: libpq's lines as one
        msg = " ".join(msg.split())
        given = getattr(database.obj, "connect_params", {})
        for key in SECRET_PARAMS:  # libpq rarely echoes one, but never let it through
            if given.get(key):
                msg = msg.replace(str(given[key]), "***")
        if "could not connect" in msg or "failed:" in msg or "Connection refused" in msg:
            return f"cannot connect to database {path} ({msg})"
        if "lock timeout" in msg:
            return f"database {path} stayed locked by another session ({msg}); try again"
        if (
            "server closed the connection" in msg
            or "terminating connection" in msg
            or ("connection already closed" in msg)
        ):
            return f"lost the connection to database {path} ({msg}); try again"
        return f"database {path}: {msg}"
    if "not a database" in msg or "malformed" in msg:
        return f"database {path} is corrupt or not a queuectl database ({msg})"
    if "locked" in msg or "busy" in msg:
        return f"database {path} stayed locked by another process ({msg}); try again"
    if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
        return f"cannot write database {path} ({msg})"
    if "disk" in msg and "full" in msg:
        return f"disk full while writing database {path}"
    if "disk I/O error" in msg:
        return f"input/output error on database {path} (is the disk full or failing?)"
    return f"database {path}: {msg}"


def change_token() -> int | None:
    """Something that changes whenever another connection commits, or None if unknown.

    SQLite's data_version is read from shared memory: polling it every few milliseconds costs
    next to nothing, which lets idle workers react to new jobs at once without busy querying.
    PostgreSQL: how many notifications (see ``_install_triggers``) other sessions sent since
    this thread started listening; reading it is a non-blocking read of the socket.
    """
    if is_sqlite():
        return database.execute_sql("PRAGMA data_version").fetchone()[0]
    from queuectl_tui.store.postgres import _drain, _listen, _listener

    try:
        _drain(_listen())
    except (DatabaseError, InterfaceError):
        return None  # no signal now: callers treat it as "maybe changed"
    return _listener.count


class _JobsToken(threading.local):
    #: (connection, data_version) when ``token`` was read
    version: tuple[object, int | None] | None = None
    token: int | None = None


_jobs_token = _JobsToken()


def jobs_token() -> int | None:
    """Like ``change_token``, but one that moves only when jobs, queues or the pause of every
    queue changed, not at the workers' heartbeats (what shows jobs reads them again only
    then). SQLite: job_count.v's sum, read only when data_version moved since this thread's
    last look (data_version itself is read from shared memory). PostgreSQL: the change token
    (heartbeats send no notification there)."""
    if not is_sqlite():
        return change_token()
    version = change_token()
    kept, conn = _jobs_token, database.connection()
    if kept.version != (conn, version) or kept.token is None:
        kept.token = database.execute_sql(SQLITE_QUERIES["jobs_token"]).fetchone()[0]
        kept.version = (conn, version)
    return kept.token


def preload() -> None:
    """Import what a session of this backend imports at its first LISTEN and claim, before
    workers are forked from this process (``supervisor.run_forked``)."""
    if not is_sqlite():
        import psycopg2.sql  # noqa: F401

        import queuectl_tui.store.pgsql  # noqa: F401


def listen_for_work() -> None:
    """This thread is a worker's: on PostgreSQL it listens for work, cancels and control
    changes only, so other workers' claims and ends send it no notification (SQLite: nothing
    to say)."""
    if not is_sqlite():
        from queuectl_tui.store.postgres import listen_for_work

        listen_for_work()


def control_token(change: int | None = None) -> int | None:
    """Something that changes whenever another connection commits a change to queues, meta or
    settings (``pause`` among them), or None if unknown: what a worker holding claimed jobs
    watches before it starts one. SQLite: the change token (``change``, when just read). On
    PostgreSQL, jobs changed by other workers (every claim and finish) do not move it, so a
    draining worker does not read the pause flags before every job."""
    if is_sqlite():
        return change_token() if change is None else change
    from queuectl_tui.store.postgres import _drain, _listen, _listener

    try:
        _drain(_listen())
    except (DatabaseError, InterfaceError):
        return None
    return _listener.control
