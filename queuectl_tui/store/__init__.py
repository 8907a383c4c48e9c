"""The store: the only package that knows SQL or the backend (SQLite or PostgreSQL).

``models`` holds the tables, ``schema`` their creation and upgrades, ``dialects`` what differs
between the backends (one object per backend), ``sqlite`` and ``postgres`` each backend's own
machinery, ``transactions`` the write transaction, ``connection`` opening, closing and the
change signals, and ``drivers`` what a process that opens no server need not import.

The names the rest of the package uses are re-exported here, each imported at its first use:
``drivers`` must run before peewee is imported, so importing this package imports nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peewee import DatabaseError, OperationalError

    from queuectl_tui.store.connection import (
        change_token,
        close_db,
        control_token,
        db_path,
        describe_db_error,
        jobs_token,
        listen_for_work,
        logs_dir,
        open_db,
        preload,
    )
    from queuectl_tui.store.dialects import BUSY_TIMEOUT_MS, Dialect, dialect, is_sqlite
    from queuectl_tui.store.postgres import (
        describe_target,
        keep_alive,
        notify_channel,
        parse_pg_url,
        redact,
        unanswered_limit,
        wait_change,
    )
    from queuectl_tui.store.schema import (
        LAST_WORKER_ID,
        PRUNING,
        SCHEMA_VERSION,
        UPGRADES,
        migrate,
        schema_version,
    )
    from queuectl_tui.store.sqlite import lock_holders
    from queuectl_tui.store.transactions import (
        after_commit,
        fold,
        write_transaction,
    )

_HOMES = {
    "DatabaseError": "peewee",
    "OperationalError": "peewee",
    "change_token": "connection",
    "close_db": "connection",
    "control_token": "connection",
    "db_path": "connection",
    "describe_db_error": "connection",
    "jobs_token": "connection",
    "listen_for_work": "connection",
    "logs_dir": "connection",
    "open_db": "connection",
    "preload": "connection",
    "BUSY_TIMEOUT_MS": "dialects",
    "Dialect": "dialects",
    "dialect": "dialects",
    "is_sqlite": "dialects",
    "describe_target": "postgres",
    "keep_alive": "postgres",
    "notify_channel": "postgres",
    "parse_pg_url": "postgres",
    "redact": "postgres",
    "unanswered_limit": "postgres",
    "wait_change": "postgres",
    "LAST_WORKER_ID": "schema",
    "PRUNING": "schema",
    "SCHEMA_VERSION": "schema",
    "UPGRADES": "schema",
    "migrate": "schema",
    "schema_version": "schema",
    "lock_holders": "sqlite",
    "after_commit": "transactions",
    "fold": "transactions",
    "write_transaction": "transactions",
}

__all__ = [  # the names _HOMES places
    "BUSY_TIMEOUT_MS",
    "DatabaseError",
    "Dialect",
    "LAST_WORKER_ID",
    "OperationalError",
    "PRUNING",
    "SCHEMA_VERSION",
    "UPGRADES",
    "after_commit",
    "change_token",
    "close_db",
    "control_token",
    "db_path",
    "describe_db_error",
    "describe_target",
    "dialect",
    "fold",
    "is_sqlite",
    "jobs_token",
    "keep_alive",
    "listen_for_work",
    "lock_holders",
    "logs_dir",
    "migrate",
    "notify_channel",
    "open_db",
    "parse_pg_url",
    "preload",
    "redact",
    "schema_version",
    "unanswered_limit",
    "wait_change",
    "write_transaction",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(home if home == "peewee" else f"{__name__}.{home}")
    value = globals()[name] = getattr(module, name)
    return value
