"""A fresh PostgreSQL schema per benchmark run (the bench scripts' ``--pg URL``): created
empty, selected through the URL's ``options=-csearch_path=…``, dropped afterwards."""

from __future__ import annotations

import os
from urllib.parse import quote


def _admin(pg: str):
    import psycopg2

    conn = psycopg2.connect(pg)
    conn.autocommit = True
    return conn


def fresh(pg: str, name: str) -> tuple[str, str]:
    """(schema, URL selecting it): ``name`` plus this process's id, emptied if it existed."""
    schema = f"{name}_{os.getpid()}"
    conn = _admin(pg)
    try:
        conn.cursor().execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
    finally:
        conn.close()
    sep = "&" if "?" in pg else "?"
    return schema, f"{pg}{sep}options={quote(f'-csearch_path={schema}')}"


def count(pg: str, schema: str, where: str = "true") -> int:
    conn = _admin(pg)
    try:
        cursor = conn.cursor()
        cursor.execute(f'SELECT count(*) FROM "{schema}".job WHERE {where}')
        return cursor.fetchone()[0]
    finally:
        conn.close()


def drop(pg: str, schema: str) -> None:
    conn = _admin(pg)
    try:
        conn.cursor().execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        conn.close()
