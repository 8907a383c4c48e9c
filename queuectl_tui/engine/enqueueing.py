"""Enqueueing: one transaction for a list of specs, and the staged bulk path for streams."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from peewee import Database, IntegrityError, chunked

from queuectl_tui import settings
from queuectl_tui.engine.chains import _add_dependencies, _settle
from queuectl_tui.engine.common import _check_cwd, _new_id, environment_row
from queuectl_tui.engine.queues import aging_rate
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store import (
    write_transaction,
)
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import (
    PENDING,
    Environment,
    Job,
    database,
)


def enqueue(specs: Iterable[dict[str, Any]], *, cwd: str | None = None,
            env: dict[str, str] | None = None, now: float | None = None) -> list[Job]:
    """Insert validated specs (see ``spec.normalize``) in one transaction: all or nothing."""
    specs = list(specs)
    now = time.time() if now is None else now
    cwd = _check_cwd(cwd if cwd is not None else os.getcwd())
    env = dict(os.environ) if env is None else env
    given = [s["id"] for s in specs if s.get("id")]
    seen: set[str] = set()
    for job_id in given:
        if job_id in seen:
            raise InvalidInput(f"duplicate job id {job_id!r} in the input; nothing enqueued",
                               field="id")
        seen.add(job_id)
    defaults = settings.load()
    env_row = environment_row(env)
    jobs = []
    with write_transaction():
        rate = aging_rate()
        Environment.insert(digest=env_row[0], data=env_row[1]).on_conflict_ignore().execute()
        for spec in specs:
            row = {
                "id": spec.get("id") or _new_id(),
                "command": spec["command"],
                "queue": spec.get("queue", "default"),
                "priority": spec.get("priority", 0),
                "max_retries": spec.get("max_retries", defaults.max_retries),
                "backoff_base": spec.get("backoff_base", defaults.backoff_base),
                "timeout": spec.get("timeout", defaults.default_timeout),
                "run_at": spec.get("run_at", now),
                "label": spec.get("label"),
                "created_at": now,
                "updated_at": now,
                "cwd": cwd,
                "env_digest": env_row[0],
                "state": PENDING,
            }
            row["rank"] = row["priority"] - rate * row["run_at"] / 60.0
            try:  # the unique index is the check; raising here rolls back the whole input
                job = Job.create(**row)
            except IntegrityError:
                raise InvalidInput(f"job id {row['id']!r} already exists; nothing enqueued",
                                   field="id") from None
            if spec.get("after"):
                _add_dependencies(job.seq, spec["after"])
                _settle([job.seq], now=now)
                job = Job.get_by_id(job.seq)
            jobs.append(job)
    return jobs


_STAGE_CHUNK = 5000
# The stage is temp.enqueue_stage, a TEMP table: private to this connection. Its SQL is spelt
# out in full (no interpolation: raw SQL here is always a literal). A generated id is
# lower(hex(randomblob(6))), the same shape as _new_id().


@contextmanager
def enqueue_stream(specs: Iterable[tuple[str, dict[str, Any]]], *, cwd: str | None = None,
                   env: dict[str, str] | None = None, now: float | None = None) -> Iterator[Staged]:
    """Enqueue ``(where, spec)`` pairs from an input of any length: all or nothing, in order.

    Rows are staged in a TEMP table of this connection (no lock on the main database; it
    lives in a temporary file, so memory does not grow with the input) and checked there for
    repeated ids; then one ``INSERT INTO job … SELECT`` moves them in one short IMMEDIATE
    transaction. ``where`` ("line 7") names the job in messages. Yields a ``Staged`` that
    reads back the ids or jobs in input order; the stage is dropped on leaving.
    Plain SQL rather than models: this is the hot path (one model instance per row cost 98%
    of a bulk enqueue), and TEMP tables and randomblob() are SQLite's.
    """
    now = time.time() if now is None else now
    cwd = _check_cwd(os.getcwd() if cwd is None else cwd)
    digest, data = environment_row(dict(os.environ) if env is None else env)
    defaults = settings.load()
    db = database.obj
    if dialect().concurrent_writers:
        with _enqueue_stream_pg(db, specs, defaults, now, cwd, digest, data) as staged:
            yield staged
        return
    db.execute_sql("DROP TABLE IF EXISTS temp.enqueue_stage")
    db.execute_sql("CREATE TEMP TABLE enqueue_stage (id TEXT NOT NULL, generated INTEGER NOT NULL, "
                   "command TEXT NOT NULL, queue TEXT NOT NULL, priority INTEGER NOT NULL, "
                   "max_retries INTEGER NOT NULL, backoff_base REAL NOT NULL, timeout REAL, "
                   "run_at REAL NOT NULL, src TEXT NOT NULL, after TEXT, label TEXT)")
    rows = _StageRows(specs, defaults, now)
    try:
        count = 0
        with db.atomic():  # a deferred transaction that writes only the temp database
            for chunk in chunked(rows, _STAGE_CHUNK):
                db.cursor().executemany(
                    "INSERT INTO temp.enqueue_stage VALUES "
                    "(coalesce(?1, lower(hex(randomblob(6)))), ?1 IS NULL, "
                    "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    chunk,
                )
                count += len(chunk)
            _check_stage_ids(db)
        if count:
            _move_stage(db, now, cwd, digest, data, rows.chained)
        yield Staged(count)
    finally:
        db.execute_sql("DROP TABLE IF EXISTS temp.enqueue_stage")


class Staged:
    """What ``enqueue_stream`` added, read back in input order without holding it in memory
    (from the stage, ``dialect().stage_table``, until ``enqueue_stream`` drops it)."""

    def __init__(self, count: int):
        self.count = count
        self.table = dialect().stage_table

    def ids(self) -> Iterator[str]:
        cursor = database.obj.execute_sql(f"SELECT id FROM {self.table} ORDER BY rowid")
        while batch := cursor.fetchmany(_STAGE_CHUNK):
            yield from (row[0] for row in batch)

    def jobs(self) -> Iterator[Job]:
        return Job.raw(f"SELECT job.* FROM {self.table} s JOIN job ON job.id = s.id "
                       "ORDER BY s.rowid").iterator()

    def dead(self) -> list[tuple[str, str]]:
        """(id, error) of the jobs that went straight to the DLQ: a dependency was dead."""
        if not self.count:
            return []
        return database.obj.execute_sql(
            f"SELECT j.id, j.last_error FROM {self.table} s JOIN job j ON j.id = s.id "
            "WHERE s.after IS NOT NULL AND j.state = 'dead' ORDER BY s.rowid").fetchall()


# PostgreSQL: the same stage as a TEMP table of this session (pg_temp), its input order kept by
# a serial rowid; generated ids are drawn here (the shape of _new_id) and drawn again on a clash.
_PG_NEW_ID = "substr(md5(random()::text || clock_timestamp()::text), 1, 12)"
_PG_REDRAW_REPEATED = ("UPDATE pg_temp.enqueue_stage SET id = " + _PG_NEW_ID + " WHERE generated "
                       "AND id IN (SELECT id FROM pg_temp.enqueue_stage GROUP BY id "
                       "HAVING count(*) > 1)")
_PG_REDRAW_TAKEN = ("UPDATE pg_temp.enqueue_stage SET id = " + _PG_NEW_ID + " WHERE generated "
                    "AND id IN (SELECT id FROM job)")


class _StageRows:
    """The stage's rows from ``(where, spec)`` pairs, defaults filled in: (id or None, command,
    queue, priority, max_retries, backoff_base, timeout, run_at, where, after as JSON or None,
    label).
    ``chained`` tells afterwards whether any spec named jobs to wait for."""

    def __init__(self, specs: Iterable[tuple[str, dict[str, Any]]],
                 defaults: settings.Settings, now: float) -> None:
        self.specs, self.defaults, self.now, self.chained = specs, defaults, now, False

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        defaults, now = self.defaults, self.now
        for where, spec in self.specs:
            after = spec.get("after")
            if after:
                self.chained = True
            yield (spec.get("id"), spec["command"], spec.get("queue", "default"),
                   spec.get("priority", 0), spec.get("max_retries", defaults.max_retries),
                   spec.get("backoff_base", defaults.backoff_base),
                   spec.get("timeout", defaults.default_timeout), spec.get("run_at", now), where,
                   json.dumps(after) if after else None, spec.get("label"))


_ANALYZE_AFTER = 10_000  # rows added by one bulk enqueue on PostgreSQL


@contextmanager
def _enqueue_stream_pg(db: Database, specs: Iterable[tuple[str, dict[str, Any]]],
                       defaults: settings.Settings, now: float, cwd: str, digest: str,
                       data: str) -> Iterator[Staged]:
    db.execute_sql("DROP TABLE IF EXISTS pg_temp.enqueue_stage")
    db.execute_sql("CREATE TEMP TABLE enqueue_stage (rowid BIGSERIAL, id TEXT NOT NULL, "
                   "generated BOOLEAN NOT NULL, command TEXT NOT NULL, queue TEXT NOT NULL, "
                   "priority INTEGER NOT NULL, max_retries INTEGER NOT NULL, "
                   "backoff_base DOUBLE PRECISION NOT NULL, timeout DOUBLE PRECISION, "
                   "run_at DOUBLE PRECISION NOT NULL, src TEXT NOT NULL, after TEXT, label TEXT)")
    staged = _StageRows(specs, defaults, now)
    try:
        # The id is drawn here (no randomblob()); "generated" says whether it was.
        rows = ((row[0] or _new_id(), row[0] is None, *row[1:]) for row in staged)
        count = 0
        with db.atomic():
            cursor = db.cursor()
            for chunk in chunked(rows, _STAGE_CHUNK):
                dialect().insert_values(
                    cursor, "INSERT INTO pg_temp.enqueue_stage (id, generated, command, queue, "
                    "priority, max_retries, backoff_base, timeout, run_at, src, after, label) "
                    "VALUES %s", chunk)
                count += len(chunk)
            while db.execute_sql(_PG_REDRAW_REPEATED).rowcount:
                pass
            row = db.execute_sql(
                "SELECT s.src, s.id, f.src FROM (SELECT src, id, rowid, min(rowid) OVER "
                "(PARTITION BY id) AS first FROM pg_temp.enqueue_stage) s JOIN "
                "pg_temp.enqueue_stage f ON f.rowid = s.first WHERE s.rowid > s.first "
                "ORDER BY s.rowid LIMIT 1").fetchone()
            if row is not None:
                raise _repeated_id(*row)
            db.execute_sql("CREATE UNIQUE INDEX ON pg_temp.enqueue_stage (id)")
        while count:
            try:
                with write_transaction():
                    Environment.insert(digest=digest, data=data).on_conflict_ignore().execute()
                    db.execute_sql(
                        "INSERT INTO job (id, command, queue, state, priority, attempts, "
                        "max_retries, backoff_base, timeout, run_at, created_at, updated_at, cwd, "
                        "env_digest, cancel_requested, rank, label) SELECT id, command, queue, %s, "
                        "priority, 0, max_retries, backoff_base, timeout, run_at, %s, %s, %s, %s, "
                        "false, priority - %s * run_at / 60.0, label FROM pg_temp.enqueue_stage "
                        "ORDER BY rowid", (PENDING, now, now, cwd, digest, aging_rate()))
                    if staged.chained:
                        _stage_dependencies_pg(db, now)
                break
            except IntegrityError:
                clash = db.execute_sql(
                    "SELECT s.src, s.id FROM pg_temp.enqueue_stage s JOIN job j ON j.id = s.id "
                    "WHERE NOT s.generated ORDER BY s.rowid LIMIT 1").fetchone()
                if clash is not None:
                    raise _taken_id(*clash) from None
                if not db.execute_sql(_PG_REDRAW_TAKEN).rowcount:
                    raise
        if count >= _ANALYZE_AFTER:
            # The server's statistics of a table that just grew this much are stale until
            # autovacuum's next pass, and with them a claim could pick a partial index over the
            # primary key and read every waiting job (5 ms a claim at 200,000 waiting, 0.2 ms
            # once analysed). A table this queue does not own is skipped with a warning.
            db.execute_sql("ANALYZE job")
        yield Staged(count)
    finally:
        db.execute_sql("DROP TABLE IF EXISTS pg_temp.enqueue_stage")


def _repeated_id(src: str, job_id: str, first: str) -> InvalidInput:
    """A staged line repeats the id of an earlier line (either backend)."""
    return InvalidInput(f"{src}: duplicate job id {job_id!r} in the input (first on {first}); "
                        "nothing enqueued", field="id")


def _taken_id(src: str | None, job_id: str) -> InvalidInput:
    """A staged line's id is a stored job's (either backend)."""
    return InvalidInput(f"{src + ': ' if src else ''}job id {job_id!r} already exists; "
                        "nothing enqueued", field="id")


def _unknown_dependency(src: str | None, job_id: str) -> InvalidInput:
    """A staged line's ``after`` names no stored job and no earlier line (either backend)."""
    return InvalidInput(f"{src + ': ' if src else ''}after: no job with id {job_id!r} "
                        "(it must exist or come earlier in the input); nothing enqueued",
                        field="after")


