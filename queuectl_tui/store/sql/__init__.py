"""Named statements, one file per backend (``sqlite/queries.sql``, ``postgres/queries.sql``).

A statement starts at a ``-- name: NAME`` line, followed by its description (``--`` lines);
its text is the lines that follow up to the next name, joined by single spaces, without the
closing semicolon. Read once per backend, with open() beside this file (no importlib.resources:
nothing more to import at start-up).
"""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def load(dialect: str) -> dict[str, str]:
    """{name: statement} of ``dialect``'s queries.sql."""
    with open(os.path.join(_HERE, dialect, "queries.sql"), encoding="utf-8") as file:
        text = file.read()
    found: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("-- name:"):
            lines = found.setdefault(line[len("-- name:"):].strip(), [])
        elif line and not line.startswith("--") and lines is not None:
            lines.append(line)
    return {name: " ".join(body).removesuffix(";") for name, body in found.items()}
