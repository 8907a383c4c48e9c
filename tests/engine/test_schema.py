"""The stored schema: created fresh from store/sql/<backend>/schema.sql, upgraded from the
first release, refused when newer; the models and the engine's SQL fragments agree with it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from peewee import TextField
from playhouse.migrate import migrate

from helpers import make_v1
from queuectl_tui import engine, spec
from queuectl_tui import store as dbmod
from queuectl_tui.errors import DatabaseUnusable
from queuectl_tui.store.models import AGING_RATE_SQL, CLAIMABLE_WHERE, MODELS, database
from queuectl_tui.store.sql import load, statements


def shape(path: Path) -> dict:
    """Columns and indexes of every table, independent of how the DDL text was written, and
    the triggers."""
    con = sqlite3.connect(path)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    result = {}
    for table in tables:
        columns = sorted(
            (r[1], r[2].upper(), r[3], r[5]) for r in con.execute(f'PRAGMA table_info("{table}")')
        )
        indexes = sorted(
            (r[1], r[2], tuple(c[2] for c in con.execute(f'PRAGMA index_info("{r[1]}")')))
            for r in con.execute(f'PRAGMA index_list("{table}")')
        )
        result[table] = (columns, indexes)
    # Triggers are schema too (job_count is kept by them): same names, same SQL.
    result["triggers"] = sorted(
        con.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
    )
    con.close()
    return result


@pytest.fixture(autouse=True)
def _closed():
    yield
    dbmod.close_db()


def pg_catalog(schema: str) -> list[str]:
    """Everything a PostgreSQL schema defines (tables, columns with types, defaults and NOT
    NULL, indexes, constraints, triggers, functions with their bodies, sequences), free of the
    schema's name; not its rows."""
    import psycopg2
    from pg_support import PG_URL, _fingerprint

    conn = psycopg2.connect(PG_URL)
    try:
        return [
            line
            for line in _fingerprint(conn.cursor(), schema)
            if not line.startswith(("row ", "seq "))
        ]
    finally:
        conn.close()


def pg_schema(*, v1: bool = False) -> str:
    """A new PostgreSQL schema opened once (made by open_db; with ``v1``, the first release's
    schema with one job, upgraded by open_db)."""
    import psycopg2
    from pg_support import fresh_schema, v1_on_postgres

    schema, url = fresh_schema()
    if v1:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        conn.cursor().execute(v1_on_postgres())
        conn.cursor().execute(
            "INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, "
            "backoff_base, run_at, created_at, updated_at, cwd, cancel_requested) VALUES "
            "('old-job', 'echo from v1', 'default', 'pending', 0, 0, 3, 2, 0, 0, 0, '/', false)"
        )
        conn.close()
    try:
        dbmod.open_db(url)
        assert dbmod.schema_version() == dbmod.SCHEMA_VERSION
    finally:
        dbmod.close_db()
    return schema


@pytest.mark.both_backends
def test_first_release_upgraded_has_the_same_shape_as_a_fresh_database(backend, tmp_path):
    """A new database is made from schema.sql, an old one by the upgrade steps: both end the
    same (fails when schema.sql changes without a new schema version and an upgrade step)."""
    if backend == "postgres":
        from pg_support import drop_schema_later

        made = [pg_schema(), pg_schema(v1=True)]
        try:
            fresh, old = (pg_catalog(schema) for schema in made)
            assert old == fresh
        finally:
            for schema in made:
                drop_schema_later(schema)
        return
    fresh = tmp_path / "fresh.db"
    dbmod.open_db(fresh)
    dbmod.close_db()
    old = make_v1(tmp_path / "old.db")
    dbmod.open_db(old)
    assert dbmod.schema_version() == dbmod.SCHEMA_VERSION
    dbmod.close_db()
    assert shape(old) == shape(fresh)


def test_upgrade_keeps_jobs_and_they_still_run(tmp_path):
    dbmod.open_db(make_v1(tmp_path / "old.db"))
    job = engine.get_job("old-job")
    assert job.command == "echo from v1"
    claimed = engine.claim(engine.register_worker(), now=1.0)
    assert claimed[0].id == "old-job"


def test_upgrade_steps_run_in_order_inside_open(tmp_path, monkeypatch):
    """The upgrade path itself: a next version that adds a column reaches a v1 database on
    open, after every step in between."""
    old = make_v1(tmp_path / "old.db")
    following = dbmod.SCHEMA_VERSION + 1
    monkeypatch.setattr(dbmod.schema, "SCHEMA_VERSION", following)
    monkeypatch.setitem(
        dbmod.UPGRADES,
        following,
        lambda m: migrate(m.add_column("job", "note", TextField(null=True))),
    )
    dbmod.open_db(old)
    assert dbmod.schema_version() == following
    dbmod.close_db()
    con = sqlite3.connect(old)
    assert "note" in [r[1] for r in con.execute("PRAGMA table_info(job)")]
    assert con.execute("SELECT command FROM job WHERE id='old-job'").fetchone() == ("echo from v1",)


