"""The schema: a new database made, the schema version, and the upgrades of older databases.

The statements are in ``sql/<backend>/schema.sql`` (the tables with their indexes, SQLite's
triggers, PostgreSQL's rank and notify functions, the fills of the counts and rollups) and
``sql/<backend>/upgrades.sql`` (what an upgrade runs besides); PostgreSQL's count and rollup
functions are ``pgsql.py``'s. The schema version lives in the ``meta`` table. A database
written by a newer queuectl is refused rather than guessed at; an older one is upgraded in
place, step by step, inside a transaction, by the functions in ``UPGRADES``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from peewee import (
    BigIntegerField,
    CharField,
    Database,
    DoubleField,
    IntegerField,
    OperationalError,
    SqliteDatabase,
    TextField,
    fn,
)

from queuectl_tui.errors import DatabaseUnusable
from queuectl_tui.store.models import Attempt, Job, Meta, Worker
from queuectl_tui.store.sql import load, statements

if TYPE_CHECKING:
    from playhouse.migrate import SchemaMigrator

from queuectl_tui.store.transactions import write_transaction

SCHEMA_VERSION = 13

#: meta key present (inserted and deleted again) only inside a transaction that prunes old jobs
#: (retention.py): the rollups of past windows keep what is pruned, so the delete triggers of
#: attempt_minute and job_failed_minute leave them alone while it is there (spelt out in
#: schema.sql and pgsql.py). Never committed.
PRUNING = "pruning"
#: meta key of the counter worker ids are taken from (a rowid would be reused after a delete).
LAST_WORKER_ID = "last_worker_id"

_FILES: dict[tuple[str, str], dict[str, str]] = {}


def _backend(db: Database) -> str:
    return "sqlite" if isinstance(db, SqliteDatabase) else "postgres"


def blocks(db: Database, file: str = "schema") -> dict[str, str]:
    """The named blocks of ``db``'s backend's ``file``.sql (read once)."""
    key = (_backend(db), file)
    found = _FILES.get(key)
    if found is None:
        found = _FILES[key] = load(*key)
    return found


def _run(db: Database, *names: str, file: str = "schema") -> None:
    """Run the named blocks: SQLite one statement at a time, PostgreSQL a block in one round
    trip."""
    for name in names:
        text = blocks(db, file)[name]
        if isinstance(db, SqliteDatabase):
            for statement in statements(text):
                db.execute_sql(statement)
        else:
            db.execute_sql(text)


def _made(db: Database, *kinds: str) -> list[str]:
    """Names of schema.sql's blocks that create these kinds of object (``TABLE``, ``INDEX``,
    ``TRIGGER``: the word after CREATE [UNIQUE]), in the file's order."""
    found = []
    for name, text in blocks(db).items():
        words = text.split(None, 3)
        if words[1] == "UNIQUE":
            del words[1]
        if words[0] == "CREATE" and words[1] in kinds:
            found.append(name)
    return found


_FILLS = ("fill_job_count", "fill_attempt_minute", "fill_job_failed_minute")


def _create(db: Database) -> None:
    """A new database: schema.sql's tables and indexes, then the triggers and fills."""
    _run(db, *_made(db, "TABLE", "INDEX"))
    _install_triggers(db)
    _install_schedule_notify(db)


def _install_triggers(db: Database) -> None:
    """Install the triggers that keep ``job_count``, ``job.rank``, ``attempt_minute`` and
    ``job_failed_minute`` (and on PostgreSQL the notifications), and fill the counts and
    rollups from the jobs and attempts there are (the caller holds the write transaction, so
    nothing changes in between). SQLite: every trigger of schema.sql, none there yet;
    PostgreSQL: those of any earlier version are dropped first."""
    if isinstance(db, SqliteDatabase):
        _run(db, *_made(db, "TRIGGER"))
    else:
        _run(db, "drop_triggers", "drop_functions", file="upgrades")
        _run(db, "job_rank_change")
        from queuectl_tui.store import pgsql

        pgsql.install(db)
        _install_notify_postgres(db)
    _run(db, *_FILLS)


