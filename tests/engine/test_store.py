"""The store's statements and dialects: what the move into ``store/`` must not change."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest
from peewee import Model

from queuectl_tui.store import models, queries
from queuectl_tui.store.dialects import POSTGRES, SQLITE
from queuectl_tui.store.sql import load

#: sha256 (first 16 hex digits) of each hot-path statement as it was before the store held
#: them (engine.py and pgsql.py at cb82d2e; PostgreSQL's forms as engine._sql made them). A
#: changed text loses the claim's INDEXED BY hint or a prepared statement's plan: change a
#: digest here only with a benchmark (bench/run.py) of the new text.
RECORDED = {
    "claim": "c7d42d2970273e51",
    "finish_attempt": "38d34e236ee749c3",
    "finish_job": "090defb8b0b27008",
    "new_attempt": "e1c7d8c224cb2dd4",
    "next_number": "f7c407cb3efcf069",
    "postgres:finish_attempt": "9ffff59bc41ac56e",
    "postgres:finish_job": "61ffd462dd8dc751",
    "postgres:job_rows": "49a6cf60bec0c6ce",
    "postgres:new_attempt": "4eec3c7393cbb9c5",
    "postgres:next_due": "86eaa9679cfefb3e",
    "postgres:next_number": "9a2a5af2b14f81f0",
    "postgres:oldest_due": "00359870a8b1fd9d",
    "postgres:set_worker": "fa8f853098efdc67",
    "set_worker": "779ab9f0b6456c63",
    "sqlite:job_rows": "39a6b19bf2df847a",
    "sqlite:next_due": "650bf2a11654b3d2",
    "sqlite:oldest_due": "f66701c2552ec67e",
}

SHARED = ("next_number", "new_attempt", "finish_job", "finish_attempt", "set_worker")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_hot_path_statements_are_the_texts_measured_before_the_move():
    texts = {name: SQLITE.queries[name] for name in ("claim", *SHARED)}
    for dialect in (SQLITE, POSTGRES):
        for name in ("next_due", "oldest_due", "job_rows"):
            texts[f"{dialect.name}:{name}"] = dialect.queries[name]
    for name in SHARED:  # PostgreSQL's form, as it was made from SQLite's at each call
        texts[f"postgres:{name}"] = POSTGRES.queries[name]
    assert {name: digest(text) for name, text in texts.items()} == RECORDED


def markers(text: str) -> list[str]:
    """A statement's parameters: ?, ?N, :name, %s or %(name)s, in order."""
    return re.findall(r"\?\d*|(?<![:\w]):\w+|%\(\w+\)s|%s", text)


#: Every table's columns (a positional marker's column: what it is compared with or set to).
COLUMNS = {
    model._meta.table_name: set(model._meta.columns)
    for model in vars(models).values()
    if isinstance(model, type) and issubclass(model, Model) and model is not Model
}


