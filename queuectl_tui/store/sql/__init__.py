"""Named statements, per backend: ``<backend>/queries.sql`` (the hot path), ``schema.sql`` (the
tables, indexes, triggers and rollup fills of a new database) and ``upgrades.sql`` (what
upgrading an older one runs besides).

A statement starts at a ``-- name: NAME`` line, followed by its description (``--`` lines);
its text is the lines that follow up to the next name, joined by single spaces, without the
closing semicolon (``--`` lines among them are comments, left out). A block may hold several
statements, separated by semicolons: PostgreSQL runs such a block in one round trip, SQLite
one statement at a time (``statements``). Read once per file, with open() beside this file
(no importlib.resources: nothing more to import at start-up).
"""

from __future__ import annotations

import os
import sqlite3

_HERE = os.path.dirname(os.path.abspath(__file__))


def load(dialect: str, file: str = "queries") -> dict[str, str]:
    """{name: statement} of ``dialect``'s ``file``.sql, in the file's order."""
    with open(os.path.join(_HERE, dialect, file + ".sql"), encoding="utf-8") as opened:
        text = opened.read()
    found: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("-- name:"):
            lines = found.setdefault(line[len("-- name:"):].strip(), [])
        elif line and not line.startswith("--") and lines is not None:
            lines.append(line)
    return {name: " ".join(body).removesuffix(";") for name, body in found.items()}


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