def _install_notify_postgres(db: Database) -> None:
    """Idle workers and waiters LISTEN (``wait_change``): schema.sql's notify function and the
    triggers on job, queue, meta and setting, over those of any earlier version."""
    _run(db, "drop_notify", "drop_notify_function", file="upgrades")
    _run(db, "queuectl_notify_changed", "notify_triggers")


def _install_schedule_notify(db: Database) -> None:
    """PostgreSQL: a schedule's change wakes the idle workers, as a job change does. SQLite
    needs nothing: every commit wakes them (``wake``)."""
    if not isinstance(db, SqliteDatabase):
        _run(db, "drop_schedule_notify", file="upgrades")
        _run(db, "schedule_notify_triggers")


#: version -> function(migrator) bringing a database from version-1 to version, written with
#: playhouse.migrate operations (add_column, …) and the named blocks of sql/<backend>/, so
#: they run on SQLite and PostgreSQL. Version 1 is the first released schema;
#: tests/fixtures/schema_v1.sql keeps it verbatim. A table, index or trigger a step makes is
#: today's (schema.sql's block of its name): the steps run together, in one transaction, and
#: their end must equal a new database (tests/engine/test_schema.py). So a later step that
#: changes such an object allows for one an earlier step already made in today's shape (as
#: version 11 does for job_count.v).
def _upgrade_to_2(migrator: SchemaMigrator) -> None:
    """Claim tokens (jobs and attempts) and the never-reused worker id counter. (This step
    also made job counts per state and an index of due times; version 3 replaces both, so an
    upgrade from version 1 goes straight to those.)"""
    migrate(
        migrator.add_column("job", "claim_token", BigIntegerField(null=True)),
        migrator.add_column("attempt", "claim_token", BigIntegerField(null=True)),
    )
    # Past every id a worker ever had, so that no job or attempt can be confused with a new one.
    last = max(
        Worker.select(fn.MAX(Worker.id)).scalar() or 0,
        Job.select(fn.MAX(Job.worker_id)).scalar() or 0,
        Attempt.select(fn.MAX(Attempt.worker_id)).scalar() or 0,
    )
    Meta.insert(key=LAST_WORKER_ID, value=str(last)).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: str(last)}
    ).execute()


def _upgrade_to_3(migrator: SchemaMigrator) -> None:
    """Queues (paused, limit), dependencies, the aging rank, per-queue job counts, the claim
    and due indexes per queue, what each attempt waited and cost and its queue, and what a
    window of metrics reads: the attempt_window index (it replaces attempt_finished_at) and
    the per-minute rollup attempt_minute."""
    db = migrator.database
    _run(db, "upgrade_3_job_columns", file="upgrades")
    migrate(
        migrator.add_column("attempt", "due_at", DoubleField(null=True)),
        migrator.add_column("attempt", "cpu_seconds", DoubleField(null=True)),
        migrator.add_column("attempt", "peak_rss_bytes", BigIntegerField(null=True)),
        migrator.add_column("attempt", "processes", IntegerField(null=True)),
        migrator.add_column("attempt", "queue", CharField(null=True)),
    )
    _run(db, "upgrade_3_attempt_queue", "upgrade_3_drop", file="upgrades")
    _run(
        db,
        "queue",
        "job_dep",
        "job_dep_dep_seq",
        "attempt_minute",
        "job_failed_minute",
        "job_count",
        "job_claim",
        "job_due",
        "job_failed",
        "attempt_window",
    )
    _install_triggers(db)


def _upgrade_to_4(migrator: SchemaMigrator) -> None:
    """PostgreSQL: jobs counted per statement, not per row (see pgsql.JOBS_INSERT; SQLite's
    triggers are unchanged). Both: seq ends the job_due index (the oldest due in one step)."""
    db = migrator.database
    _run(db, "upgrade_4_drop", file="upgrades")
    _run(db, "job_due")
    if not isinstance(db, SqliteDatabase):
        _install_triggers(db)