def _stage_dependencies_pg(db: Database, now: float) -> None:
    """_stage_dependencies on PostgreSQL's stage."""
    unknown = db.execute_sql(
        "SELECT s.src, a.value FROM pg_temp.enqueue_stage s, "
        "json_array_elements_text(s.after::json) a(value) WHERE s.after IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM job d WHERE d.id = a.value "
        "AND NOT EXISTS (SELECT 1 FROM pg_temp.enqueue_stage l WHERE l.id = d.id "
        "AND l.rowid >= s.rowid)) ORDER BY s.rowid LIMIT 1"
    ).fetchone()
    if unknown is not None:
        raise _unknown_dependency(*unknown)
    db.execute_sql(
        "INSERT INTO job_dep (job_seq, dep_seq, dep_id) SELECT j.seq, d.seq, d.id "
        "FROM pg_temp.enqueue_stage s JOIN job j ON j.id = s.id CROSS JOIN "
        "json_array_elements_text(s.after::json) a(value) JOIN job d ON d.id = a.value "
        "WHERE s.after IS NOT NULL ORDER BY s.rowid")
    seqs = [row[0] for row in db.execute_sql(
        "SELECT j.seq FROM pg_temp.enqueue_stage s JOIN job j ON j.id = s.id "
        "WHERE s.after IS NOT NULL ORDER BY s.rowid")]
    _settle(seqs, now=now)


