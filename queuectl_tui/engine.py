"""Queue operations: plain functions over the models, shared by the CLI, the TUI and workers.

Every state change is one transaction. Changes made on behalf of a worker about a job are
fenced on ``(state = processing, claim_token = the attempt's token)``: the token is random and
fresh at every claim, so a worker that was presumed lost (and whose job may have been claimed
again since) cannot overwrite what recovery or the next claimer decided after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple
from weakref import WeakKeyDictionary

from peewee import JOIN, DatabaseError, IntegrityError, chunked, fn

from queuectl_tui import procs, settings, wake
from queuectl_tui.db import (
    LAST_WORKER_ID,
    after_commit,
    change_token,
    fold,
    held_limited,
    is_sqlite,
    lock_holders,
    set_held_limited,
    write_transaction,
)
from queuectl_tui.db import logs_dir as _logs_dir
from queuectl_tui.errors import InvalidInput, NotFound, QueueError
from queuectl_tui.models import (
    AGING_RATE_SQL,
    CLAIMABLE,
    CLAIMABLE_WHERE,
    COMPLETED,
    DEAD,
    FAILED,
    FAILED_OUTCOMES,
    PENDING,
    PROCESSING,
    STATES,
    Attempt,
    Dependency,
    Environment,
    Job,
    JobCount,
    Meta,
    Outcome,
    Queue,
    Worker,
    WorkerStatus,
    database,
)
from queuectl_tui.paths import create_private_file
from queuectl_tui.pgsql import (
    CLAIM_BATCH,
    CLAIM_LOCKS,
    FINISH_BATCH,
    OLDEST_DUE_QUEUES,
    OPEN_QUEUES,
)
from queuectl_tui.settings import VERSION_KEY
from queuectl_tui.spec import normalize

if TYPE_CHECKING:
    from pathlib import Path

TAIL_BYTES = 4096
#: Ids per ``IN (...)`` list: well under SQLite's limit on bound parameters.
IN_CHUNK = 500
NOT_RUNNING = tuple(s for s in STATES if s != PROCESSING)


# --- enqueue ---------------------------------------------------------------------------------

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
    env_row = _environment(env)
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


def _add_dependencies(job_seq: int, after: list[str], where: str = "") -> None:
    """Record that the job waits for the jobs named in ``after``: jobs that exist (enqueued
    before it, in this input or earlier). The caller holds the write transaction."""
    found = dict(Job.select(Job.id, Job.seq).where(Job.id.in_(after)).tuples())
    missing = [job_id for job_id in after if found.get(job_id, job_seq) == job_seq]
    if missing:
        raise InvalidInput(f"{where + ': ' if where else ''}after: no job with id "
                           f"{', '.join(map(repr, missing))}; nothing enqueued", field="after")
    Dependency.insert_many([(job_seq, found[job_id], job_id) for job_id in after],
                           fields=[Dependency.job, Dependency.dep_seq, Dependency.dep_id]).execute()


def _settle(seqs: list[int], *, now: float) -> None:
    """Set ``waiting_on`` of these waiting jobs from their dependencies as they are now; one
    whose dependency is dead or deleted goes to the DLQ ("dependency ID failed"), and so do
    the jobs waiting on it. For every path that puts a job (back) in the queue. The caller
    holds the write transaction."""
    failed: list[int] = []
    for chunk in chunked(seqs, IN_CHUNK):
        waiting: dict[int, int] = {}
        broken: dict[int, str] = {}
        for job_seq, dep_id, dep_state in _dependency_rows(chunk):
            waiting.setdefault(job_seq, 0)
            if dep_state is None or dep_state == DEAD:
                broken.setdefault(job_seq, dep_id)
            elif dep_state != COMPLETED:
                waiting[job_seq] += 1
        for job_seq, count in waiting.items():
            query = (Job.update(state=DEAD, last_error=f"dependency {broken[job_seq]} failed",
                                finished_at=now, updated_at=now, waiting_on=0)
                     if job_seq in broken else Job.update(waiting_on=count))
            if (
                query.where(Job.seq == job_seq, Job.state.in_(CLAIMABLE)).execute()
                and job_seq in broken
            ):
                failed.append(job_seq)
    if failed:
        fail_dependents(failed, now=now)


def _dependency_rows(job_seqs: list[int]) -> Iterator[tuple[int, str, str | None]]:
    """(job seq, dependency id, its state or None if deleted), in dependency order. A
    dependency is matched by seq and id: a deleted job's seq may be given to a new job."""
    return (Dependency.select(Dependency.job, Dependency.dep_id, Job.state)
            .join(Job, JOIN.LEFT_OUTER, on=((Job.seq == Dependency.dep_seq)
                                            & (Job.id == Dependency.dep_id)))
            .where(Dependency.job.in_(job_seqs))
            .order_by(Dependency.job, Dependency.dep_seq).tuples())


def dependencies(job: Job) -> list[tuple[str, str | None]]:
    """The jobs this one waits for (``--after``): (id, state, or None if deleted)."""
    return [(dep_id, dep_state) for _, dep_id, dep_state in _dependency_rows([job.seq])]


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
    digest, data = _environment(dict(os.environ) if env is None else env)
    defaults = settings.load()
    db = database.obj
    if not is_sqlite():
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
    """What ``enqueue_stream`` added, read back in input order without holding it in memory."""

    def __init__(self, count: int, table: str = "temp.enqueue_stage"):
        self.count = count
        self.table = table

    def ids(self) -> Iterator[str]:
        if self.table != "temp.enqueue_stage":
            cursor = database.obj.execute_sql("SELECT id FROM pg_temp.enqueue_stage ORDER BY rowid")
        else:
            cursor = database.obj.execute_sql("SELECT id FROM temp.enqueue_stage ORDER BY rowid")
        while batch := cursor.fetchmany(_STAGE_CHUNK):
            yield from (row[0] for row in batch)

    def jobs(self) -> Iterator[Job]:
        if self.table != "temp.enqueue_stage":
            return Job.raw("SELECT job.* FROM pg_temp.enqueue_stage s JOIN job ON job.id = s.id "
                           "ORDER BY s.rowid").iterator()
        return Job.raw("SELECT job.* FROM temp.enqueue_stage s JOIN job ON job.id = s.id "
                       "ORDER BY s.rowid").iterator()

    def dead(self) -> list[tuple[str, str]]:
        """(id, error) of the jobs that went straight to the DLQ: a dependency was dead."""
        if not self.count:
            return []
        if self.table != "temp.enqueue_stage":
            return database.obj.execute_sql(
                "SELECT j.id, j.last_error FROM pg_temp.enqueue_stage s JOIN job j ON j.id = s.id "
                "WHERE s.after IS NOT NULL AND j.state = 'dead' ORDER BY s.rowid").fetchall()
        return database.obj.execute_sql(
            "SELECT j.id, j.last_error FROM temp.enqueue_stage s JOIN job j ON j.id = s.id "
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

    def __init__(self, specs, defaults, now: float):
        self.specs, self.defaults, self.now, self.chained = specs, defaults, now, False

    def __iter__(self):
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
def _enqueue_stream_pg(db, specs, defaults: dict, now: float, cwd: str, digest: str,
                       data: str) -> Iterator[Staged]:
    from psycopg2.extras import execute_values
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
                execute_values(cursor, "INSERT INTO pg_temp.enqueue_stage (id, generated, command, "
                               "queue, priority, max_retries, backoff_base, timeout, run_at, src, "
                               "after, label) VALUES %s", chunk, page_size=1000)
                count += len(chunk)
            while db.execute_sql(_PG_REDRAW_REPEATED).rowcount:
                pass
            row = db.execute_sql(
                "SELECT s.src, s.id, f.src FROM (SELECT src, id, rowid, min(rowid) OVER "
                "(PARTITION BY id) AS first FROM pg_temp.enqueue_stage) s JOIN "
                "pg_temp.enqueue_stage f ON f.rowid = s.first WHERE s.rowid > s.first "
                "ORDER BY s.rowid LIMIT 1").fetchone()
            if row is not None:
                src, job_id, first = row
                raise InvalidInput(f"{src}: duplicate job id {job_id!r} in the input (first on "
                                   f"{first}); nothing enqueued")
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
                    src, job_id = clash
                    raise InvalidInput(f"{src + ': ' if src else ''}job id {job_id!r} already "
                                       "exists; nothing enqueued") from None
                if not db.execute_sql(_PG_REDRAW_TAKEN).rowcount:
                    raise
        if count >= _ANALYZE_AFTER:
            # The server's statistics of a table that just grew this much are stale until
            # autovacuum's next pass, and with them a claim could pick a partial index over the
            # primary key and read every waiting job (5 ms a claim at 200,000 waiting, 0.2 ms
            # once analysed). A table this queue does not own is skipped with a warning.
            db.execute_sql("ANALYZE job")
        yield Staged(count, "pg_temp.enqueue_stage")
    finally:
        db.execute_sql("DROP TABLE IF EXISTS pg_temp.enqueue_stage")


def _unknown_dependency(src: str | None, job_id: str) -> InvalidInput:
    """A staged line's ``after`` names no stored job and no earlier line (either backend)."""
    return InvalidInput(f"{src + ': ' if src else ''}after: no job with id {job_id!r} "
                        "(it must exist or come earlier in the input); nothing enqueued",
                        field="after")


def _stage_dependencies_pg(db, now: float) -> None:
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


def _check_stage_ids(db) -> None:
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
        src, job_id, first = row
        raise InvalidInput(f"{src}: duplicate job id {job_id!r} in the input (first on {first}); "
                           "nothing enqueued", field="id")
    db.execute_sql("DROP INDEX temp.enqueue_stage_any_id")
    db.execute_sql("CREATE UNIQUE INDEX temp.enqueue_stage_id ON enqueue_stage (id)")


def _move_stage(db, now: float, cwd: str, digest: str, data: str, chained: bool = False) -> None:
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
                src, job_id = clash
                raise InvalidInput(f"{src + ': ' if src else ''}job id {job_id!r} already exists; "
                                   "nothing enqueued", field="id") from None
            if not db.execute_sql("SELECT count(*) FROM temp.enqueue_stage WHERE generated AND "
                                  "id IN (SELECT id FROM main.job)").fetchone()[0]:
                raise
            # A generated id that is taken: draw again (OR IGNORE: a draw that repeats another
            # staged id keeps the old one, drawn again on the next round).
            db.execute_sql("UPDATE OR IGNORE temp.enqueue_stage SET id = lower(hex(randomblob(6))) "
                           "WHERE generated AND id IN (SELECT id FROM main.job)")


def _stage_dependencies(db, now: float) -> None:
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


def _check_cwd(cwd: str) -> str:
    try:  # a directory name that is not UTF-8 cannot be stored (nor shown) as text
        cwd.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"the working directory {cwd.encode('utf-8', 'surrogateescape')!r} "
                           "has a name that is not UTF-8; enqueue from another directory") from None
    return cwd


def _new_id() -> str:
    return os.urandom(6).hex()


def _environment(env: dict[str, str]) -> tuple[str, str]:
    data = json.dumps(env, sort_keys=True)
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest(), data


def check_cwd(cwd: str) -> str:
    """A working directory a job (or a schedule's jobs) may be given: one whose name is UTF-8."""
    return _check_cwd(cwd)


def save_environment(env: dict[str, str]) -> str:
    """Store ``env`` once (jobs and schedules share environments); its digest. The caller
    holds the write transaction."""
    digest, data = _environment(env)
    Environment.insert(digest=digest, data=data).on_conflict_ignore().execute()
    return digest


def job_environment(job: Job) -> dict[str, str]:
    if job.env_digest is None:
        return {}
    row = Environment.get_or_none(Environment.digest == job.env_digest)
    return json.loads(row.data) if row else {}


# --- workers ---------------------------------------------------------------------------------

class Fenced(QueueError):
    """The job is no longer held by this claim (recovered, maybe claimed again meanwhile)."""


class Unregistered(Fenced):
    """The worker's row is gone: it was presumed lost and its jobs taken back. It may claim
    nothing more under that id (a job claimed so would look abandoned to every recovery, and
    run twice); it registers again under a new one."""


