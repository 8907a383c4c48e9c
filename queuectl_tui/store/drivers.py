"""The PostgreSQL drivers, kept out of a process that opens no server.

peewee imports the PostgreSQL drivers at its own import whenever they are installed (psycopg2:
~25 ms of a command's start); marking them absent before that makes peewee skip them. Nothing
here imports anything: it must run first.
"""

import sys

DRIVERS = ("psycopg2", "psycopg")


def skip_server_drivers() -> None:
    """Let peewee find no PostgreSQL driver (a process that opens a file only)."""
    for driver in DRIVERS:
        sys.modules.setdefault(driver, None)  # type: ignore[arg-type]  # None: import fails