def parameters(text: str) -> tuple[str, list[str]]:
    """What a caller passes the statement: ("named", its keys) for named markers (%(key)s,
    :key), else ("positional", the column each marker goes with, in order: the nearest column
    of the statement's tables written before it), so that two texts whose markers take their
    values in another order differ."""
    found = markers(text)
    named = [m.strip(":%()s") for m in found if m.startswith((":", "%("))]
    if named:
        assert len(named) == len(found), f"named and positional markers: {text}"
        return "named", sorted(set(named))
    assert not any(m[1:] for m in found if m.startswith("?")), f"numbered markers: {text}"
    tables = re.findall(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(\w+)", text)
    columns = set().union(*(COLUMNS.get(table, set()) for table in tables))
    subjects, words = [], []
    for token in re.findall(r"\?|%s|[A-Za-z_]\w*", text):
        if token in ("?", "%s"):
            subjects.append(next((w for w in reversed(words) if w in columns), ""))
        else:
            words.append(token)
    return "positional", subjects


def test_both_dialects_name_the_same_queries_with_the_same_parameters():
    """Each name is in both backends' statements (but for each backend's own), and takes the
    same parameters there: the same keys, or as many values in the same order (next_due's
    queues travel in another shape: ``Dialect.next_due_params``)."""
    own = queries.OWN
    assert SQLITE.queries.keys() - own["sqlite"] == POSTGRES.queries.keys() - own["postgres"]
    assert own["sqlite"] <= SQLITE.queries.keys() and own["postgres"] <= POSTGRES.queries.keys()
    for name in SQLITE.queries.keys() - own["sqlite"] - {"next_due", "claim"}:
        assert parameters(SQLITE.queries[name]) == parameters(POSTGRES.queries[name]), name
    assert set(markers(SQLITE.queries["next_due"])) == {"?2"}
    assert set(markers(POSTGRES.queries["next_due"])) == {"%(queues)s"}


def test_a_marker_out_of_order_is_seen():
    """The parity above compares the order of the values, not only their number."""
    assert parameters("UPDATE job SET state = ?, queue = ? WHERE seq = ?") != parameters(
        "UPDATE job SET queue = %s, state = %s WHERE seq = %s"
    )
    assert parameters("SELECT 1 FROM job WHERE queue = :queue") == parameters(
        "SELECT 1 FROM job WHERE queue = %(queue)s"
    )


def test_a_portable_statement_is_each_backends_with_its_markers(tmp_path, monkeypatch):
    """The portable files' text is PostgreSQL's as written and SQLite's with ? and :key; a
    backend's own file replaces a portable statement of the same name; a name twice in one
    directory is refused."""
    from queuectl_tui.store import sql

    (tmp_path / "sqlite").mkdir()
    (tmp_path / "postgres").mkdir()
    (tmp_path / "engine.sql").write_text(
        "-- name: one\n-- Why.\nSELECT seq FROM job\nWHERE queue = %(queue)s AND seq > %s;\n\n"
        "-- name: two\n-- Why.\nSELECT 2;\n"
    )
    (tmp_path / "sqlite" / "metrics.sql").write_text("-- name: two\n-- Its own.\nSELECT 3;\n")
    monkeypatch.setattr(sql, "_HERE", str(tmp_path))
    assert load("postgres") == {
        "one": "SELECT seq FROM job WHERE queue = %(queue)s AND seq > %s",
        "two": "SELECT 2",
    }
    assert load("sqlite") == {
        "one": "SELECT seq FROM job WHERE queue = :queue AND seq > ?",
        "two": "SELECT 3",
    }
    twice = tmp_path / "twice"
    (twice / "sqlite").mkdir(parents=True)
    for name in ("engine.sql", "metrics.sql"):
        (twice / "sqlite" / name).write_text("-- name: two\nSELECT 4;\n")
    monkeypatch.setattr(sql, "_HERE", str(twice))
    with pytest.raises(ValueError, match="'two' is defined twice"):
        load("sqlite")


def asked_names() -> set[str]:
    """The statement names the package's code asks for: ``dialect().execute("name")``,
    ``.run("name")``, ``.queries["name"]`` and ``SQLITE_QUERIES["name"]`` (the store's own)."""
    names = set()
    for path in (Path(__file__).parents[2] / "queuectl_tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "run")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.slice, ast.Constant)
                and (
                    isinstance(node.value, ast.Attribute)
                    and node.value.attr == "queries"
                    or isinstance(node.value, ast.Name)
                    and node.value.id in ("SQLITE_QUERIES", "POSTGRES_QUERIES")
                )
            ):
                names.add(node.slice.value)
    return names


def test_every_statement_the_code_asks_for_is_there_and_every_one_there_is_asked_for():
    asked = asked_names()
    assert len(asked) > 40
    for dialect in (SQLITE, POSTGRES):
        others = queries.OWN["postgres" if dialect is SQLITE else "sqlite"]
        assert asked - others - dialect.queries.keys() == set(), dialect.name
        assert dialect.queries.keys() - asked == set(), dialect.name


def test_the_statements_name_the_keys_their_modules_name():
    from queuectl_tui import retention
    from queuectl_tui.store import PRUNING

    for dialect in (SQLITE, POSTGRES):
        assert f"'{retention.LEASE_KEY}'" in dialect.queries["prune_lease"]
        assert f"'{retention.LEASE_KEY}'" in dialect.queries["prune_take_lease"]
        assert f"'{PRUNING}'" in dialect.queries["prune_mark"]
        assert f"'{PRUNING}'" in dialect.queries["prune_unmark"]
        assert f"'{queries.VERSION_KEY}'" in dialect.queries["settings_versioned"]
        assert f"'{queries.VERSION_KEY}'" in dialect.queries["settings_version"]
        assert models.AGING_RATE_SQL in dialect.queries["aging_rate"]
        # a list of jobs is one step's chunk of markers
        for name in ("prune_drop_jobs", "prune_drop_attempts", "prune_log_files"):
            assert len(markers(dialect.queries[name])) == retention.CHUNK


def test_the_claim_names_its_index_on_sqlite():
    assert "INDEXED BY job_claim" in SQLITE.queries["claim"]
    assert "INDEXED BY job_due" in SQLITE.queries["next_due"]
    assert "INDEXED BY job_due" in SQLITE.queries["oldest_due"]


def test_the_store_keeps_the_settings_version_key_of_settings():
    from queuectl_tui.settings import VERSION_KEY

    assert queries.VERSION_KEY == VERSION_KEY