def test_newer_schema_is_refused_by_engine_and_cli(tmp_path, cli, home):
    path = home / "queuectl.db"
    dbmod.open_db(path)
    engine.enqueue([spec.normalize({"id": "a", "command": "true"})])
    dbmod.close_db()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(DatabaseUnusable, match="schema version 99"):
        dbmod.open_db(path)
    result = cli("status")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "newer" in result.err and str(path) in result.err
    assert "Traceback" not in result.err


def test_foreign_sqlite_database_is_refused(tmp_path, cli, home):
    home.mkdir()
    con = sqlite3.connect(home / "queuectl.db")
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    result = cli("list")
    assert result.code == 1 and "not a queuectl one" in result.err


def test_a_worker_stops_cleanly_when_the_schema_is_upgraded_under_it(cli, home, tmp_path):
    """A newer queuectl upgrades the database while a worker of this version runs a job; the
    upgrade changed the claim's index, so this worker's claim fails from then on. It must not
    loop on the error with its job left `processing`: it notices the newer schema, records
    the job it ran, unregisters and exits, saying why (here in the workers' log)."""
    import os

    from helpers import gone, ok, wait_for

    started, release = tmp_path / "started", tmp_path / "release"
    ok(
        cli(
            "enqueue",
            "--id",
            "running",
            f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done",
        )
    )
    ok(cli("enqueue", "--id", "next", "true"))
    worker = ok(cli("worker", "start", "--json")).json()[0]
    try:
        wait_for(started.exists, message="the job to start")
        con = sqlite3.connect(home / "queuectl.db")
        con.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'",
            (str(dbmod.SCHEMA_VERSION + 1),),
        )
        con.execute("DROP INDEX job_claim")  # INDEXED BY job_claim: "no such index"
        con.commit()
        release.touch()
        wait_for(lambda: gone(worker["pid"]), timeout=60, message="the worker to exit")
        states = dict(con.execute("SELECT id, state FROM job"))
        assert states == {"running": "completed", "next": "pending"}
        assert con.execute("SELECT count(*) FROM attempt").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM worker").fetchone() == (0,)
        con.close()
        log = (home / "logs" / "workers.log").read_text()
        assert (
            f"upgraded to schema version {dbmod.SCHEMA_VERSION + 1}, newer than this "
            f"queuectl-tui knows ({dbmod.SCHEMA_VERSION})"
        ) in log
        assert "Traceback" not in log
    finally:
        if not gone(worker["pid"]):
            os.kill(worker["pid"], 9)