def register_worker(queues: list[str] | None = None, *, pid: int | None = None,
                    now: float | None = None) -> Worker:
    """A new worker row under an id no worker ever had (taken from a counter in ``meta``): a
    worker presumed lost whose row was deleted can then never update, nor be mistaken for, a
    newer one, and every job and attempt names exactly one worker process."""
    now = time.time() if now is None else now
    pid = pid or os.getpid()
    with write_transaction():
        row = Meta.get_or_none(Meta.key == LAST_WORKER_ID)
        last = int(row.value) if row else (Worker.select(fn.MAX(Worker.id)).scalar() or 0)
        last = max(last, Worker.select(fn.MAX(Worker.id)).scalar() or 0) + 1
        Meta.insert(key=LAST_WORKER_ID, value=str(last)).on_conflict(
            conflict_target=[Meta.key], update={Meta.value: str(last)}).execute()
        return Worker.create(
            id=last, host=procs.hostname(), pid=pid, proc_started=procs.start_time(pid) or now,
            started_at=now, heartbeat_at=now, status=WorkerStatus.IDLE,
            queues=",".join(queues) if queues else None,
        )


def heartbeat(worker_id: int, *, status: str | None = None, current_job: str | None = None,
              now: float | None = None) -> bool:
    """Record that the worker is alive; False when its row is gone (it was presumed lost: the
    worker must register again, under a new id, since ids are never reused)."""
    now = time.time() if now is None else now
    values: dict[str, Any] = {"heartbeat_at": now}
    if status is not None:
        values["status"] = status
        values["current_job"] = current_job
    alive = Worker.update(**values).where(Worker.id == worker_id).execute() == 1
    fold()  # PostgreSQL: the sessions' count rows into one per key (a try-lock; else nothing)
    return alive


def unregister_worker(worker_id: int) -> None:
    Worker.delete().where(Worker.id == worker_id).execute()


#: Process states of a worker that cannot be working: frozen (SIGSTOP, Ctrl+Z, a debugger) or
#: exited. Any other state (running, sleeping, waiting on disk) is a worker at work.
_NOT_RUNNING = ("stopped", "tracing-stop", "zombie", "dead")  # psutil.STATUS_* names


def worker_alive(worker: Worker, *, now: float | None = None, lease: float | None = None) -> bool:
    """Is this worker alive (so its job must be left alone)?

    On this host: lost when its process (PID and start time) is gone; alive while that process
    runs normally, even if its heartbeat is older than the lease (on the same host a late
    heartbeat means a write lock held by someone else or CPU starvation, not a dead worker:
    killing its job would be wrong); lost when the heartbeat is older than the lease AND the
    process is not running normally (stopped by SIGSTOP/Ctrl+Z, a zombie).
    On another host, where its process cannot be seen: alive = heartbeat within the lease.
    """
    now = time.time() if now is None else now
    lease = settings.get("lease") if lease is None else lease
    late = now - worker.heartbeat_at > lease
    if worker.host != procs.hostname():
        return not late
    status = procs.process_status(worker.pid, worker.proc_started)
    if status is None:
        return False
    return not late or status not in _NOT_RUNNING


def busy(worker: Worker) -> bool:
    """Running a job: busy, or stopping (after a normal stop) while it finishes its job."""
    return worker.status == WorkerStatus.BUSY or (worker.status == WorkerStatus.STOPPING
                                                  and worker.current_job is not None)


def live_workers(now: float | None = None) -> list[Worker]:
    lease = settings.get("lease")
    return [w for w in Worker.select().order_by(Worker.id) if worker_alive(w, now=now, lease=lease)]


# --- claim and finish ------------------------------------------------------------------------

def claim(worker: Worker, *, now: float | None = None) -> tuple[Job, Attempt] | None:
    """Atomically take the next due job for this worker, or None when nothing is due."""
    now = time.time() if now is None else now
    with write_transaction(hot=True, claiming=_queues_of(worker)):
        claimed = _claim(worker, now)
        # an empty poll writes nothing (a commit would wake every idle worker)
        if claimed and not _set_worker(worker.id, claimed[0].id, now):
            raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
    return claimed


def finish(job: Job, attempt: Attempt, *, outcome: str, exit_code: int | None = None,
           error: str | None = None, tail: str | None = None, now: float | None = None,
           max_backoff: float | None = None) -> str | None:
    """Record how an attempt ended and move the job on. Returns the job's new state, or None
    when the job is no longer held by this attempt's claim (recovered meanwhile, perhaps
    claimed again): then nothing changes.

    outcome: completed | failed | timeout | lost (retry path), interrupted (back to pending,
    the run does not count), cancelled (straight to the DLQ).
    """
    now = time.time() if now is None else now
    if max_backoff is None:
        max_backoff = settings.get("max_backoff")
    with write_transaction(hot=True):
        state = _finish(job, attempt, outcome, exit_code, error, tail, now, max_backoff)
        if state is not None and attempt.worker_id is not None:
            _set_worker(attempt.worker_id, None, now)
    return state


def finish_and_claim(job: Job, attempt: Attempt, worker: Worker, *, outcome: str,
                     exit_code: int | None, error: str | None, tail: str | None,
                     max_backoff: float, now: float | None = None, claim_next: bool = True,
                     cost: Any = None) -> tuple[str | None, tuple[Job, Attempt] | None]:
    """``finish`` this attempt and ``claim`` the worker's next job in one transaction (see
    ``settle``, which this is for one job). ``cost`` (a ``usage.Cost``) is what the attempt's
    tree used, recorded with its end."""
    states, claimed = settle(worker, [Ended(job, attempt, outcome, exit_code, error, tail, cost)],
                             claim=1 if claim_next else 0, max_backoff=max_backoff, now=now)
    return states[0], claimed[0] if claimed else None


class Ended(NamedTuple):
    """An attempt that ran to its end, as a worker reports it."""

    job: Job
    attempt: Attempt
    outcome: str
    exit_code: int | None = None
    error: str | None = None
    tail: str | None = None
    cost: Any = None  # a usage.Cost, or None when nothing ran
    at: float | None = None  # when it ended (recorded later, with others): else the record's time


def settle(worker: Worker, ended: Sequence[Ended] = (), *, claim: int = 0,
           hand_back: Sequence[tuple[Job, Attempt]] = (), next_job: str | None = None,
           max_backoff: float, now: float | None = None
           ) -> tuple[list[str | None], list[tuple[Job, Attempt]]]:
    """A worker's bookkeeping in one write transaction: record the attempts that ``ended``,
    give back the jobs it holds but has not started (``hand_back``), and claim up to ``claim``
    more. A worker draining short jobs takes the write lock once per few jobs, not once per
    job. The worker row says it is on ``next_job`` (the first held job it will run), or on the
    first one claimed here. Returns the ended jobs' new states (None: taken back meanwhile)
    and the claims, best first. Raises Unregistered, and changes nothing, when it would claim
    for a worker whose row is gone."""
    now = time.time() if now is None else now
    sqlite = is_sqlite()
    with write_transaction(hot=True, claiming=_queues_of(worker) if claim else None):
        if sqlite:
            states = [_finish(e.job, e.attempt, e.outcome, e.exit_code, e.error, e.tail,
                              now if e.at is None else e.at, max_backoff, e.cost) for e in ended]
        else:  # PostgreSQL: the batch's ends in one statement, its claims in another
            states = _finish_batch(ended, now, max_backoff)
        for job, attempt in hand_back:
            _hand_back(job, attempt, now)
        claimed: list[tuple[Job, Attempt]] = []
        wrote = bool(ended or hand_back or next_job)
        if not sqlite and claim:  # the worker's row is marked in the claim's statement
            claimed, marked = _claim_batch(worker, now, claim, mark=(next_job, wrote))
            if claimed and not marked:
                raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
            return states, claimed
        while len(claimed) < claim:
            got = _claim(worker, now)
            if got is None:
                break
            claimed.append(got)
        current = next_job or (claimed[0][0].id if claimed else None)
        # An empty look for work writes nothing: its commit would wake every idle worker and
        # waiter, whose own empty looks would wake this one (heartbeats say alive).
        if ((wrote or claimed) and not _set_worker(worker.id, current, now) and claimed):
            raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
    return states, claimed


# The claim, finish and process-record statements are the per-job hot path of every worker:
# on SQLite they are fixed SQL on the connection (the ORM built them inside the write lock,
# ~1.2 ms of CPU per job), and the claim names its partial index, which the planner would not
# pick on its own (a scan and sort of every pending row: 16 ms at 100k pending, 3.5 us here).
_JOB_COLUMNS = ("seq", "id", "command", "queue", "state", "priority", "attempts", "max_retries",
                "backoff_base", "timeout", "run_at", "created_at", "updated_at", "started_at",
                "cwd", "env_digest", "worker_id", "claim_token")
# The queues a worker may take from right now: those with waiting jobs (job_count, a few rows),
# not paused (a queue's own flag, else the "every queue" flag in meta), under their limit
# (their running jobs, also from job_count), and among the worker's queues (?2: a JSON list, or
# NULL for every queue). The claim and the idle sleep then probe each such queue's head in its
# own index: one step per queue, however many jobs a paused or full queue holds.
_OPEN_QUEUES = (
    "SELECT c.queue AS name FROM (SELECT DISTINCT queue FROM job_count "
    "WHERE state IN ('pending', 'failed') AND n > 0) c LEFT JOIN queue q ON q.name = c.queue "
    "WHERE NOT COALESCE(q.paused, (SELECT value = '1' FROM meta WHERE key = 'paused_all'), 0) "
    "AND (q.max_running IS NULL OR q.max_running > COALESCE((SELECT r.n FROM job_count r "
    "WHERE r.queue = c.queue AND r.state = 'processing'), 0)) "
    "AND (?2 IS NULL OR c.queue IN (SELECT value FROM json_each(?2)))")
# The claim and the idle look for work also return the settings' version (settings.py), read
# in the same statement: a worker reloads its settings when it changed, at no extra round trip.
_SETTINGS_VERSION = "(SELECT value FROM meta WHERE key = '" + VERSION_KEY + "')"
_CLAIM = ("UPDATE job SET state = 'processing', attempts = attempts + 1, worker_id = ?3, "
          "started_at = ?1, finished_at = NULL, updated_at = ?1, cancel_requested = 0, "
          "claim_token = ?4 WHERE seq = (SELECT seq FROM job WHERE seq IN (SELECT "
          "(SELECT seq FROM job INDEXED BY job_claim WHERE queue = o.name AND " + CLAIMABLE_WHERE
          + " AND run_at <= ?1 ORDER BY rank DESC, run_at, seq LIMIT 1) FROM (" + _OPEN_QUEUES
          + ") o) ORDER BY rank DESC, run_at, seq LIMIT 1) RETURNING " + ", ".join(_JOB_COLUMNS)
          + ", " + _SETTINGS_VERSION)
_NEXT_NUMBER = "SELECT COALESCE(MAX(number), 0) + 1 FROM attempt WHERE job_seq = ?"
_NEW_ATTEMPT = ("INSERT INTO attempt (job_seq, number, worker_id, host, started_at, log_file, "
                "claim_token, due_at, queue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq")
_FINISH_JOB = (
    "UPDATE job SET state = ?, run_at = COALESCE(?, run_at), attempts = attempts - ?, "
    "finished_at = ?, last_error = ?, exit_code = ?, output_tail = COALESCE(?, output_tail), "
    "updated_at = ?, started_at = ?, worker_id = NULL, cancel_requested = 0, claim_token = NULL "
    "WHERE seq = ? AND state = 'processing' AND claim_token IS ?"
)
_FINISH_ATTEMPT = ("UPDATE attempt SET finished_at = ?, exit_code = ?, outcome = ?, error = ?, "
                   "started_at = ?, duration = ?, pid = COALESCE(pid, ?), "
                   "pid_started = COALESCE(pid_started, ?), cpu_seconds = ?, peak_rss_bytes = ?, "
                   "processes = ? WHERE seq = ? AND outcome IS NULL")