def _check_stage_ids(db: Database) -> None:
    """Refuse an id given twice; draw again a generated id that repeats one (2**48 to pick from)."""
    try:
        db.execute_sql("CREATE UNIQUE INDEX temp.enqueue_stage_id ON enqueue_stage (id)")
        return
    except IntegrityError:
        pass
    db.execute_sql("CREATE INDEX temp.enqueue_stage_any_id ON enqueue_stage (id)")
    while db.execute_sql(
        "UPDATE temp.enqueue_stage SET id = lower(hex(randomblob(6))) WHERE generated AND id IN "
        "(SELECT id FROM temp.enqueue_stage GROUP BY id HAVING count(*) > 1)"
    ).rowcount:
        pass
    row = db.execute_sql(
        "SELECT s.src, s.id, (SELECT f.src FROM temp.enqueue_stage f WHERE f.id = s.id "
        "ORDER BY f.rowid LIMIT 1) FROM temp.enqueue_stage s WHERE s.rowid > "
        "(SELECT min(f.rowid) FROM temp.enqueue_stage f WHERE f.id = s.id) "
        "ORDER BY s.rowid LIMIT 1").fetchone()
    if row is not None:
        raise _repeated_id(*row)
    db.execute_sql("DROP INDEX temp.enqueue_stage_any_id")
    db.execute_sql("CREATE UNIQUE INDEX temp.enqueue_stage_id ON enqueue_stage (id)")