def _upgrade_to_5(migrator: SchemaMigrator) -> None:
    """Paused running jobs (``pause JOB_ID``): job.paused_token, the claim token of the run
    that is paused."""
    migrate(migrator.add_column("job", "paused_token", BigIntegerField(null=True)))


def _upgrade_to_6(migrator: SchemaMigrator) -> None:
    """PostgreSQL: a statement that changed no row (an idle worker's empty claim) sends no
    NOTIFY (see _install_notify_postgres). SQLite: nothing to change."""
    db = migrator.database
    if not isinstance(db, SqliteDatabase):
        _install_notify_postgres(db)


def _upgrade_to_7(migrator: SchemaMigrator) -> None:
    """Job labels (``enqueue --label``): a nullable column, added without a table rewrite."""
    migrate(migrator.add_column("job", "label", TextField(null=True)))


def _upgrade_to_8(migrator: SchemaMigrator) -> None:
    """Recurring schedules (``schedule add``): the schedule table, and job.schedule, the name of
    the schedule that made a job (nullable: no table rewrite)."""
    db = migrator.database
    migrate(migrator.add_column("job", "schedule", CharField(null=True)))
    _run(db, "schedule", "schedule_next")
    _install_schedule_notify(db)


def _upgrade_to_9(migrator: SchemaMigrator) -> None:
    """PostgreSQL without one lock for every writer: the counts and rollups keep a row per
    writing session (``slot``), folded by ``queuectl_fold()``; dependents are released once per
    statement and only when some exist; the rank trigger runs only when the rank changes
    (store/pgsql.py). SQLite: nothing to change (its writers take turns anyway)."""
    db = migrator.database
    if not isinstance(db, SqliteDatabase):
        _install_triggers(db)


def _upgrade_to_10(migrator: SchemaMigrator) -> None:
    """Retention: the delete triggers of the rollups (attempt_minute, job_failed_minute) leave
    them alone inside a pruning transaction (``PRUNING``), so stats of past windows survive;
    attempt.log_dropped says a log file went for the logs directory's cap."""
    db = migrator.database
    migrate(migrator.add_column("attempt", "log_dropped", DoubleField(null=True)))
    if isinstance(db, SqliteDatabase):
        _run(db, "upgrade_10_drop", file="upgrades")
        _run(db, "attempt_minute_delete", "job_failed_delete")
    else:  # version 9's functions, with the pruning guard (store/pgsql.py)
        from queuectl_tui.store.pgsql import JOBS_DELETE, MINUTE_DELETE

        db.execute_sql(JOBS_DELETE)
        db.execute_sql(MINUTE_DELETE)


#: SQLite's triggers that keep job_count.v (schema.sql says why), made by version 11.
_CHANGE_COUNTS_SQLITE = (
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
)


def _upgrade_to_11(migrator: SchemaMigrator) -> None:
    """What the console and ``wait`` watch ignores the workers' heartbeats: SQLite's
    job_count.v and the triggers that keep it; PostgreSQL's notifications go to a channel of
    the schema's own (``notify_channel``), so that a queue in one schema no longer wakes the
    listeners of every other schema of the database."""
    db = migrator.database
    if isinstance(db, SqliteDatabase):
        if "v" not in [row[1] for row in db.execute_sql("PRAGMA table_info(job_count)").fetchall()]:
            _run(db, "upgrade_11_add_v", file="upgrades")
        _run(db, "upgrade_11_drop", file="upgrades")
        _run(db, *_CHANGE_COUNTS_SQLITE)
    else:
        _run(db, "queuectl_notify_changed")


def _upgrade_to_12(migrator: SchemaMigrator) -> None:
    """PostgreSQL: a worker's batch (the ends of the last one, its next claim) is one statement,
    ``queuectl_cycle()`` (store/pgsql.py). SQLite: nothing to change."""
    db = migrator.database
    if not isinstance(db, SqliteDatabase):
        from queuectl_tui.store.pgsql import CYCLE_FUNCTION

        db.execute_sql(CYCLE_FUNCTION)