_SET_WORKER = ("UPDATE worker SET status = CASE WHEN status = 'stopping' THEN status "
               "WHEN CAST(? AS TEXT) IS NULL THEN 'idle' ELSE 'busy' END, current_job = ?, "
               "heartbeat_at = ? WHERE id = ?")


def _sql(text: str) -> str:
    """The hot-path statements are written for SQLite; other drivers take %s parameters (and
    PostgreSQL a boolean for a boolean column)."""
    if is_sqlite():
        return text
    return (text.replace(" IS ?", " IS NOT DISTINCT FROM ?").replace("?", "%s")
            .replace("cancel_requested = 0", "cancel_requested = false"))


def _hot(text: str, params: Sequence | dict = ()):
    """Run one of the per-job statements (written for SQLite, see ``_sql``). On PostgreSQL each
    is prepared once per connection and EXECUTEd after that: the server planned the claim
    anew each time, which cost as much as running it (0.3-0.4 ms). A statement the server
    cannot prepare runs as it is."""
    if is_sqlite():
        return database.execute_sql(text, params)
    sql = _sql(text)
    connection = database.connection()
    known = _prepared.setdefault(connection, {})
    if sql not in known:
        known[sql] = _prepare(sql, len(known))
    found = known[sql]
    if found is None:
        return database.execute_sql(sql, params)
    name, keys = found
    values = [params[key] for key in keys] if keys else list(params)
    return database.execute_sql(_EXECUTE[len(values)].replace("NAME", name), values)


def _prepare(sql: str, number: int) -> tuple[str, list[str]] | None:
    """PREPARE ``sql`` as queuectl_hot_N: its %s or %(key)s markers become $1, $2...; returns
    the name and the keys in order (empty for positional markers), or None if refused. A
    prepared statement outlives the transaction it was made in, even a rolled-back one; a
    refusal is undone by a savepoint so that it never aborts the caller's transaction."""
    keys: list[str] = []
    positions = 0

    def marker(match: re.Match) -> str:
        nonlocal positions
        key = match.group(1)
        if key is None:
            positions += 1
            return f"${positions}"
        if key not in keys:
            keys.append(key)
        return f"${keys.index(key) + 1}"

    body = re.sub(r"%(?:\((\w+)\))?s", marker, sql)
    name = f"queuectl_hot_{number}"
    inside = database.in_transaction()
    try:
        if inside:
            database.execute_sql("SAVEPOINT queuectl_prepare")
        database.execute_sql(_PREPARE.replace("NAME", name) + body)
        if inside:
            database.execute_sql("RELEASE SAVEPOINT queuectl_prepare")
    except DatabaseError:
        if inside:
            database.execute_sql("ROLLBACK TO SAVEPOINT queuectl_prepare")
        return None
    return name, keys


_prepared: WeakKeyDictionary = WeakKeyDictionary()  # connection -> {statement: (name, keys)}
_PREPARE = "PREPARE NAME AS "
_EXECUTE = ["EXECUTE NAME"] + ["EXECUTE NAME (" + ", ".join(["%s"] * n) + ")"
                               for n in range(1, 20)]


# PostgreSQL's claim (pgsql.py): claimers run side by side; the head of each open queue is
# locked with SKIP LOCKED, so that a row another claimer holds is passed over rather than
# waited for; a limited queue is open only to the claimer holding its lock.
_PG_NEXT_DUE = ("SELECT MIN((SELECT run_at FROM job WHERE queue = o.name AND " + CLAIMABLE_WHERE
                + " ORDER BY run_at LIMIT 1)), " + _SETTINGS_VERSION + " FROM ("
                + OPEN_QUEUES + ") o")


def _queues_of(worker: Worker) -> list[str]:
    return worker.queues.split(",") if worker.queues else []


def _limited_held(queues: list[str]) -> list[str]:
    """PostgreSQL: the limited queues this transaction may claim from (their locks taken with
    its BEGIN, or now: a claim in a transaction not opened for claiming)."""
    held = held_limited()
    if held is None:
        held = list(database.execute_sql(CLAIM_LOCKS, {"queues": queues or None})
                    .fetchone()[1])
        set_held_limited(held)
    return held


def _claim(worker: Worker, now: float) -> tuple[Job, Attempt] | None:
    """The next due job, claimed; its attempt carries ``settings_version``, the settings'
    version as of this claim (the worker runs it under those settings or newer ones)."""
    if not is_sqlite():
        claimed = _claim_batch(worker, now, 1)[0]
        return claimed[0] if claimed else None
    import secrets  # here: it loads hmac and random, which nothing else at start-up needs
    token = secrets.randbits(63)
    queues = worker.queues.split(",") if worker.queues else []
    wanted = json.dumps(queues) if queues else None  # one statement for any queue list
    rows = database.execute_sql(_CLAIM, (now, wanted, worker.id, token)).fetchall()
    if not rows:
        return None
    *columns, version = rows[0]
    job = Job(**dict(zip(_JOB_COLUMNS, columns, strict=True)))
    number = _hot(_NEXT_NUMBER, (job.seq,)).fetchone()[0]
    log_file = log_name(job.id, job.seq, number)
    seq = _hot(_NEW_ATTEMPT, (job.seq, number, worker.id, worker.host, now,
                                                    log_file, token, job.run_at, job.queue)
                                ).fetchall()[0][0]
    attempt = Attempt(seq=seq, job=job.seq, number=number, worker_id=worker.id, host=worker.host,
                      started_at=now, log_file=log_file, claim_token=token, due_at=job.run_at,
                      queue=job.queue)
    attempt.settings_version = version
    return job, attempt


#: Characters a job id keeps in its log file's name; every other one is written %XX (UTF-8).
_LOG_NAME_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_LOG_NAME_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_LOG_NAME_ID_MAX = 100  # characters of the escaped id; the name stays far below NAME_MAX