def _move_stage(db: Database, now: float, cwd: str, digest: str, data: str,
                chained: bool = False) -> None:
    """The only part under the write lock: one INSERT … SELECT of rows already checked (and,
    when some name ``after``, their dependencies)."""
    while True:
        try:
            with write_transaction():
                Environment.insert(digest=digest, data=data).on_conflict_ignore().execute()
                db.execute_sql(
                    "INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, "
                    "backoff_base, timeout, run_at, created_at, updated_at, cwd, env_digest, "
                    "cancel_requested, rank, label) SELECT id, command, queue, ?, priority, 0, "
                    "max_retries, backoff_base, timeout, run_at, ?, ?, ?, ?, 0, "
                    "priority - ? * run_at / 60.0, label FROM temp.enqueue_stage ORDER BY rowid",
                    (PENDING, now, now, cwd, digest, aging_rate()))
                if chained:
                    _stage_dependencies(db, now)
            return
        except IntegrityError:  # the unique index on job.id is the check (also against races)
            clash = db.execute_sql(
                "SELECT s.src, s.id FROM temp.enqueue_stage s JOIN main.job j ON j.id = s.id "
                "WHERE NOT s.generated ORDER BY s.rowid LIMIT 1").fetchone()
            if clash is not None:
                raise _taken_id(*clash) from None
            if not db.execute_sql("SELECT count(*) FROM temp.enqueue_stage WHERE generated AND "
                                  "id IN (SELECT id FROM main.job)").fetchone()[0]:
                raise
            # A generated id that is taken: draw again (OR IGNORE: a draw that repeats another
            # staged id keeps the old one, drawn again on the next round).
            db.execute_sql("UPDATE OR IGNORE temp.enqueue_stage SET id = lower(hex(randomblob(6))) "
                           "WHERE generated AND id IN (SELECT id FROM main.job)")


