"""The stored schema: created fresh, upgraded from the first release, refused when newer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from peewee import TextField
from playhouse.migrate import migrate

from helpers import make_v1
from queuectl_tui import engine, spec
from queuectl_tui import store as dbmod
from queuectl_tui.errors import DatabaseUnusable


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
            for r in con.execute(f'PRAGMA index_list("{table}")'))
        result[table] = (columns, indexes)
    # Triggers are schema too (job_count is kept by them): same names, same SQL.
    result["triggers"] = sorted(con.execute("SELECT name, tbl_name, sql FROM sqlite_master "
                                            "WHERE type = 'trigger'"))
    con.close()
    return result


@pytest.fixture(autouse=True)
def _closed():
    yield
    dbmod.close_db()


def test_first_release_upgraded_has_the_same_shape_as_a_fresh_database(tmp_path):
    """Fails when the models change without a new schema version and an upgrade step."""
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
    monkeypatch.setitem(dbmod.UPGRADES, following,
                        lambda m: migrate(m.add_column("job", "note", TextField(null=True))))
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
    ok(cli("enqueue", "--id", "running",
           f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done"))
    ok(cli("enqueue", "--id", "next", "true"))
    worker = ok(cli("worker", "start", "--json")).json()[0]
    try:
        wait_for(started.exists, message="the job to start")
        con = sqlite3.connect(home / "queuectl.db")
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(dbmod.SCHEMA_VERSION + 1),))
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
        assert (f"upgraded to schema version {dbmod.SCHEMA_VERSION + 1}, newer than this "
                f"queuectl-tui knows ({dbmod.SCHEMA_VERSION})") in log
        assert "Traceback" not in log
    finally:
        if not gone(worker["pid"]):
            os.kill(worker["pid"], 9)