def test_a_version_10_database_gets_the_change_counts_on_open(tmp_path):
    """Version 10 had job_count without v and count triggers that did not bump it (version 11
    added both, and the triggers that bump v for other changes)."""
    fresh = tmp_path / "fresh.db"
    dbmod.open_db(fresh)
    dbmod.close_db()
    old = tmp_path / "old.db"
    dbmod.open_db(old)
    engine.enqueue([spec.normalize({"id": "a", "command": "true"})], cwd=str(tmp_path), env={})
    dbmod.close_db()
    con = sqlite3.connect(old)
    for name in (
        "job_count_insert",
        "job_count_update",
        "job_count_delete",
        "job_touch",
        "queue_touch_insert",
        "queue_touch_update",
        "queue_touch_delete",
        "paused_all_touch_insert",
        "paused_all_touch_update",
        "paused_all_touch_delete",
    ):
        con.execute(f"DROP TRIGGER {name}")
    con.execute("ALTER TABLE job_count DROP COLUMN v")
    con.execute(
        "CREATE TRIGGER job_count_insert AFTER INSERT ON job BEGIN "
        "INSERT INTO job_count (queue, state, n) VALUES (NEW.queue, NEW.state, 1) "
        "ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1; END"
    )
    con.execute(
        "CREATE TRIGGER job_count_update AFTER UPDATE OF state, queue ON job "
        "WHEN NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue BEGIN "
        "UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state; "
        "INSERT INTO job_count (queue, state, n) VALUES (NEW.queue, NEW.state, 1) "
        "ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1; END"
    )
    con.execute(
        "CREATE TRIGGER job_count_delete AFTER DELETE ON job BEGIN "
        "UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state; END"
    )
    con.execute("UPDATE meta SET value = '10' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    dbmod.open_db(old)
    assert dbmod.schema_version() == dbmod.SCHEMA_VERSION
    changes = "SELECT total(v) FROM job_count"
    before = database.execute_sql(changes).fetchone()[0]
    engine.enqueue([spec.normalize({"id": "b", "command": "true"})], cwd=str(tmp_path), env={})
    assert database.execute_sql(changes).fetchone()[0] > before
    assert engine.counts()["pending"] == 2
    dbmod.close_db()
    assert shape(old) == shape(fresh)


#: sha256 (first 16 hex digits) of each SQLite trigger's text as a new database stores it
#: (sqlite_master.sql), recorded when the triggers were still glued from Python strings in
#: schema.py (294346d): schema.sql's blocks are those texts, byte for byte. Change one only
#: with a new schema version and its upgrade step.
TRIGGERS = {
    "attempt_minute_delete": "5defd262f809920b",
    "attempt_minute_finish": "ef94f65d0a9af74f",
    "attempt_minute_insert": "b416eed69042439b",
    "attempt_minute_update": "661ba83d7fd34698",
    "job_count_delete": "80792e459106279b",
    "job_count_insert": "6818bb780d511989",
    "job_count_update": "60710a56a85a1c57",
    "job_failed_delete": "ae093669cb755593",
    "job_failed_insert": "5631275653f15401",
    "job_failed_update": "34aa4e8f949dc5ee",
    "job_rank": "ca581c91d6bf98bb",
    "job_release": "f6e26c80f9f0916d",
    "job_touch": "afc76c54019f69ba",
    "paused_all_touch_delete": "f3005509abeb468f",
    "paused_all_touch_insert": "125dd9b034e123c5",
    "paused_all_touch_update": "fe75f68c19f6750b",
    "queue_touch_delete": "49b15b63bac3fdc7",
    "queue_touch_insert": "e303d06ccf008587",
    "queue_touch_update": "45a0a6bd49f2c78c",
}


def test_a_new_database_stores_the_triggers_as_they_were_recorded(tmp_path):
    dbmod.open_db(tmp_path / "new.db")
    dbmod.close_db()
    con = sqlite3.connect(tmp_path / "new.db")
    stored = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    con.close()
    assert {
        name: hashlib.sha256(sql.encode()).hexdigest()[:16] for name, sql in stored.items()
    } == TRIGGERS


#: Columns no model maps: SQLite's change counter (connection.jobs_token reads it in SQL) and
#: PostgreSQL's per-session slots of the counts and rollups (store/pgsql.py).
UNMAPPED = {"job_count": {"v", "slot"}, "attempt_minute": {"slot"}, "job_failed_minute": {"slot"}}


@pytest.mark.both_backends
def test_the_models_map_the_tables_of_schema_sql(db):
    """Each model's table is there, with a column for each field, NOT NULL where the field
    may not be None; what no model maps is UNMAPPED."""
    tables = {model._meta.table_name: model for model in MODELS}
    assert sorted(tables) == sorted(database.get_tables())
    for table, model in tables.items():
        columns = {c.name: c.null for c in database.get_columns(table)}
        fields = {f.column_name: f.null for f in model._meta.sorted_fields}
        assert {name: columns.get(name) for name in fields} == fields, table
        assert columns.keys() - fields.keys() <= UNMAPPED.get(table, set()), table


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_the_fragments_the_engine_uses_are_those_of_schema_sql(dialect):
    """The claim's condition (the partial indexes') and the aging rate are written once in
    schema.sql and once in models.py, for the statements still built in Python."""
    schema = load(dialect, "schema")
    for index in ("job_claim", "job_due"):
        assert schema[index].endswith(f" WHERE {CLAIMABLE_WHERE}"), index
    rank = schema["job_rank" if dialect == "sqlite" else "job_rank_change"]
    assert f"NEW.priority - {AGING_RATE_SQL} * NEW.run_at / 60.0" in rank
    if dialect == "sqlite":
        for trigger in ("attempt_minute_delete", "job_failed_delete"):
            assert (
                f"NOT EXISTS (SELECT 1 FROM meta WHERE key = '{dbmod.PRUNING}')"
                in (schema[trigger])
            )


def test_a_block_of_several_statements_is_split_where_each_ends():
    """SQLite runs one statement per call: a trigger keeps the semicolons of its body, a
    quoted semicolon splits nothing."""
    trigger = (
        "CREATE TRIGGER t AFTER INSERT ON job BEGIN UPDATE meta SET value = 'a;b'; "
        "DELETE FROM meta WHERE key = 'x'; END"
    )
    assert statements(f"DROP TRIGGER IF EXISTS t; {trigger}; SELECT ';'") == [
        "DROP TRIGGER IF EXISTS t",
        trigger,
        "SELECT ';'",
    ]
    assert statements("SELECT 1") == ["SELECT 1"]