def _stage_dependencies(db: Database, now: float) -> None:
    """The staged jobs' ``after``: each names a job that existed before this input or comes
    earlier in it (else nothing is enqueued); then their waiting counts, and the DLQ for those
    naming a dead job. Inside _move_stage's transaction."""
    unknown = db.execute_sql(
        "SELECT s.src, a.value FROM temp.enqueue_stage s, json_each(s.after) a "
        "WHERE s.after IS NOT NULL AND NOT EXISTS (SELECT 1 FROM main.job d WHERE d.id = a.value "
        "AND NOT EXISTS (SELECT 1 FROM temp.enqueue_stage l WHERE l.id = d.id "
        "AND l.rowid >= s.rowid)) "
        "ORDER BY s.rowid LIMIT 1"
    ).fetchone()
    if unknown is not None:
        raise _unknown_dependency(*unknown)
    db.execute_sql(
        "INSERT INTO job_dep (job_seq, dep_seq, dep_id) SELECT j.seq, d.seq, d.id "
        "FROM temp.enqueue_stage s JOIN main.job j ON j.id = s.id, json_each(s.after) a "
        "JOIN main.job d ON d.id = a.value WHERE s.after IS NOT NULL ORDER BY s.rowid")
    seqs = [row[0] for row in db.execute_sql(
        "SELECT j.seq FROM temp.enqueue_stage s JOIN main.job j ON j.id = s.id "
        "WHERE s.after IS NOT NULL ORDER BY s.rowid")]
    _settle(seqs, now=now)