def log_name(job_id: str, seq: int, number: int) -> str:
    """``ID@SEQ-ATTEMPT.log``: the job's id first, so that a file is found by its job (the
    names once were ``job{seq}-{n}.log``, which read like the log of a job named ``job1``).
    The id is made safe (``/``, ``@``, ``%``, spaces, a leading dot... written ``%XX``) and cut
    at 100 characters; the internal number after ``@`` (never part of an escaped id) keeps
    two jobs' names apart. Old attempts keep the name their row records."""
    if not _LOG_NAME_PLAIN.fullmatch(job_id):
        safe = "".join(ch if ch in _LOG_NAME_SAFE else "".join(
            f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogateescape")) for ch in job_id)
        if safe.startswith("."):
            safe = "%2E" + safe[1:]
        if len(safe) > _LOG_NAME_ID_MAX:
            safe = safe[:_LOG_NAME_ID_MAX]
            cut = safe.rfind("%", len(safe) - 2)  # not inside an escape
            safe = safe[:cut] if cut != -1 else safe
        job_id = safe
    return f"{job_id}@{seq}-{number}.log"


def _claim_batch(worker: Worker, now: float, n: int,
                 mark: tuple[str | None, bool] | None = None
                 ) -> tuple[list[tuple[Job, Attempt]], bool]:
    """PostgreSQL: up to ``n`` due jobs and their attempts, best first, in one statement
    (pgsql.CLAIM_BATCH); each claim's token is distinct. ``mark`` (the job the worker is on,
    whether it recorded something): the worker's row is set as ``_set_worker`` would, in the
    same statement. Returns the claims and whether the worker's row was marked."""
    import secrets
    queues = _queues_of(worker)
    args = {"now": now, "queues": queues or None, "worker": worker.id, "host": worker.host,
            "token": secrets.randbits(62), "n": n, "limited": _limited_held(queues),
            "mark": mark is not None, "next": mark[0] if mark else None,
            "wrote": bool(mark and mark[1])}
    claimed, marked = [], False
    for *columns, seq, number, log_file, version, marks in _hot(CLAIM_BATCH, args).fetchall():
        marked = marks > 0
        job = Job(**dict(zip(_JOB_COLUMNS, columns, strict=True)))
        attempt = Attempt(seq=seq, job=job.seq, number=number, worker_id=worker.id,
                          host=worker.host, started_at=now, log_file=log_file,
                          claim_token=job.claim_token, due_at=job.run_at, queue=job.queue)
        attempt.settings_version = version
        claimed.append((job, attempt))
    return claimed, marked


def _next_state(job: Job, outcome: str, error: str | None, now: float, max_backoff: float
                ) -> tuple[str, float | None, float | None, int, str | None]:
    """Where an attempt's end takes its job: (state, new run_at or None, finished_at, the retry
    given back (0/1), last error)."""
    run_at, finished_at, given_back = None, now, 0
    if outcome == Outcome.COMPLETED:
        state, error = COMPLETED, None
    elif outcome == Outcome.INTERRUPTED:
        state, run_at, finished_at, given_back = PENDING, now, None, 1
    elif outcome == Outcome.CANCELLED:
        state, error = DEAD, error or "cancelled"
    elif job.attempts > job.max_retries:
        state = DEAD
    else:
        state = FAILED
        run_at = now + backoff_delay(job.backoff_base, job.attempts, max_backoff)
    return state, run_at, finished_at, given_back, error


def _finish_batch(ended: Sequence[Ended], now: float, max_backoff: float) -> list[str | None]:
    """PostgreSQL: ``_finish`` of every attempt that ended, in one statement
    (pgsql.FINISH_BATCH); then the dependents of those that died go to the DLQ."""
    if not ended:
        return []
    columns: dict[str, list] = {key: [] for key in (
        "seq", "token", "state", "run_at", "given", "finished", "error", "code", "tail", "now",
        "started", "attempt", "outcome", "pid", "pid_started", "cpu", "rss", "procs")}
    states = []
    for e in ended:
        at = now if e.at is None else e.at
        state, run_at, finished_at, given_back, error = _next_state(
            e.job, e.outcome, e.error, at, max_backoff)
        states.append(state)
        cost = e.cost
        for key, value in (
                ("seq", e.job.seq), ("token", e.attempt.claim_token), ("state", state),
                ("run_at", run_at), ("given", given_back), ("finished", finished_at),
                ("error", error), ("code", e.exit_code), ("tail", e.tail), ("now", at),
                ("started", e.attempt.started_at), ("attempt", e.attempt.seq),
                ("outcome", e.outcome), ("pid", e.attempt.pid),
                ("pid_started", e.attempt.pid_started),
                ("cpu", None if cost is None else cost.cpu_seconds),
                ("rss", None if cost is None else cost.peak_rss_bytes),
                ("procs", None if cost is None else cost.processes)):
            columns[key].append(value)
    done = {seq for (seq,) in _hot(FINISH_BATCH, columns).fetchall()}
    result = [state if e.job.seq in done else None for e, state in zip(ended, states, strict=True)]
    dead = [e.job.seq for e, state in zip(ended, result, strict=True) if state == DEAD]
    if dead:
        fail_dependents(dead, now=now)
    return result


def _finish(job: Job, attempt: Attempt, outcome: str, exit_code: int | None, error: str | None,
            tail: str | None, now: float, max_backoff: float, cost: Any = None) -> str | None:
    """The job's next state from the claim's own copy of it: nobody changes a job while it is
    processing (edits, retries and deletes refuse), and the fence below makes sure it still is."""
    state, run_at, finished_at, given_back, error = _next_state(job, outcome, error, now,
                                                                max_backoff)
    cursor = _hot(_FINISH_JOB, (
        state, run_at, given_back, finished_at, error, exit_code, tail, now, attempt.started_at,
        job.seq, attempt.claim_token))
    if cursor.rowcount != 1:
        return None
    figures = ((None, None, None) if cost is None else
               (cost.cpu_seconds, cost.peak_rss_bytes, cost.processes))
    _hot(_FINISH_ATTEMPT, (now, exit_code, outcome, error,
                                                 attempt.started_at,
                                                 max(0.0, now - attempt.started_at), attempt.pid,
                                                 attempt.pid_started, *figures, attempt.seq))
    # A completed job's dependents are released by the trigger job_release (db.py), in this
    # transaction, so the claim that follows may take them.
    if state == DEAD:
        fail_dependents([job.seq], now=now)
    return state


# A held job goes back as it was before the claim: its charge undone, the attempt row that was
# never used deleted, and its times those of its last real run.
_HAND_BACK_JOB = (
    "UPDATE job SET state = ?, attempts = attempts - 1, worker_id = NULL, claim_token = NULL, "
    "updated_at = ?, "
    "started_at = (SELECT MAX(started_at) FROM attempt WHERE job_seq = ? AND seq <> ?), "
    "finished_at = (SELECT MAX(finished_at) FROM attempt WHERE job_seq = ? AND seq <> ?) "
    "WHERE seq = ? AND state = 'processing' AND claim_token IS ?")
_DROP_ATTEMPT = "DELETE FROM attempt WHERE seq = ? AND outcome IS NULL"


def _hand_back(job: Job, attempt: Attempt, now: float) -> None:
    """Un-claim a job whose command never started (a worker held it behind another job). One
    cancelled meanwhile is not handed back but ends as cancelled, as it would have at its start."""
    asked = _hot("SELECT cancel_requested FROM job WHERE seq = ? AND claim_token IS ?",
                 (job.seq, attempt.claim_token)).fetchone()
    if asked is None:
        return  # taken back already
    if asked[0]:
        _finish(job, attempt, Outcome.CANCELLED, None, "cancelled", None, now, 0.0)
        return
    state = FAILED if job.attempts > 1 else PENDING  # a job that failed before waits as failed
    cursor = _hot(_HAND_BACK_JOB, (
        state, now, job.seq, attempt.seq, job.seq, attempt.seq, job.seq, attempt.claim_token))
    if cursor.rowcount == 1:
        _hot(_DROP_ATTEMPT, (attempt.seq,))


#: Jobs sent to the DLQ per write transaction when a job others wait on dies or is deleted: a
#: chain of 10,000 behind one job held the write lock 5-15 s in one transaction; in steps of at
#: most this many jobs and CASCADE_SECONDS (on a loaded machine a job costs milliseconds: its
#: counts and rollups change with it), every other writer gets in between, and each step
#: leaves the queue whole.
CASCADE_STEP = 64
CASCADE_SECONDS = 0.05
#: meta key, "1" while a cascade that needed more than one step may not be finished: set in
#: its first step, removed by the step that finds nothing left; recovery finishes one left by
#: a crash (``finish_cascades``).
CASCADE_PENDING = "cascade_pending"


def fail_dependents(seqs: list[int], *, now: float) -> list[str]:
    """Jobs waiting on any of ``seqs`` (which ended dead or are being deleted) go to the DLQ,
    and so do the jobs waiting on those, and so on. The caller holds the write transaction;
    this takes up to CASCADE_STEP jobs in it, and if more wait, the rest follows in steps of
    their own once it has committed (before the caller returns: no job is left waiting on a
    dead one). Returns the ids sent to the DLQ in the caller's transaction."""
    sent, frontier = _fail_step(seqs, now=now, budget=CASCADE_STEP)
    if frontier:
        Meta.insert(key=CASCADE_PENDING, value="1").on_conflict(
            conflict_target=[Meta.key], update={Meta.value: "1"}).execute()
        after_commit(lambda: finish_cascades(frontier))
    return sent


def finish_cascades(frontier: list[int] | None = None) -> int:
    """Send to the DLQ, CASCADE_STEP at a time (a write transaction each), every job still
    waiting on a dead or deleted job: the dependents of ``frontier`` (the jobs a step left),
    then any others a scan finds (a cascade cut short by a crash). The step that finds none
    left clears CASCADE_PENDING. Returns how many were sent."""
    total, first = 0, True
    while True:
        if not first:
            time.sleep(0.002)  # the writers that queued meanwhile go first (the lock is free)
        first = False
        with write_transaction():
            now = time.time()
            sent, frontier = _fail_step(frontier, now=now, budget=CASCADE_STEP, broken=True)
            if not sent and not frontier:
                sent, frontier = _fail_step(None, now=now, budget=CASCADE_STEP, broken=True)
            total += len(sent)
            if not sent and not frontier:
                Meta.delete().where(Meta.key == CASCADE_PENDING).execute()
                return total


def cascade_pending() -> bool:
    return Meta.select().where(Meta.key == CASCADE_PENDING).exists()


def _fail_step(seqs: list[int] | None, *, now: float, budget: int,
               broken: bool = False) -> tuple[list[str], list[int]]:
    """Up to ``budget`` jobs that wait on one of ``seqs``, then on those, … go to the DLQ.
    Returns their ids and the seqs whose waiting dependents are not all handled yet (empty
    when done). ``broken``: only dependencies that are dead or deleted now, matched by seq and
    id (a later step: a job may have been retried meanwhile, and a deleted job's seq given to
    a new one); ``seqs`` None then means every such dependency (a scan)."""
    sent: list[str] = []
    frontier = list(seqs) if seqs is not None else None
    until = time.monotonic() + CASCADE_SECONDS
    while frontier is None or frontier:
        room = budget - len(sent)
        if room <= 0 or (sent and time.monotonic() >= until):
            return sent, frontier or []
        query = (Dependency.select(Dependency.job, Dependency.dep_id, Job.id)
                 .join(Job, on=(Job.seq == Dependency.job)).where(Job.state.in_(CLAIMABLE)))
        if frontier is not None:
            query = query.where(Dependency.dep_seq.in_(frontier))
        if broken:
            dep = Job.alias("dep")
            query = query.join_from(Dependency, dep, JOIN.LEFT_OUTER, on=(
                (dep.seq == Dependency.dep_seq) & (dep.id == Dependency.dep_id))).where(
                dep.seq.is_null() | (dep.state == DEAD))
        first: dict[int, tuple[str, str]] = {}
        more = False
        for job_seq, dep_id, job_id in query.tuples():
            if job_seq not in first and len(first) == room:
                more = True
                break
            first.setdefault(job_seq, (dep_id, job_id))
        for job_seq, (dep_id, job_id) in first.items():
            if Job.update(state=DEAD, last_error=f"dependency {dep_id} failed", finished_at=now,
                          updated_at=now).where(Job.seq == job_seq,
                                                Job.state.in_(CLAIMABLE)).execute():
                sent.append(job_id)
        if more:
            return sent, (frontier or []) + list(first)
        frontier = list(first)
    return sent, []


def _set_worker(worker_id: int, job_id: str | None, now: float) -> bool:
    """Busy with ``job_id``, or idle; a stopping worker stays stopping. False when the worker's
    row is gone."""
    return _hot(_SET_WORKER, (job_id, job_id, now, worker_id)).rowcount == 1


def record_process(attempt: Attempt, pid: int, started: float | None) -> None:
    """Remember the job's shell so that recovery can find and kill its tree. Raises Fenced
    (and the runner then never starts the command) when the claim is no longer current."""
    cursor = _hot(
        "UPDATE attempt SET pid = ?, pid_started = ? WHERE seq = ? AND outcome IS NULL AND "
        "job_seq IN (SELECT seq FROM job WHERE seq = ? AND state = 'processing' AND "
        "claim_token IS ?)", (pid, started, attempt.seq, attempt.job_seq, attempt.claim_token))
    if cursor.rowcount != 1:
        raise Fenced(f"attempt {attempt.number} of job seq {attempt.job_seq} was taken back")


class ProcessJournal:
    """Where a worker notes each job's shell before the command may run: one small file per
    worker process beside the logs, a ring of fixed-size records written in place (one
    ``pwrite`` per job), rather than a database commit on the worker's hot path (that commit,
    with its wait for the write lock, halved the drain rate of two workers). Recovery on this
    host reads it back (``noted_process``); the database gets the PID from the heartbeat
    thread (``record_process``) and, at the latest, with the attempt's end. The ring is longer
    than the attempts a worker may have ended but not yet recorded (its batch) plus the one it
    runs, so no note is overwritten before the database has the attempt's end."""

    def __init__(self) -> None:
        me, started = os.getpid(), procs.start_time(os.getpid())
        # Named by PID and start time: a PID reused later never takes over a journal that
        # recovery may still need.
        self.path = logs_dir() / f"worker{me}-{int((started or 0) * 100)}.pids"
        self.owner = f"{me} {started!r}"
        self.fd = create_private_file(self.path)
        self.notes = 0

    def note(self, attempt: Attempt, pid: int, started: float | None) -> None:
        # By claim token as well as attempt seq: seqs (and numbers) are given again after
        # ``clear``/``delete``, so a note of an old attempt, still in a live worker's ring, could
        # otherwise be taken for a new attempt's and send recovery to a long-gone process.
        record = f"{attempt.seq} {attempt.claim_token} {pid} {started!r} {self.owner}\n"
        slot = self.notes % _JOURNAL_SLOTS
        os.pwrite(self.fd, record.ljust(_JOURNAL_RECORD).encode(), slot * _JOURNAL_RECORD)
        self.notes += 1

    def close(self) -> None:
        os.close(self.fd)
        try:
            self.path.unlink()
        except OSError:
            pass


_JOURNAL_RECORD = 128
_JOURNAL_SLOTS = 64  # > worker.BATCH_MAX + 1


#: How much earlier than its attempt's claim a noted process may seem to have started: process
#: start times are the boot time (whole seconds) plus clock ticks, claim times the wall clock.
_START_SLACK = 2.0


def noted_process(attempt: Attempt) -> tuple[int, float | None] | None:
    """The process a worker of this host noted for this attempt (this claim: its token), or
    None if it never noted one (the command never ran). A process that started before the
    attempt was claimed cannot be its job, whatever the note says (a note of the previous
    format, which has no token, is only trusted that far)."""
    for _path, notes, _owner in _journals():
        found = notes.get((attempt.seq, attempt.claim_token)) or notes.get((attempt.seq, None))
        if found is None:
            continue
        pid, started = found
        if (started is not None and attempt.started_at is not None
                and started < attempt.started_at - _START_SLACK):
            continue  # an older run's process (its attempt seq given again since)
        return found
    return None


def drop_dead_journals() -> None:
    """Remove the journals of worker processes that are gone once their last attempt has been
    recovered (a SIGKILLed worker cannot remove its own). The notes that decide it are read
    after the owner was found gone: read before, they could miss one the owner wrote just
    before it died, and its job, which ran, would then be recovered as never started."""
    for path, _notes, (owner, owner_started) in _journals():
        if procs.same_process(owner, owner_started) is not None:
            continue
        read = _read_journal(path)
        if read is None:
            continue
        notes = read[0]
        tokens = [token for _, token in notes if token is not None]
        seqs = [seq for seq, token in notes if token is None]
        if (Attempt.select().where(Attempt.claim_token.in_(tokens or [None]),
                                   Attempt.outcome.is_null()).exists()
                or Attempt.select().where(Attempt.seq.in_(seqs or [None]),
                                          Attempt.outcome.is_null()).exists()):
            continue
        try:
            path.unlink()
        except OSError:
            pass


def _journals() -> Iterator[tuple[Path, dict[tuple[int, int | None], tuple[int, float | None]],
                                  tuple[int, float | None]]]:
    """(path, {(attempt seq, claim token): (job pid, its start time)}, (worker pid, its start
    time)) of each worker journal here that can be read. A record without a token (written by
    the previous version) has None for it."""
    for path in logs_dir().glob("worker*.pids"):
        read = _read_journal(path)
        if read is not None:
            yield path, *read


def _read_journal(path: Path) -> tuple[dict[tuple[int, int | None], tuple[int, float | None]],
                                        tuple[int, float | None]] | None:
    """A journal's notes and owner, or None if it cannot be read or holds no note."""
    def when(text: str) -> float | None:
        return None if text == "None" else float(text)

    try:
        data = path.read_bytes()
    except OSError:
        return None
    notes, owner = {}, None
    for at in range(0, len(data), _JOURNAL_RECORD):
        try:
            fields = data[at:at + _JOURNAL_RECORD].split()
            if len(fields) == 5:  # seq pid started worker worker_started: no token
                fields.insert(1, b"None")
            seq, token, pid, started, worker, worker_started = fields
            notes[(int(seq), None if token == b"None" else int(token))] = (
                int(pid), when(started.decode()))
            owner = (int(worker), when(worker_started.decode()))
        except ValueError:
            continue  # a slot never written (zeros) or torn
    return None if owner is None else (notes, owner)


def set_paused(attempt: Attempt, paused: bool) -> None:
    """The worker saw its running job's shell stopped (paused) or running again: say so on the
    job, fenced on the claim (a job taken back meanwhile is not touched). Not a state: a paused
    job is still processing, and its worker still waits for it."""
    Job.update(paused_token=attempt.claim_token if paused else None).where(
        Job.seq == attempt.job_seq, Job.state == PROCESSING,
        Job.claim_token == attempt.claim_token).execute()


def current_attempt(job: Job) -> Attempt | None:
    """The attempt of a running job's current claim (None: not running, or not started)."""
    if job.state != PROCESSING or job.claim_token is None:
        return None
    return (Attempt.select().where(Attempt.job == job.seq, Attempt.claim_token == job.claim_token,
                                   Attempt.finished_at.is_null()).first())


def backoff_delay(base: float, failures: int, cap: float) -> float:
    try:
        return min(base ** failures, cap)
    except OverflowError:
        return cap


def cancel_requested(job: Job) -> bool:
    return bool(Job.select(Job.cancel_requested).where(Job.seq == job.seq).scalar())


# --- recovery --------------------------------------------------------------------------------

def recover_lost(*, now: float | None = None) -> list[str]:
    """Take back every job held by a worker that is gone; kill its process tree if it is here.

    A worker is gone when its row is missing or ``worker_alive`` says so. Each such job whose
    command started gets a failed attempt "worker lost" and follows the normal retry/DLQ path;
    one whose command never started goes back to pending as "interrupted", without using a
    retry. "Never started" is known only of a worker of this host whose process has exited:
    its job's shell runs the command only once the worker has noted the process (in its
    journal or the database), and a worker that has exited notes nothing more, so a journal
    read after that without the note is final. A worker presumed lost whose process still
    exists (stopped, or whose row is gone) or that runs on another host might still let its job
    start: its job is charged "worker lost" like one that ran (at least once).
    """
    now = time.time() if now is None else now
    lease = settings.get("lease")
    lost = {w.id: w for w in lost_workers(now=now, lease=lease)}
    if lost:
        free_locks(lost.values())  # before the first write here, which would wait for them
    here = procs.hostname()  # checked before any journal is read (see above)
    exited = {w.id for w in lost.values()
              if w.host == here and procs.process_status(w.pid, w.proc_started) is None}
    # Read the candidates to the end first: a SELECT left open across the loop pins an old
    # snapshot, and finish()'s BEGIN IMMEDIATE on it fails at once with "database is locked"
    # (SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out) whenever anyone committed.
    candidates = list(Job.select().where(Job.state == PROCESSING))
    recovered = []
    for job in candidates:
        if job.worker_id not in lost and Worker.select().where(Worker.id == job.worker_id).exists():
            continue
        # The attempt of the claim we read, not merely the latest: while this loop kills earlier
        # trees the job may have been recovered elsewhere and claimed again by a live worker,
        # whose run must be neither killed nor marked lost (finish is fenced on the token).
        attempt = (Attempt.select().where(Attempt.job == job.seq,
                                          Attempt.claim_token == job.claim_token)
                   .order_by(Attempt.number.desc()).first())
        if attempt is None:  # claimed by a worker that died before its attempt row existed
            Job.update(state=PENDING, worker_id=None, attempts=Job.attempts - 1,  # claim's +1
                       claim_token=None, updated_at=now).where(
                Job.seq == job.seq, Job.state == PROCESSING,
                Job.claim_token == job.claim_token).execute()
            continue
        local = attempt.host == procs.hostname()
        if attempt.pid is None and local:
            noted = noted_process(attempt)
            if noted is not None:
                attempt.pid, attempt.pid_started = noted
        if attempt.pid is None and local and job.worker_id in exited:
            # The command never started (the runner waits for its process to be noted):
            # nothing ran, nothing to kill, no retry used.
            outcome = Outcome.CANCELLED if job.cancel_requested else Outcome.INTERRUPTED
            why = (
                "cancelled"
                if job.cancel_requested
                else "not started: worker lost before starting it"
            )
            if finish(job, attempt, outcome=outcome, error=why, now=now) is not None:
                recovered.append(job.id)
            continue
        if local:
            procs.kill_tree(attempt.pid, attempt.pid_started)
        worker = lost.get(job.worker_id)
        why = "worker lost"
        if worker is not None:
            silent = now - worker.heartbeat_at
            why += (f" (worker {worker.id}, pid {worker.pid} on {worker.host}: "
                    + (f"no heartbeat for {silent:.0f}s)" if silent > lease else "process gone)"))
        if attempt.pid is None and local:
            why += " before its job's process was noted; it may have started"
        # A cancel asked of a worker that was gone already: recovery carries it out.
        outcome, why = ((Outcome.CANCELLED, "cancelled") if job.cancel_requested
                        else (Outcome.LOST, why))
        if finish(job, attempt, outcome=outcome, error=why, now=now) is not None:
            recovered.append(job.id)
    if lost:
        Worker.delete().where(Worker.id.in_(list(lost))).execute()
        drop_dead_journals()
    if cascade_pending():  # a cascade cut short (its process died between two steps)
        finish_cascades()
    return recovered


def lost_workers(*, now: float | None = None, lease: float | None = None) -> list[Worker]:
    """The worker rows ``worker_alive`` says are lost (a read: no write lock needed)."""
    lease = settings.get("lease") if lease is None else lease
    return [w for w in Worker.select() if not worker_alive(w, now=now, lease=lease)]


def free_locks(workers: Iterable[Worker]) -> list[int]:
    """Kill the processes of these lost workers that run on this host and still hold a write
    lock of the SQLite database (SQLite's own, or the writers' lock): a worker frozen (SIGSTOP,
    Ctrl+Z) inside its write transaction keeps both, and every writer, recovery's own writes
    included, would wait for it in vain. Such a worker is lost already (frozen past the lease),
    is known by PID and start time (no other process is ever signalled), and dies with its
    locks; one frozen outside a transaction holds none and is left to resume (it is fenced
    out). Returns the PIDs killed. PostgreSQL ends a session idle in a transaction itself."""
    here = [w for w in workers if w.host == procs.hostname()]
    if not here or not is_sqlite():
        return []
    holders = lock_holders()
    killed = []
    for worker in here:
        if worker.pid in holders and procs.process_status(worker.pid, worker.proc_started):
            procs.kill_tree(worker.pid, worker.proc_started, search=False)
            killed.append(worker.pid)
    return killed


# --- operator actions ------------------------------------------------------------------------

def get_job(job_id: str) -> Job:
    job = Job.get_or_none(Job.id == job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}")
    return job


def retry(job_id: str, *, now: float | None = None) -> Job:
    """Run a failed job now, or bring a dead one back from the DLQ."""
    job = get_job(job_id)
    if job.state == DEAD:
        return dlq_retry([job_id], now=now)[0]
    if job.state != FAILED:
        raise QueueError(f"job {job_id!r} is {job.state}; only failed or dead jobs can be retried")
    now = time.time() if now is None else now
    with write_transaction():
        Job.update(run_at=now, updated_at=now).where(
            Job.seq == job.seq, Job.state == FAILED
        ).execute()
        _settle([job.seq], now=now)  # its dependencies are checked again
    return get_job(job_id)


def dlq_retry(
    job_ids: list[str] | None = None,
    *,
    all_dead: bool = False,
    timeout: float | None = None,
    max_retries: int | None = None,
    now: float | None = None,
    no_timeout: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Job]:
    """Move dead jobs back to pending with their attempts reset (``timeout``: a new time
    limit; ``no_timeout``: none at all; ``progress`` hears how many moved, chunk by chunk)."""
    now = time.time() if now is None else now
    values: dict[str, Any] = {"state": PENDING, "attempts": 0, "run_at": now, "updated_at": now,
                              "finished_at": None, "last_error": None, "exit_code": None,
                              "cancel_requested": False}
    if timeout is not None or no_timeout:
        values["timeout"] = timeout
    if max_retries is not None:
        values["max_retries"] = max_retries
    with write_transaction():
        if all_dead:
            seqs = [j.seq for j in Job.select(Job.seq).where(Job.state == DEAD)]
        else:
            seqs = []
            for job_id in job_ids or []:
                job = get_job(job_id)
                if job.state != DEAD:
                    raise QueueError(f"job {job_id!r} is {job.state}, not in the DLQ")
                seqs.append(job.seq)
        for chunk in chunked(seqs, IN_CHUNK):
            Job.update(**values).where(Job.seq.in_(chunk)).execute()
            if progress is not None:
                progress(len(chunk))
        _settle(seqs, now=now)  # their dependencies are checked again
    return [job for chunk in chunked(seqs, IN_CHUNK)
            for job in Job.select().where(Job.seq.in_(chunk))]


def cancel(job_id: str, *, now: float | None = None) -> Job:
    """Pending or failed: straight to the DLQ as "cancelled". Running: its worker is asked to
    kill the process tree, and records the cancellation itself."""
    now = time.time() if now is None else now
    job = get_job(job_id)
    if job.state in (PENDING, FAILED):
        with write_transaction():
            if (
                Job.update(state=DEAD, last_error="cancelled", finished_at=now, updated_at=now)
                .where(Job.seq == job.seq, Job.state.in_(CLAIMABLE))
                .execute()
            ):
                fail_dependents([job.seq], now=now)
    elif job.state == PROCESSING:
        Job.update(cancel_requested=True, updated_at=now).where(
            Job.seq == job.seq, Job.state == PROCESSING).execute()
    else:
        raise QueueError(f"job {job_id!r} is already {job.state}")
    return get_job(job_id)


def retry_many(job_ids: list[str], *, now: float | None = None) -> list[Job]:
    """``retry`` for several jobs in one transaction: every one of them, or none on an error."""
    with write_transaction():
        return [retry(job_id, now=now) for job_id in job_ids]


def cancel_many(job_ids: list[str], *, now: float | None = None) -> list[Job]:
    """``cancel`` for several jobs in one transaction: every one of them, or none on an error."""
    with write_transaction():
        jobs = [cancel(job_id, now=now) for job_id in job_ids]
    if any(job.state == PROCESSING for job in jobs):
        # A running job whose worker is already gone has nobody to carry the cancel out: recovery
        # does it now (it kills the job's tree and records it cancelled) instead of at next start.
        recover_lost(now=now)
        jobs = [get_job(job.id) for job in jobs]
    return jobs


def delete(job_ids: list[str]) -> int:
    """Delete jobs (not running ones), their attempts and their log files."""
    with write_transaction():
        jobs = [get_job(job_id) for job_id in job_ids]
        for job in jobs:
            if job.state == PROCESSING:
                raise QueueError(f"job {job.id!r} is running; cancel it first")
        return _delete_seqs([j.seq for j in jobs])


def clear(states: list[str] | None = None, *,
          progress: Callable[[int], None] | None = None) -> int:
    """Delete every job in the given states (default: all but running ones); ``progress``
    hears how many went, chunk by chunk."""
    states = [s for s in (states or NOT_RUNNING) if s != PROCESSING]
    with write_transaction():
        seqs = [j.seq for j in Job.select(Job.seq).where(Job.state.in_(states))]
        return _delete_seqs(seqs, progress)


def dlq_clear(*, progress: Callable[[int], None] | None = None) -> int:
    return clear([DEAD], progress=progress)


def _delete_seqs(seqs: list[int], progress: Callable[[int], None] | None = None) -> int:
    logs = logs_dir()
    chained = Dependency.select().exists()
    for chunk in chunked(seqs, IN_CHUNK):
        if chained:
            _unchain(chunk, now=time.time())
        for (name,) in Attempt.select(Attempt.log_file).where(Attempt.job.in_(chunk)).tuples():
            if name:
                try:
                    (logs / name).unlink()
                except OSError:
                    pass
        Attempt.delete().where(Attempt.job.in_(chunk)).execute()
        Job.delete().where(Job.seq.in_(chunk)).execute()
        if progress is not None:
            progress(len(chunk))
    # An environment holds the enqueuer's variables, secrets included: it goes with the last
    # job that refers to it (callers hold the write transaction, so no enqueue slips between).
    used = Job.select(Job.env_digest).where(Job.env_digest.is_null(False))
    Environment.delete().where(Environment.digest.not_in(used)).execute()
    return len(seqs)


def _unchain(seqs: list[int], *, now: float) -> None:
    """Before these jobs are deleted: the jobs waiting on one that had not completed go to the
    DLQ; the records of completed ones are dropped (they were met: a later retry of a job that
    waited on one must not find it missing and call it failed)."""
    done = [
        seq
        for (seq,) in Job.select(Job.seq).where(Job.seq.in_(seqs), Job.state == COMPLETED).tuples()
    ]
    if done:
        Dependency.delete().where(Dependency.dep_seq.in_(done)).execute()
    open_ = sorted(set(seqs) - set(done))
    if open_:
        fail_dependents(open_, now=now)


def restart(job_ids: list[str], *, now: float | None = None) -> list[Job]:
    """Completed or dead jobs back to pending with a fresh retry budget, all or none. Their
    attempts stay (numbering continues); their dependencies are checked again; the jobs still
    waiting on a restarted completed job wait for it again."""
    now = time.time() if now is None else now
    with write_transaction():
        jobs = [get_job(job_id) for job_id in job_ids]
        for job in jobs:
            if job.state not in (COMPLETED, DEAD):
                raise QueueError(f"job {job.id!r} is {job.state}; only completed or dead jobs "
                                 "can be restarted")
        seqs = list(dict.fromkeys(job.seq for job in jobs))
        done = [job.seq for job in jobs if job.state == COMPLETED]
        waiting = [
            seq
            for (seq,) in Dependency.select(Dependency.job)
            .join(Job, on=(Job.seq == Dependency.job))
            .where(Dependency.dep_seq.in_(done), Job.state.in_(CLAIMABLE))
            .distinct()
            .tuples()
        ]
        for chunk in chunked(seqs, IN_CHUNK):
            Job.update(state=PENDING, attempts=0, run_at=now, updated_at=now, finished_at=None,
                       last_error=None, exit_code=None, cancel_requested=False, waiting_on=0).where(
                Job.seq.in_(chunk), Job.state.in_((COMPLETED, DEAD))).execute()
        _settle(seqs + waiting, now=now)
    return [get_job(job.id) for job in jobs]


#: What ``edit`` may change (``delay`` sets run_at from now).
EDITABLE = ("command", "priority", "run_at", "delay", "max_retries", "timeout", "queue", "label")


def edit(job_id: str, changes: dict[str, Any], *, now: float | None = None) -> Job:
    """Change a waiting (pending or failed) job, validated as at enqueue; a job in any other
    state is refused and nothing changes."""
    now = time.time() if now is None else now
    unknown = [key for key in changes if key not in EDITABLE]
    if unknown:
        raise InvalidInput(f"cannot edit {', '.join(map(repr, unknown))} "
                           f"(editable: {', '.join(EDITABLE)})", field=unknown[0])
    checked = normalize(changes, now=now, partial=True)
    if not checked:
        raise InvalidInput("nothing to change")
    with write_transaction():  # the state is checked under the write lock: no claim slips in
        job = get_job(job_id)
        if job.state not in CLAIMABLE:
            raise QueueError(
                f"job {job_id!r} is {job.state}; only pending or failed jobs can be edited"
            )
        Job.update(**checked, updated_at=now).where(Job.seq == job.seq).execute()
    return get_job(job_id)


# --- queues: pause, limits, aging -------------------------------------------------------------

#: meta key: "1" when ``pause`` was given no queue. A queue's own ``paused`` (set by ``pause`` or
#: ``resume`` naming it) wins over it; queues never named follow it, new ones included.
PAUSED_ALL = "paused_all"


def pause(queues: list[str] | None = None) -> None:
    """Workers claim nothing more from these queues (every queue if None); running jobs finish."""
    _set_paused(queues, True)


def resume(queues: list[str] | None = None) -> None:
    _set_paused(queues, False)


def _set_paused(queues: list[str] | None, paused: bool) -> None:
    with write_transaction():
        if queues is None:
            flag = "1" if paused else "0"
            Meta.insert(key=PAUSED_ALL, value=flag).on_conflict(
                conflict_target=[Meta.key], update={Meta.value: flag}).execute()
            Queue.update(paused=None).execute()
        else:
            for name in queues:
                Queue.insert(name=name, paused=paused).on_conflict(
                    conflict_target=[Queue.name], update={Queue.paused: paused}).execute()


# Every pause flag in one read: the "every queue" flag (name NULL) and each queue's own.
_PAUSES = ("SELECT NULL, value FROM meta WHERE key = 'paused_all' UNION ALL SELECT name, "
           "CASE WHEN paused THEN '1' ELSE '0' END FROM queue WHERE paused IS NOT NULL")


def any_paused(queues: Iterable[str]) -> bool:
    """Is any of these queues paused now? (A worker asks before it starts a job it holds.)"""
    flags = dict(_hot(_PAUSES).fetchall())
    every = flags.pop(None, "0")
    return any(flags.get(name, every) == "1" for name in queues)


def set_limit(queue: str, limit: int | None) -> None:
    """At most ``limit`` jobs of ``queue`` run at once across all workers (None: no limit);
    checked inside every claim."""
    if limit is not None and limit < 0:
        raise InvalidInput(f"bad limit {limit!r}: expected a whole number >= 0 or 'none'",
                           field="limit")
    with write_transaction():
        Queue.insert(name=queue, max_running=limit).on_conflict(
            conflict_target=[Queue.name], update={Queue.max_running: limit}).execute()


def queue_known(name: str) -> bool:
    """Whether a job is in the queue or a worker takes from it by name (a worker of every
    queue does not count: it would take from any name, typos included)."""
    if JobCount.select().where(JobCount.queue == name, JobCount.n > 0).exists():
        return True
    return any(name in (row.queues or "").split(",")
               for row in Worker.select(Worker.queues).where(Worker.queues.is_null(False)))


def paused_all() -> bool:
    """Whether ``pause`` without a queue is in force (for queues not named since)."""
    return (Meta.get_or_none(Meta.key == PAUSED_ALL) or Meta(value="0")).value == "1"


def queue_rows() -> list[dict[str, Any]]:
    """Every queue that has jobs or settings: name, jobs per state, paused, limit."""
    paused_all_ = paused_all()
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        return rows.setdefault(name, {"name": name, "jobs": {state: 0 for state in STATES},
                                      "paused": paused_all_, "limit": None})

    for name, state, n in (JobCount.select(JobCount.queue, JobCount.state, fn.SUM(JobCount.n))
                           .group_by(JobCount.queue, JobCount.state).tuples()):
        if n:  # summed: PostgreSQL keeps a row per writing session (pgsql.py)
            row(name)["jobs"][state] = int(n)
    for queue in Queue.select():
        entry = row(queue.name)
        entry["paused"] = paused_all_ if queue.paused is None else bool(queue.paused)
        entry["limit"] = queue.max_running
    return sorted(rows.values(), key=lambda r: r["name"])


def queue_state(name: str) -> dict[str, Any]:
    """One queue's paused flag, limit and running jobs (what its waiting jobs are held by)."""
    row = Queue.get_or_none(Queue.name == name)
    running = int(JobCount.select(fn.SUM(JobCount.n)).where(
        JobCount.queue == name, JobCount.state == PROCESSING).scalar() or 0)
    return {
        "name": name,
        "paused": paused_all() if row is None or row.paused is None else bool(row.paused),
        "limit": None if row is None else row.max_running,
        "running": running,
    }


class Hold(NamedTuple):
    """What holds a waiting job back besides time and workers (``holds``)."""

    after: tuple[tuple[str, str | None], ...]  # dependencies not completed: (id, state)
    paused: bool  # its queue is paused
    running: int  # its queue's running jobs
    limit: int | None  # its queue's running limit (None: no limit)

    @property
    def at_limit(self) -> bool:
        return self.limit is not None and self.running >= self.limit


def holds(jobs: Sequence[Job]) -> dict[int, Hold]:
    """Job seq -> what holds it back, for the waiting (pending or failed) jobs among ``jobs``
    (a page of a list or of the console): a few reads for the whole page, none per row."""
    waiting = [job for job in jobs if job.state in CLAIMABLE]
    if not waiting:
        return {}
    after: dict[int, list[tuple[str, str | None]]] = {}
    chained = [job.seq for job in waiting if job.waiting_on]
    for chunk in chunked(chained, IN_CHUNK):
        for job_seq, dep_id, dep_state in _dependency_rows(chunk):
            if dep_state != COMPLETED:
                after.setdefault(job_seq, []).append((dep_id, dep_state))
    every = paused_all()  # queues and their running counts: a row per queue, read whole
    queues = {row.name: row for row in Queue.select()}
    running = dict(JobCount.select(JobCount.queue, JobCount.n).where(
        JobCount.state == PROCESSING).tuples())
    result = {}
    for job in waiting:
        row = queues.get(job.queue)
        paused = every if row is None or row.paused is None else bool(row.paused)
        result[job.seq] = Hold(tuple(after.get(job.seq, ())), paused,
                               int(running.get(job.queue) or 0),
                               None if row is None else row.max_running)
    return result


def aging_rate() -> float:
    """``priority_aging`` as the claim reads it (points of priority per minute waited)."""
    return database.execute_sql(_AGING_RATE).fetchone()[0]


_AGING_RATE = "SELECT " + AGING_RATE_SQL


def effective_priority(job: Job, *, now: float | None = None, rate: float | None = None) -> float:
    now = time.time() if now is None else now
    rate = aging_rate() if rate is None else rate
    return job.priority + rate * max(0.0, now - job.run_at) / 60.0


# --- reading ---------------------------------------------------------------------------------

def logs_dir() -> Path:
    return _logs_dir()


def attempts_of(job: Job) -> list[Attempt]:
    return list(Attempt.select().where(Attempt.job == job.seq).order_by(Attempt.number))


def log_elsewhere(job: Job, attempt: Attempt, *, last: bool) -> tuple[str, str | None] | None:
    """For an attempt run on another host (whose log file stays there): where its log is, and
    the tail of its output kept in the database (``last``: no later attempt has ended; the job
    keeps the output of the attempt that ended last). None for an attempt of this host, or
    whose log can be read here all the same (shared storage, a database moved with its logs)."""
    if not attempt.host or attempt.host == procs.hostname():
        return None
    path = log_path(attempt)
    if path is not None and path.exists():
        return None
    where = (f"the log of attempt {attempt.number} is on host {attempt.host} "
             f"({attempt.log_file} in the logs directory of the worker there)")
    tail = job.output_tail if last and attempt.finished_at is not None else None
    return where, tail


def kept_output(job: Job, attempt: Attempt) -> tuple[bool, str | None]:
    """(ended, output kept in the database) of an attempt, read afresh: the job's last output
    once the attempt has ended, until a later attempt ends (its end replaces it)."""
    # In this order: the attempt, then the job (whose tail is then at least that end's: both
    # are written in one transaction), then later ends (one after the job was read says None).
    now = Attempt.get_or_none(Attempt.seq == attempt.seq)
    if now is None:
        raise NotFound(f"job {job.id!r} was deleted")
    if now.finished_at is None:
        return False, None
    current = Job.get_or_none(Job.seq == job.seq)
    if current is None:
        raise NotFound(f"job {job.id!r} was deleted")
    replaced = Attempt.select().where(Attempt.job == job.seq, Attempt.number > now.number,
                                      Attempt.finished_at.is_null(False)).exists()
    return True, None if replaced else current.output_tail


def attempts_run(job: Job) -> int:
    """How many times the job has run in all: its latest attempt's number (numbers continue
    after dlq retry and restart, which reset only ``job.attempts``, the retry budget's count)."""
    return Attempt.select(fn.MAX(Attempt.number)).where(Attempt.job == job.seq).scalar() or 0


def log_path(attempt: Attempt) -> Path | None:
    return logs_dir() / attempt.log_file if attempt.log_file else None


def counts() -> dict[str, int]:
    """Jobs per state, from ``job_count`` (kept by triggers): a few rows whatever the size."""
    result = {state: 0 for state in STATES}
    for state, count in (JobCount.select(JobCount.state, fn.SUM(JobCount.n))
                         .group_by(JobCount.state).tuples()):
        if count or state in result:
            result[state] = int(count)  # PostgreSQL's SUM of a bigint is a numeric
    return result


def stats(*, now: float | None = None) -> dict[str, Any]:
    """Counts, workers, and ``oldest_pending_age``: how long the longest-waiting pending job
    has been due (scheduled jobs not yet due and jobs waiting on others are not waiting for a
    worker, so they do not count)."""
    now = time.time() if now is None else now
    workers = live_workers(now)
    if is_sqlite():
        due = database.execute_sql(_OLDEST_DUE).fetchone()[0]
    else:
        due = database.execute_sql(_OLDEST_DUE_PG).fetchone()[0]
    by_state = counts()
    return {
        "jobs": by_state,
        "total": sum(by_state.values()),
        "workers": {"alive": len(workers), "busy": sum(1 for w in workers if busy(w))},
        "oldest_pending_age": None if due is None or due > now else now - due,
    }


# Per queue with pending jobs, the first pending entry of its job_due index (PostgreSQL has no
# INDEXED BY: its planner takes job_due, whose condition the query repeats).
_OLDEST_DUE_TAIL = (" WHERE queue = c.queue AND " + CLAIMABLE_WHERE + " AND state = 'pending' "
                    "ORDER BY run_at LIMIT 1)) FROM ")
_OLDEST_DUE = ("SELECT MIN((SELECT run_at FROM job INDEXED BY job_due" + _OLDEST_DUE_TAIL
               + "(SELECT DISTINCT queue FROM job_count WHERE state = 'pending' AND n > 0) c")
_OLDEST_DUE_PG = ("SELECT MIN((SELECT run_at FROM job" + _OLDEST_DUE_TAIL + "("
                  + OLDEST_DUE_QUEUES + ") c")


def _filtered(query, *, state: str | Iterable[str] | None = None,
              queue: str | Iterable[str] | None = None, search: str | None = None):
    """Filters on jobs (or on job_count): a state or queue is one name or several (any of them)."""
    model = query.model
    if state:
        query = query.where(model.state == state if isinstance(state, str)
                            else model.state.in_(list(state)))
    if queue:
        query = query.where(model.queue == queue if isinstance(queue, str)
                            else model.queue.in_(list(queue)))
    if search:  # contains() escapes LIKE's wildcards: "_" and "%" are searched for as text
        query = query.where(Job.id.contains(search) | Job.command.contains(search)
                            | Job.last_error.contains(search) | Job.label.contains(search))
    return query


def list_jobs(*, state: str | Iterable[str] | None = None,
              queue: str | Iterable[str] | None = None, limit: int | None = 50,
              search: str | None = None, newest_first: bool = False,
              after_seq: int | None = None) -> list[Job]:
    query = _filtered(Job.select(), state=state, queue=queue, search=search)
    if after_seq is not None:
        query = query.where(Job.seq < after_seq if newest_first else Job.seq > after_seq)
    query = query.order_by(Job.seq.desc() if newest_first else Job.seq)
    if limit:
        query = query.limit(limit)
    return list(query)


def next_due(queues: list[str] | None = None) -> float | None:
    """When the earliest waiting job becomes due (None if nothing waits): the first entry of
    the partial index job_due, named on SQLite, whose planner skips partial indexes when the
    states are bound as parameters (a scan of every waiting row: 136 ms at 1M jobs)."""
    return look_for_work(queues)[0]


def look_for_work(queues: list[str] | None = None) -> tuple[float | None, str | None]:
    """(``next_due``, the settings' version) in one read: what an idle worker does when
    another session commits, a heartbeat included; a claim (a write transaction) only follows
    when a job is due."""
    if is_sqlite():
        wanted = json.dumps(queues) if queues else None
        row = database.execute_sql(_NEXT_DUE, (None, wanted)).fetchone()
    else:
        row = database.execute_sql(_PG_NEXT_DUE, {"queues": queues or None}).fetchone()
    return (row[0], row[1]) if row else (None, None)


_NEXT_DUE = (
    "SELECT MIN((SELECT run_at FROM job INDEXED BY job_due WHERE queue = o.name AND "
    + CLAIMABLE_WHERE
    + " ORDER BY run_at LIMIT 1)), " + _SETTINGS_VERSION + " FROM ("
    + _OPEN_QUEUES
    + ") o"
)  # ?1 unused


# --- waiting for jobs to end ----------------------------------------------------------------

#: How often a waiter looks at SQLite's data_version (as idle workers do): a job's end is seen
#: within about this long, for next to no CPU.
WAKE_POLL = 0.010
#: State of a job that was deleted while someone waited for it (it will never end otherwise).
DELETED = "deleted"
UNFINISHED = (PENDING, PROCESSING, FAILED)


class WaitTimeout(QueueError):
    """``wait --timeout`` ran out before every job ended (exit 124, as timeout(1))."""

    exit_code = 124


def changes(*, fallback: float | Callable[[], float] = 1.0,
            deadline: float | None = None) -> Iterator[None]:
    """Yield now, then each time another connection commits: looks at the change token when
    ``wake.sleep`` says a commit may have come (SQLite: a write to the -wal file; PostgreSQL:
    a NOTIFY), as idle workers do (without a token: every ``fallback`` seconds); also after
    ``fallback`` seconds without a commit (a function: asked after each yield), and at
    ``deadline`` (time.monotonic)."""
    while True:
        token = change_token()
        yield
        longest = fallback() if callable(fallback) else fallback
        until = time.monotonic() + longest
        if deadline is not None:
            until = min(until, deadline)
        while time.monotonic() < until:
            if token is not None:
                wake.sleep(until - time.monotonic())
            else:
                time.sleep(min(longest, 0.1))
            if token is None:
                break
            if change_token() != token:
                wake.noticed()
                break


class FollowLook(NamedTuple):
    """A job as ``logs -f`` looks at it at each wake-up."""

    state: str
    last_error: str | None
    attempt_seq: int | None  # its first attempt numbered the number asked or later, if any


_FOLLOW_LOOK = ("SELECT state, last_error, (SELECT seq FROM attempt WHERE job_seq = job.seq "
                "AND number >= ? ORDER BY number LIMIT 1) FROM job WHERE seq = ? AND id = ?")


def follow_look(job: Job, number: int) -> FollowLook | None:
    """The job's state and whether attempt ``number`` (or a later one) exists, in one fixed
    read (None: the job was deleted). Fixed SQL: it runs at every commit anyone makes, and
    two ORM reads cost a follower ~1.5 ms each time, 1.5 % of a core beside 8 idle workers."""
    row = database.execute_sql(_sql(_FOLLOW_LOOK), (number, job.seq, job.id)).fetchone()
    return None if row is None else FollowLook(*row)


def wait(job_ids: list[str] | None = None, *, queues: list[str] | None = None,
         timeout: float | None = None,
         watching: Callable[[int], None] | None = None) -> Iterator[Job]:
    """Wait until the jobs named (and every job of ``queues``, jobs enqueued meanwhile
    included; every job when neither is given) are completed or dead: an iterator that yields
    each as it ends (its id, state, exit code and last error), the named ones that have ended
    already first, and stops when none is left.
    A named job deleted meanwhile is yielded with state DELETED. Raises NotFound for an
    unknown id here, before waiting; the iterator raises WaitTimeout when ``timeout`` seconds
    (from this call) pass first. The jobs of queues are taken from this call on. ``watching``
    hears how many jobs are waited for in all (ended ones included) as that grows."""
    deadline = None if timeout is None else time.monotonic() + timeout
    named: dict[int, str] = {}
    for job_id in job_ids or []:
        named[get_job(job_id).seq] = job_id
    every = not job_ids and not queues
    looked = (time.time(), time.monotonic())  # before the first look: what ends after is news
    high = Job.select(fn.MAX(Job.seq)).scalar() or 0
    waiting = _unfinished(list(named), queues, every)
    return _wait(named, queues, every, waiting, set(named) - waiting, high, deadline, looked,
                 watching)


#: How long after it happened an end may be recorded and still be found by ``wait``'s quick look
#: (a batch's ends are recorded with the worker's next claim, at most its next job's first
#: check later); a later one is found by the full look, which the counts call for at once
#: (``--queue``, ``--all``) and which runs every FULL_LOOK seconds anyway (or less often: at
#: most 1% of the time). The reads of a look are fixed SQL: peewee building them cost more
#: than running them.
END_SLACK = 0.5
FULL_LOOK = 2.0
LOOK_EVERY = 0.05


def _wait(named: dict[int, str], queues: list[str] | None, every: bool, waiting: set[int],
          ended: set[int], high: int, deadline: float | None,
          first_look: tuple[float, float],
          watching: Callable[[int], None] | None = None) -> Iterator[Job]:
    """Incremental: at each change only what may have changed is read (jobs past the ``high``
    seq watermark, attempts and dead jobs that ended since the last look, the counts), not
    every open job; a full look (every open job, as at the start) runs when the counts do not
    add up (a job deleted, moved, or whose end was recorded late), every FULL_LOOK seconds,
    and at every look for up to IN_CHUNK named jobs (one statement). ``watching`` hears how
    many jobs are waited for in all (ended ones included) as that grows."""
    total = len(waiting | ended)
    if watching is not None:
        watching(total)
    yield from _ended(sorted(ended), named)
    looked, full_at = first_look
    full_cost = 0.0
    scope = bool(queues or every)
    for _ in changes(deadline=deadline):
        began, now = time.monotonic(), time.time()
        with _read_snapshot():  # one view: the counts agree with the rows read
            ended = set()
            if scope:  # jobs enqueued since the last look (some may have ended already)
                fresh = 0
                for seq, job_state, queue in database.execute_sql(_sql(_NEW_JOBS), (high,)):
                    high = max(high, seq)
                    if not queues or queue in queues:
                        (ended if job_state in (COMPLETED, DEAD) else waiting).add(seq)
                        fresh += 1
                if fresh and watching is not None:
                    total += fresh
                    watching(total)
            ended |= _ended_since(waiting, looked - END_SLACK)
            waiting -= ended
            full = began - full_at >= max(FULL_LOOK, 100 * full_cost)
            if not full and scope and not named:
                full = _open_count(queues) != len(waiting)
            elif not full and not scope:  # a few named jobs: all of them in one statement
                full = len(waiting) <= IN_CHUNK
            if full:
                now_open = _unfinished(list(named), queues, every)
                ended |= waiting - now_open
                waiting = now_open
                full_at = time.monotonic()
                full_cost = full_at - began
        looked = now
        yield from _ended(sorted(ended), named)
        if not waiting:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(_not_finished(waiting, named))
        spent = time.monotonic() - began
        # One look per LOOK_EVERY at most (draining workers commit hundreds of times a second):
        # each end is still reported within that long; a slow look, half the time at most.
        pause = max(LOOK_EVERY - spent, min(spent, 0.05) if spent > WAKE_POLL else 0.0)
        if pause > 0:
            time.sleep(pause)


@contextmanager
def _read_snapshot():
    """Reads that see one state of the database: SQLite's deferred transaction keeps the
    snapshot of its first read (and takes no write lock); PostgreSQL needs REPEATABLE READ."""
    with database.atomic():
        if not is_sqlite():
            database.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


# Jobs that ended since a time: by their attempt's end (index attempt_window), or dead without
# a run (cancelled while waiting, a dependency failed; the partial index job_failed, whose
# condition the query repeats as a literal for SQLite to use it).
_ATTEMPTS_ENDED = "SELECT job_seq FROM attempt WHERE finished_at >= ?"
_DEAD_SINCE = "SELECT seq FROM job WHERE state IN ('failed', 'dead') AND finished_at >= ?"


_NEW_JOBS = "SELECT seq, state, queue FROM job WHERE seq > ?"
_OPEN_COUNTS = ("SELECT queue, n FROM job_count WHERE state IN ('pending', 'processing', "
                "'failed') AND n <> 0")


def _ended_since(waiting: set[int], since: float) -> set[int]:
    """The jobs among ``waiting`` that are completed or dead and whose end was recorded at
    ``since`` or later: what changed since the last look, read without visiting every job."""
    touched = {seq for (seq,) in database.execute_sql(_sql(_ATTEMPTS_ENDED), (since,))}
    touched.update(seq for (seq,) in database.execute_sql(_sql(_DEAD_SINCE), (since,)))
    return {row[0] for row in _job_rows(sorted(touched & waiting))
            if row[2] in (COMPLETED, DEAD)}


def _open_count(queues: list[str] | None) -> int:
    """How many jobs of these queues (all if None) are not completed or dead: from job_count."""
    return sum(int(n) for queue, n in database.execute_sql(_OPEN_COUNTS)
               if not queues or queue in queues)


_JOB_ROWS = ("SELECT seq, id, state, exit_code, last_error FROM job "
             "WHERE seq IN (SELECT value FROM json_each(?))")
_JOB_ROWS_PG = "SELECT seq, id, state, exit_code, last_error FROM job WHERE seq = ANY(%s)"


def _job_rows(seqs: list[int]) -> Iterator[tuple]:
    """(seq, id, state, exit_code, last_error) of these jobs (those that exist): the list is
    one parameter (a JSON array on SQLite, an array on PostgreSQL)."""
    sqlite = is_sqlite()
    for chunk in chunked(seqs, IN_CHUNK):
        if sqlite:
            yield from database.execute_sql(_JOB_ROWS, (json.dumps(chunk),))
        else:
            yield from database.execute_sql(_JOB_ROWS_PG, (list(chunk),))


#: How many unfinished jobs a timed-out wait names (then a count of the rest).
NAMED_AT_TIMEOUT = 10


def _not_finished(waiting: set[int], named: dict[int, str]) -> str:
    """The timeout's message: the first jobs still unfinished (by enqueue order), by id."""
    first = sorted(waiting)[:NAMED_AT_TIMEOUT]
    ids = dict(Job.select(Job.seq, Job.id).where(Job.seq.in_(first)).tuples())
    shown = ", ".join(ids.get(seq) or named.get(seq) or f"#{seq}" for seq in first)
    more = len(waiting) - len(first)
    return (f"timed out with {len(waiting)} job(s) not finished: {shown}"
            + (f" and {more} more" if more else ""))


def _unfinished(seqs: list[int], queues: list[str] | None, every: bool) -> set[int]:
    """Seqs of the jobs waited for that are not completed or dead yet."""
    found: set[int] = set()
    for chunk in chunked(seqs, IN_CHUNK):
        found.update(seq for (seq,) in Job.select(Job.seq).where(
            Job.seq.in_(chunk), Job.state.in_(UNFINISHED)).tuples())
    if every:
        found.update(seq for (seq,) in database.execute_sql(_UNFINISHED_JOBS))
    elif queues:
        found.update(seq for (seq,) in Job.select(Job.seq).where(
            Job.state.in_(UNFINISHED), Job.queue.in_(queues)).tuples())
    return found


# ``wait --all``'s full look: fixed SQL, since building it with the ORM cost ~0.5 ms each time,
# and its run ~0.01 ms. The states are those of UNFINISHED.
_UNFINISHED_JOBS = "SELECT seq FROM job WHERE state IN ('pending', 'processing', 'failed')"


def _ended(seqs: list[int], named: dict[int, str]) -> Iterator[Job]:
    """The jobs among ``seqs`` that ended (a job of a waited queue that was deleted or moved to
    another queue is no longer waited for; a named one that was deleted is yielded DELETED)."""
    for chunk in chunked(seqs, IN_CHUNK):
        rows = {row[0]: row for row in _job_rows(chunk)}
        for seq in chunk:
            row = rows.get(seq)
            if seq in named and (row is None or row[1] != named[seq]):
                yield Job(seq=seq, id=named[seq], state=DELETED)
            elif row is not None and row[2] in (COMPLETED, DEAD):
                yield Job(seq=seq, id=row[1], state=row[2], exit_code=row[3], last_error=row[4])


# --- console reads (one page, one chart: only what a screen shows) ---------------------------

#: Orders a page of jobs can take; every one is completed by seq, so a row's place is unique.
SORT_KEYS = {"seq": Job.seq, "priority": Job.priority, "run_at": Job.run_at,
             "updated_at": Job.updated_at, "attempts": Job.attempts}
_PAGE_FIELDS = [f for f in Job._meta.sorted_fields if f.name not in ("output_tail", "cwd")]


@contextmanager
def _snapshot():
    """Reads that must agree (a count and the rows it counts) in one transaction; on PostgreSQL
    a repeatable-read one, where each statement would otherwise see a moment of its own."""
    with database.atomic():
        if not is_sqlite() and database.transaction_depth() == 1:
            database.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def jobs_window(*, state: str | None = None, queue: str | None = None, search: str | None = None,
                sort: str = "seq", descending: bool = True, start: int = 0,
                limit: int = 100) -> tuple[list[Job], int, int]:
    """The page of ``limit`` rows holding row ``start`` of the jobs in (sort key, seq) order:
    (rows, index of its first row, rows in all). Pages are fixed slices of the order as it is
    now (page 1 is its head, page k rows (k-1)*limit on), read with the count in one snapshot,
    so the page and its number agree while rows arrive and leave; past the end, the last page.
    Rows carry every field but output_tail and cwd.

    Keyset anchors (rows after the last row shown) cannot say which page they are once rows
    arrive or leave before them, so the slice is read by OFFSET, from the nearer end of the
    order: at 100k jobs a middle page reads in 10-40 ms (the head in under 1 ms). The inner
    query sorts only (key, seq): an order without an index sorts small rows, not whole jobs."""
    field = SORT_KEYS[sort]
    limit = max(1, limit)
    with _snapshot():
        total = count_jobs(state=state, queue=queue, search=search)
        first = min(max(0, start) // limit, max(0, total - 1) // limit) * limit
        size = min(limit, total - first)
        if size <= 0:
            return [], 0, total
        from_head = first <= total - first - size
        desc = descending if from_head else not descending
        order = [field.desc(), Job.seq.desc()] if desc else [field.asc(), Job.seq.asc()]
        if field is Job.seq:
            order = order[1:]
        seqs = (_filtered(Job.select(Job.seq), state=state, queue=queue, search=search)
                .order_by(*order).offset(first if from_head else total - first - size).limit(size))
        rows = list(Job.select(*_PAGE_FIELDS).where(Job.seq.in_(seqs)).order_by(*order))
    return (rows if from_head else rows[::-1]), first, total


def count_jobs(*, state: str | Iterable[str] | None = None,
               queue: str | Iterable[str] | None = None, search: str | None = None) -> int:
    """Jobs matching the filters; by state and queue (or all of them) from ``job_count``."""
    if not search:
        query = _filtered(JobCount.select(fn.SUM(JobCount.n)), state=state, queue=queue)
        return int(query.scalar() or 0)  # PostgreSQL's SUM is a numeric (a Decimal here)
    return _filtered(Job.select(), state=state, queue=queue, search=search).count()


def throughput(*, minutes: int = 30, now: float | None = None) -> list[tuple[int, int]]:
    """(attempts completed, attempts failed) per minute over the last ``minutes`` minutes,
    oldest first, from the attempts' finish times (index attempt_window)."""
    now = time.time() if now is None else now
    start = now - minutes * 60
    bucket = ((Attempt.finished_at - start) / 60)
    bucket = bucket.cast("INTEGER") if is_sqlite() else fn.FLOOR(bucket)  # a cast rounds there
    done = [0] * minutes
    failed = [0] * minutes
    rows = (Attempt.select(bucket, Attempt.outcome, fn.COUNT(Attempt.seq))
            .where(Attempt.finished_at > start, Attempt.finished_at <= now)
            .group_by(bucket, Attempt.outcome).tuples())
    for index, outcome, count in rows:
        index = min(max(int(index), 0), minutes - 1)
        if outcome == Outcome.COMPLETED:
            done[index] += count
        elif outcome in FAILED_OUTCOMES:
            failed[index] += count
    return list(zip(done, failed, strict=True))


def last_costs(seqs: list[int]) -> dict[int, tuple[float | None, int | None, int | None]]:
    """Job seq -> (cpu_seconds, peak_rss_bytes, processes) of its latest attempt, for a page
    of jobs (index attempt (job_seq, number): one probe per job)."""
    if not seqs:
        return {}
    latest = (Attempt.select(fn.MAX(Attempt.seq)).where(Attempt.job.in_(seqs))
              .group_by(Attempt.job))
    rows = (Attempt.select(Attempt.job, Attempt.cpu_seconds, Attempt.peak_rss_bytes,
                           Attempt.processes).where(Attempt.seq.in_(latest)).tuples())
    return {seq: (cpu, peak, count) for seq, cpu, peak, count in rows}


def running_attempts() -> dict[str, tuple[Job, Attempt]]:
    """Job id -> (job, the attempt of its current claim) for every running job. Paired by claim
    token: attempt numbers count the whole history while ``attempts`` is reset by a DLQ retry
    or an interrupted run."""
    jobs = {j.seq: j for j in Job.select(*_PAGE_FIELDS).where(Job.state == PROCESSING)}
    if not jobs:
        return {}
    result = {}
    for attempt in Attempt.select().where(
        Attempt.job.in_(list(jobs)), Attempt.finished_at.is_null()
    ):
        job = jobs[attempt.job_seq]
        if attempt.claim_token == job.claim_token and (
                job.claim_token is not None or attempt.number == job.attempts):  # pre-v2 claims
            result[job.id] = (job, attempt)
    return result


# --- why a job is where it is ----------------------------------------------------------------
# One read for ``present.explain``, which words these facts and reads nothing itself. Uses of
# this module: NamedTuple, time, Job, Worker, COMPLETED, DEAD, FAILED, PROCESSING, get_job,
# attempts_run, worker_alive, live_workers, busy, holds, Hold, aging_rate,
# effective_priority.

class WhyFacts(NamedTuple):
    """What ``present.explain`` says of a job, read at ``now``; a fact its sentence does not
    need is left unread (None or 0)."""

    job: Job
    now: float
    runs: int | None = None  # attempts run (ended jobs; a failed one backing off)
    worker: Worker | None = None  # a running job's worker (None: that row is gone)
    worker_alive: bool = False  # that worker is alive
    hold: Hold | None = None  # what holds a waiting job back (``holds``)
    aging_rate: float = 0.0  # ``priority_aging`` (waiting jobs)
    effective_priority: float | None = None  # with aging on, the priority it has reached
    workers: int | None = None  # a due job nothing holds: live workers serving its queue
    working: int = 0  # ... of which busy


def why_facts(job: Job | str, *, now: float | None = None) -> WhyFacts:
    """The facts of ``present.explain`` (a job or its id; NotFound for an unknown id): the
    reads it made while it worded them, made here, only those its sentence needs."""
    if isinstance(job, str):
        job = get_job(job)
    now = time.time() if now is None else now
    if job.state in (COMPLETED, DEAD):
        return WhyFacts(job, now, runs=attempts_run(job))
    if job.state == PROCESSING:
        worker = Worker.get_or_none(Worker.id == job.worker_id)
        return WhyFacts(job, now, worker=worker,
                        worker_alive=worker is not None and worker_alive(worker, now=now))
    hold = holds([job]).get(job.seq)
    rate = aging_rate()
    priority = effective_priority(job, now=now, rate=rate) if rate else None
    facts = WhyFacts(job, now, hold=hold, aging_rate=rate, effective_priority=priority)
    if job.run_at > now:
        return facts._replace(runs=attempts_run(job)) if job.state == FAILED else facts
    if hold is not None and (hold.after or hold.paused or hold.at_limit):
        return facts
    serving = [w for w in live_workers(now) if not w.queues or job.queue in w.queues.split(",")]
    return facts._replace(workers=len(serving), working=sum(1 for w in serving if busy(w)))
