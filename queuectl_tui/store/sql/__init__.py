"""Named statements: the portable ones beside this file, each backend's own in ``sqlite/`` and
``postgres/``.

A statement starts at a ``-- name: NAME`` line, followed by its description (``--`` lines);
its text is the lines that follow up to the next name, joined by single spaces, without the
closing semicolon. The files of statements are ``FILES``, by concern; a name is defined once
per directory.

A backend's statements are the portable files' (``sql/*.sql``), then its own files'
(``sql/<backend>/*.sql``): a name of its own replaces the portable one, which is how a
statement that must differ (``INDEXED BY``, a cast, ``IS NOT DISTINCT FROM``) is written.
Portable text uses psycopg2's markers (``%s``, ``%(key)s``; no literal ``%``): PostgreSQL
reads it as written, and SQLite's form (``?``, ``:key``) is made here, once, at load. A
backend's own file uses its own markers. Nothing rewrites a statement when it runs.

The schema is apart: ``<backend>/schema.sql`` (the tables, indexes, triggers and rollup fills
of a new database) and ``<backend>/upgrades.sql`` (what upgrading an older one runs besides),
read by ``load(dialect, file)``. There, ``--`` lines among a block's lines are comments, left
out, and a block may hold several statements separated by semicolons: PostgreSQL runs such a
block in one round trip, SQLite one statement at a time (``statements``).

Each file is read once, with open() beside this file (no importlib.resources: nothing more to
import at start-up), split on its name lines with str.split (a regular expression over every
line cost more than reading the files).
"""

from __future__ import annotations

import os
import re
import sqlite3
from functools import cache

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The files of named statements, in each directory (one that is not there is skipped).
FILES = ("queries.sql", "engine.sql", "metrics.sql", "retention.sql")
_NAMED_MARKER = re.compile(r"%\((\w+)\)s")


def load(dialect: str, file: str | None = None) -> dict[str, str]:
    """{name: statement} of ``dialect``: the portable statements, each replaced by the
    dialect's own of that name where it has one; or, given a ``file`` (``schema``,
    ``upgrades``), that file of the dialect's alone, in the file's order."""
    if file is not None:
        return _read(os.path.join(_HERE, dialect), (file + ".sql",))
    portable = _read(_HERE)
    if dialect == "sqlite":
        portable = {name: _sqlite_markers(text) for name, text in portable.items()}
    return portable | _read(os.path.join(_HERE, dialect))


def _sqlite_markers(text: str) -> str:
    """%s -> ?, %(key)s -> :key (sqlite3's positional and named markers)."""
    text = text.replace("%s", "?")
    return _NAMED_MARKER.sub(r":\1", text) if "%(" in text else text


@cache
def _read(directory: str, files: tuple[str, ...] = FILES) -> dict[str, str]:
    """{name: statement} of the ``files`` in ``directory``, in their order (the portable ones
    are read once for both backends)."""
    found: dict[str, str] = {}
    for file_name in files:
        path = os.path.join(directory, file_name)
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            continue
        for part in ("\n" + text).split("\n-- name:")[1:]:
            name, _, block = part.partition("\n")
            name = name.strip()
            if name in found:
                raise ValueError(f"{path}: statement {name!r} is defined twice")
            lines = [line.strip() for line in block.splitlines()]
            found[name] = " ".join(
                line for line in lines if line and not line.startswith("--")
            ).removesuffix(";")
    return found


def statements(block: str) -> list[str]:
    """The statements of a block, each whole (a trigger's body keeps its semicolons; a
    semicolon inside a quoted string splits nothing): SQLite runs one per call."""
    found: list[str] = []
    pending = ""
    for piece in block.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            found.append(pending.strip().removesuffix(";"))
            pending = ""
    if pending.strip(" ;"):
        found.append(pending.strip().removesuffix(";"))
    return found