def _upgrade_to_13(migrator: SchemaMigrator) -> None:
    """PostgreSQL: a worker's claims and ends notify no one unless a watcher is connected
    (``queuectl_notify_changed``), and the ends of attempts that had not ended add their
    figures to the minutes without the look-up of what to take out
    (``attempt_minute_update``), and a batch's statement makes no bitmap scan
    (``queuectl_cycle``). SQLite: nothing to change."""
    db = migrator.database
    if not isinstance(db, SqliteDatabase):
        from queuectl_tui.store.pgsql import CYCLE_FUNCTION, MINUTE_UPDATE

        _run(db, "queuectl_notify_changed")
        db.execute_sql(MINUTE_UPDATE)
        db.execute_sql(CYCLE_FUNCTION)


UPGRADES: dict[int, Callable[[SchemaMigrator], None]] = {
    2: _upgrade_to_2,
    3: _upgrade_to_3,
    4: _upgrade_to_4,
    5: _upgrade_to_5,
    6: _upgrade_to_6,
    7: _upgrade_to_7,
    8: _upgrade_to_8,
    9: _upgrade_to_9,
    10: _upgrade_to_10,
    11: _upgrade_to_11,
    12: _upgrade_to_12,
    13: _upgrade_to_13,
}


def migrate(*operations: object) -> None:
    """playhouse.migrate.migrate, loaded only when an upgrade runs (it costs ~3 ms a start)."""
    from playhouse.migrate import migrate as run

    run(*operations)


def _ensure_schema(db: SqliteDatabase, progress: bool = False) -> None:
    # The common case (an up-to-date database) is a single read, no write lock.
    if _current_version(db) == SCHEMA_VERSION:
        return
    with write_transaction():
        version = _current_version(db)
        if version is None:
            if db.get_tables():
                if not isinstance(db, SqliteDatabase):
                    from queuectl_tui.store.postgres import describe_target

                    raise DatabaseUnusable(
                        f"database {describe_target()} has tables but no "
                        "queuectl schema (use an empty database or schema)"
                    )
                raise DatabaseUnusable(
                    f"{db.database} is an SQLite database but not a queuectl one"
                )
            _create(db)
            Meta.create(key="schema_version", value=str(SCHEMA_VERSION))
            Meta.create(key=LAST_WORKER_ID, value="0")
            return
        from playhouse.migrate import SchemaMigrator

        from queuectl_tui.progress import Bar, bar

        migrator = SchemaMigrator.from_database(db)
        # A step rewrites tables or builds indexes: minutes on a big database, said on a terminal.
        with (
            bar("upgrading the database", SCHEMA_VERSION - version, "steps")
            if progress
            else Bar() as shown
        ):
            while version < SCHEMA_VERSION:
                version += 1
                shown.update(description=f"upgrading the database to schema version {version}")
                UPGRADES[version](migrator)
                Meta.update(value=str(version)).where(Meta.key == "schema_version").execute()
                shown.advance()


def _current_version(db: SqliteDatabase) -> int | None:
    if isinstance(db, SqliteDatabase):  # one plain query: this runs at every command's start
        try:
            row = db.execute_sql(blocks(db, "upgrades")["schema_version"]).fetchone()
        except OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return None
    elif not db.table_exists(Meta._meta.table_name):
        return None
    else:
        found = Meta.get_or_none(Meta.key == "schema_version")
        row = (found.value,) if found else None
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        from queuectl_tui.store.postgres import describe_target

        raise DatabaseUnusable(
            f"database {describe_target()} has schema version {version}, newer than this "
            f"queuectl-tui supports ({SCHEMA_VERSION}); upgrade queuectl-tui"
        )
    return version


def schema_version() -> int:
    return int(Meta.get(Meta.key == "schema_version").value)
