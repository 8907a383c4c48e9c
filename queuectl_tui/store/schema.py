"""The schema: tables, triggers, the schema version and the upgrades of older databases.

The schema version lives in the ``meta`` table. A database written by a newer queuectl is
refused rather than guessed at; an older one is upgraded in place, step by step, inside a
transaction, by the functions in ``UPGRADES``."""

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
from queuectl_tui.store import pgsql
from queuectl_tui.store.models import (
    AGING_RATE_SQL,
    MODELS,
    Attempt,
    AttemptMinute,
    Dependency,
    FailedMinute,
    Job,
    JobCount,
    Meta,
    Queue,
    Schedule,
    Worker,
)
from queuectl_tui.store.pgsql import JOBS_DELETE, MINUTE_DELETE

if TYPE_CHECKING:

    from playhouse.migrate import SchemaMigrator

from queuectl_tui.store.postgres import describe_target
from queuectl_tui.store.transactions import write_transaction

SCHEMA_VERSION = 11

#: version -> function(migrator) bringing a database from version-1 to version, written with
#: playhouse.migrate operations (add_column, add_index, …) so they run on SQLite and PostgreSQL.
#: Version 1 is the first released schema; tests/fixtures/schema_v1.sql keeps it verbatim.
def _upgrade_to_2(migrator: SchemaMigrator) -> None:
    """Claim tokens (jobs and attempts) and the never-reused worker id counter. (This step
    also made job counts per state and an index of due times; version 3 replaces both, so an
    upgrade from version 1 goes straight to those.)"""
    migrate(migrator.add_column("job", "claim_token", BigIntegerField(null=True)),
            migrator.add_column("attempt", "claim_token", BigIntegerField(null=True)))
    # Past every id a worker ever had, so that no job or attempt can be confused with a new one.
    last = max(Worker.select(fn.MAX(Worker.id)).scalar() or 0,
               Job.select(fn.MAX(Job.worker_id)).scalar() or 0,
               Attempt.select(fn.MAX(Attempt.worker_id)).scalar() or 0)
    Meta.insert(key=LAST_WORKER_ID, value=str(last)).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: str(last)}).execute()


def _upgrade_to_3(migrator: SchemaMigrator) -> None:
    """Queues (paused, limit), dependencies, the aging rank, per-queue job counts, the claim
    and due indexes per queue, what each attempt waited and cost and its queue, and what a
    window of metrics reads: the attempt_window index (it replaces attempt_finished_at) and
    the per-minute rollup attempt_minute."""
    db = migrator.database
    sqlite = isinstance(db, SqliteDatabase)
    # NOT NULL with a DEFAULT in one ALTER (playhouse's add_column would rebuild the table).
    db.execute_sql("ALTER TABLE job ADD COLUMN waiting_on INTEGER NOT NULL DEFAULT 0")
    if sqlite:
        db.execute_sql("ALTER TABLE job ADD COLUMN rank REAL NOT NULL DEFAULT 0")
    else:
        db.execute_sql("ALTER TABLE job ADD COLUMN rank DOUBLE PRECISION NOT NULL DEFAULT 0")
    migrate(migrator.add_column("attempt", "due_at", DoubleField(null=True)),
            migrator.add_column("attempt", "cpu_seconds", DoubleField(null=True)),
            migrator.add_column("attempt", "peak_rss_bytes", BigIntegerField(null=True)),
            migrator.add_column("attempt", "processes", IntegerField(null=True)),
            migrator.add_column("attempt", "queue", CharField(null=True)))
    db.execute_sql(
        "UPDATE attempt SET queue = (SELECT queue FROM job WHERE job.seq = attempt.job_seq)"
    )
    db.execute_sql("UPDATE job SET rank = priority")  # no aging before this version
    Queue.create_table()
    Dependency.create_table()
    AttemptMinute.create_table()  # both filled by _install_triggers
    FailedMinute.create_table()
    if sqlite:  # version 2's triggers counted per state only
        db.execute_sql("DROP TRIGGER IF EXISTS job_count_insert")
        db.execute_sql("DROP TRIGGER IF EXISTS job_count_update")
        db.execute_sql("DROP TRIGGER IF EXISTS job_count_delete")
    else:
        db.execute_sql("DROP TRIGGER IF EXISTS job_count_insert_delete ON job")
        db.execute_sql("DROP TRIGGER IF EXISTS job_count_update ON job")
    JobCount.drop_table(safe=True)
    JobCount.create_table()
    db.execute_sql("DROP INDEX IF EXISTS job_claim")  # both now per queue
    db.execute_sql("DROP INDEX IF EXISTS job_due")
    db.execute_sql("DROP INDEX IF EXISTS attempt_finished_at")  # attempt_window covers it
    Job._schema.create_indexes(safe=True)
    Attempt._schema.create_indexes(safe=True)
    _install_triggers(db)


# job_count holds one row per queue and state. Every insert, delete and change of state or
# queue of a job adds or takes one in the same transaction, so the counts are exact whoever
# writes (ORM, plain SQL, another process) and cost two small writes per state change (claim,
# finish), none per heartbeat or other update. A pair met for the first time gets its row from
# the upsert. job_rank keeps job.rank when priority or run_at change (inserts set it
# themselves: a trigger would write every enqueued row twice); job_release lets the jobs waiting
# on a job that completes go (in SQL: no round trip on the worker's hot path). The SQL is spelt
# out per dialect (raw SQL here is always a literal).

_RANK_TRIGGER_SQLITE = (
    "CREATE TRIGGER job_rank AFTER UPDATE OF priority, run_at ON job "
    "WHEN NEW.priority IS NOT OLD.priority OR NEW.run_at IS NOT OLD.run_at BEGIN "
    "UPDATE job SET rank = NEW.priority - " + AGING_RATE_SQL + " * NEW.run_at / 60.0 "
    "WHERE seq = NEW.seq; END")
_RANK_FUNCTION_POSTGRES = (
    "CREATE OR REPLACE FUNCTION job_rank_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "NEW.rank := NEW.priority - " + AGING_RATE_SQL + " * NEW.run_at / 60.0; RETURN NEW; END $$")


# attempt_minute (models.AttemptMinute) is kept by triggers on attempt: an attempt that gets
# its end (or is inserted with one) is added to the row of its queue and minute; one whose
# figures change is taken out of its old row and added anew; a deleted one is taken out. The
# worker's finish pays one upsert. The statements below are shared by both dialects but for
# the minute (SQLite's CAST truncates, which is the floor for times after 1970; metrics.py
# computes the same minute in Python) and the wrapping (trigger bodies, plpgsql function).
_MINUTE_COLUMNS = ("(minute, queue, attempts, completed, failed, reruns, wait_n, wait_sum, "
                   "wait_max, run_n, run_sum, run_max, min_seq, dirty)")
_MINUTE_OF_NEW_SQLITE = "CAST(NEW.finished_at / 60 AS INTEGER)"
_MINUTE_OF_OLD_SQLITE = "CAST(OLD.finished_at / 60 AS INTEGER)"
_MINUTE_ADD_FIGURES = (
    ", NEW.queue, 1, CASE WHEN NEW.outcome = 'completed' THEN 1 ELSE 0 END, "
    "CASE WHEN NEW.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END, "
    "CASE WHEN NEW.number > 1 THEN 1 ELSE 0 END, CASE WHEN NEW.due_at IS NULL THEN 0 ELSE 1 END, "
    "COALESCE(NEW.started_at - NEW.due_at, 0), NEW.started_at - NEW.due_at, "
    "CASE WHEN NEW.duration IS NULL THEN 0 ELSE 1 END, COALESCE(NEW.duration, 0), NEW.duration, "
    "NEW.seq, 0 WHERE NEW.finished_at IS NOT NULL "
    "ON CONFLICT (minute, queue) DO UPDATE SET attempts = attempt_minute.attempts + 1, "
    "completed = attempt_minute.completed + excluded.completed, "
    "failed = attempt_minute.failed + excluded.failed, "
    "reruns = attempt_minute.reruns + excluded.reruns, "
    "wait_n = attempt_minute.wait_n + excluded.wait_n, "
    "wait_sum = attempt_minute.wait_sum + excluded.wait_sum, "
    "wait_max = CASE WHEN excluded.wait_max > attempt_minute.wait_max OR attempt_minute.wait_max "
    "IS NULL THEN excluded.wait_max ELSE attempt_minute.wait_max END, "
    "run_n = attempt_minute.run_n + excluded.run_n, "
    "run_sum = attempt_minute.run_sum + excluded.run_sum, "
    "run_max = CASE WHEN excluded.run_max > attempt_minute.run_max OR attempt_minute.run_max "
    "IS NULL THEN excluded.run_max ELSE attempt_minute.run_max END, "
    "min_seq = CASE WHEN excluded.min_seq < attempt_minute.min_seq THEN excluded.min_seq "
    "ELSE attempt_minute.min_seq END")
_MINUTE_REMOVE_FIGURES = (
    "UPDATE attempt_minute SET attempts = attempts - 1, "
    "completed = completed - CASE WHEN OLD.outcome = 'completed' THEN 1 ELSE 0 END, "
    "failed = failed - CASE WHEN OLD.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END, "
    "reruns = reruns - CASE WHEN OLD.number > 1 THEN 1 ELSE 0 END, "
    "wait_n = wait_n - CASE WHEN OLD.due_at IS NULL THEN 0 ELSE 1 END, "
    "wait_sum = wait_sum - COALESCE(OLD.started_at - OLD.due_at, 0), "
    "run_n = run_n - CASE WHEN OLD.duration IS NULL THEN 0 ELSE 1 END, "
    "run_sum = run_sum - COALESCE(OLD.duration, 0), "
    "dirty = CASE WHEN OLD.started_at - OLD.due_at >= wait_max OR OLD.duration >= run_max "
    "THEN 1 ELSE dirty END WHERE queue = OLD.queue AND minute = ")
_MINUTE_PRUNE = "DELETE FROM attempt_minute WHERE attempts = 0 AND queue = OLD.queue AND minute = "
_MINUTE_ADD_SQLITE = ("INSERT INTO attempt_minute " + _MINUTE_COLUMNS + " SELECT "
                      + _MINUTE_OF_NEW_SQLITE + _MINUTE_ADD_FIGURES)
_MINUTE_REMOVE_SQLITE = (_MINUTE_REMOVE_FIGURES + _MINUTE_OF_OLD_SQLITE + "; " + _MINUTE_PRUNE
                         + _MINUTE_OF_OLD_SQLITE)
_MINUTE_CHANGED = ("OLD.finished_at IS NOT NEW.finished_at OR OLD.outcome IS NOT NEW.outcome OR "
                   "OLD.number IS NOT NEW.number OR OLD.started_at IS NOT NEW.started_at OR "
                   "OLD.due_at IS NOT NEW.due_at OR OLD.duration IS NOT NEW.duration OR "
                   "OLD.queue IS NOT NEW.queue")
_MINUTE_INSERT_SQLITE = ("CREATE TRIGGER attempt_minute_insert AFTER INSERT ON attempt "
                         "WHEN NEW.finished_at IS NOT NULL BEGIN " + _MINUTE_ADD_SQLITE + "; END")
_MINUTE_FINISH_SQLITE = ("CREATE TRIGGER attempt_minute_finish AFTER UPDATE OF finished_at ON "
                         "attempt WHEN OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL "
                         "BEGIN " + _MINUTE_ADD_SQLITE + "; END")
_MINUTE_UPDATE_SQLITE = ("CREATE TRIGGER attempt_minute_update AFTER UPDATE OF finished_at, "
                         "outcome, number, started_at, due_at, duration, queue ON attempt "
                         "WHEN OLD.finished_at IS NOT NULL AND (" + _MINUTE_CHANGED + ") BEGIN "
                         + _MINUTE_REMOVE_SQLITE + "; " + _MINUTE_ADD_SQLITE + "; END")
#: meta key present (inserted and deleted again) only inside a transaction that prunes old jobs
#: (retention.py): the rollups of past windows keep what is pruned, so the delete triggers of
#: attempt_minute and job_failed_minute leave them alone while it is there. Never committed.
PRUNING = "pruning"
_PRUNING_NOW = "EXISTS (SELECT 1 FROM meta WHERE key = '" + PRUNING + "')"
_NOT_PRUNING = "NOT " + _PRUNING_NOW
_MINUTE_DELETE_SQLITE = (
    "CREATE TRIGGER attempt_minute_delete AFTER DELETE ON attempt "
    "WHEN OLD.finished_at IS NOT NULL AND " + _NOT_PRUNING + " BEGIN " + _MINUTE_REMOVE_SQLITE
    + "; END"
)
_MINUTE_SUMS = (
    ", queue, count(*), SUM(CASE WHEN outcome = 'completed' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN number > 1 THEN 1 ELSE 0 END), count(due_at), "
    "COALESCE(SUM(started_at - due_at), 0), MAX(started_at - due_at), count(duration), "
    "COALESCE(SUM(duration), 0), MAX(duration), MIN(seq), 0")
_MINUTE_FILL_FIGURES = (_MINUTE_SUMS + " FROM attempt WHERE finished_at IS NOT NULL "
                        "GROUP BY 1, 2")
_MINUTE_FILL_SQLITE = ("INSERT INTO attempt_minute " + _MINUTE_COLUMNS + " SELECT "
                       "CAST(finished_at / 60 AS INTEGER)" + _MINUTE_FILL_FIGURES)
_MINUTE_FILL_POSTGRES = ("INSERT INTO attempt_minute " + _MINUTE_COLUMNS + " SELECT "
                         "FLOOR(finished_at / 60)::BIGINT" + _MINUTE_FILL_FIGURES)

# job_failed_minute (models.FailedMinute): a job counts in the row of its queue, state, last
# error and finish minute while it is failed or dead with a finish time; a change of any of
# those moves it (out of the old row, into the new), a delete takes it out. A completion
# writes nothing here; a failure one upsert, the claim of a failed job one update.
_FAILED_SET_NEW = "NEW.state IN ('failed', 'dead') AND NEW.finished_at IS NOT NULL"
_FAILED_SET_OLD = "OLD.state IN ('failed', 'dead') AND OLD.finished_at IS NOT NULL"
_FAILED_ADD = (", NEW.queue, NEW.state, COALESCE(NEW.last_error, ''), 1 WHERE " + _FAILED_SET_NEW
               + " ON CONFLICT (minute, queue, state, error) DO UPDATE SET "
               "n = job_failed_minute.n + 1")
_FAILED_KEY_OLD = ("queue = OLD.queue AND state = OLD.state AND "
                   "error = COALESCE(OLD.last_error, '') AND minute = ")
_FAILED_ADD_SQLITE = ("INSERT INTO job_failed_minute (minute, queue, state, error, n) SELECT "
                      + _MINUTE_OF_NEW_SQLITE + _FAILED_ADD)
_FAILED_REMOVE_SQLITE = ("UPDATE job_failed_minute SET n = n - 1 WHERE " + _FAILED_KEY_OLD
                         + _MINUTE_OF_OLD_SQLITE + "; DELETE FROM job_failed_minute WHERE n = 0 "
                         "AND " + _FAILED_KEY_OLD + _MINUTE_OF_OLD_SQLITE)
_FAILED_INSERT_SQLITE = ("CREATE TRIGGER job_failed_insert AFTER INSERT ON job WHEN "
                         + _FAILED_SET_NEW + " BEGIN " + _FAILED_ADD_SQLITE + "; END")
_FAILED_UPDATE_SQLITE = (
    "CREATE TRIGGER job_failed_update AFTER UPDATE OF state, finished_at, last_error, queue ON "
    "job WHEN ((" + _FAILED_SET_OLD + ") OR (" + _FAILED_SET_NEW + ")) AND (OLD.state IS NOT "
    "NEW.state OR OLD.finished_at IS NOT NEW.finished_at OR OLD.last_error IS NOT "
    "NEW.last_error OR OLD.queue IS NOT NEW.queue) BEGIN UPDATE job_failed_minute SET n = n - 1 "
    "WHERE " + _FAILED_SET_OLD + " AND " + _FAILED_KEY_OLD + _MINUTE_OF_OLD_SQLITE + "; "
    "DELETE FROM job_failed_minute WHERE n = 0 AND " + _FAILED_SET_OLD + " AND "
    + _FAILED_KEY_OLD + _MINUTE_OF_OLD_SQLITE + "; " + _FAILED_ADD_SQLITE + "; END")
_FAILED_DELETE_SQLITE = ("CREATE TRIGGER job_failed_delete AFTER DELETE ON job WHEN "
                         + _FAILED_SET_OLD + " AND " + _NOT_PRUNING + " BEGIN "
                         + _FAILED_REMOVE_SQLITE + "; END")
_FAILED_FILL = (", queue, state, COALESCE(last_error, ''), count(*) FROM job WHERE state IN "
                "('failed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2, 3, 4")
_FAILED_FILL_SQLITE = ("INSERT INTO job_failed_minute (minute, queue, state, error, n) SELECT "
                       "CAST(finished_at / 60 AS INTEGER)" + _FAILED_FILL)
_FAILED_FILL_POSTGRES = ("INSERT INTO job_failed_minute (minute, queue, state, error, n) SELECT "
                         "FLOOR(finished_at / 60)::BIGINT" + _FAILED_FILL)


# PostgreSQL: job_count and job_failed_minute follow inserts, updates and deletes of jobs once
# per statement, from its transition tables, into rows of the writing session (see store/pgsql.py).
# Per row (as on SQLite), a bulk enqueue, retry or delete of n jobs updates the same few rows
# n times in one transaction, each update walking past all the row's earlier versions there:
# n**2 (100,000 lines took 40 s).
#: Every trigger installed on PostgreSQL, now or by an earlier version, dropped before installing.
_DROP_PG_TRIGGERS = (
    "DROP TRIGGER IF EXISTS job_count_insert_delete ON job; "  # version 3's
    "DROP TRIGGER IF EXISTS job_count_update ON job; "
    "DROP TRIGGER IF EXISTS job_failed_insert_delete ON job; "
    "DROP TRIGGER IF EXISTS job_failed_update ON job; "
    "DROP TRIGGER IF EXISTS attempt_minute_insert_delete ON attempt; "
    "DROP TRIGGER IF EXISTS job_counts_insert ON job; "
    "DROP TRIGGER IF EXISTS job_counts_update ON job; "
    "DROP TRIGGER IF EXISTS job_counts_delete ON job; "
    "DROP TRIGGER IF EXISTS job_rank ON job; DROP TRIGGER IF EXISTS job_release ON job; "
    "DROP TRIGGER IF EXISTS attempt_minute_insert ON attempt; "
    "DROP TRIGGER IF EXISTS attempt_minute_delete ON attempt; "
    "DROP TRIGGER IF EXISTS attempt_minute_update ON attempt; "
    "DROP TRIGGER IF EXISTS job_notify ON job; DROP TRIGGER IF EXISTS queue_notify ON queue; "
    "DROP TRIGGER IF EXISTS meta_notify ON meta; "
    "DROP TRIGGER IF EXISTS setting_notify ON setting")
_DROP_PG_NOTIFY = (  # before version 6 one trigger per table, then one per table and event
    "DROP TRIGGER IF EXISTS job_notify ON job; DROP TRIGGER IF EXISTS queue_notify ON queue; "
    "DROP TRIGGER IF EXISTS meta_notify ON meta; "
    "DROP TRIGGER IF EXISTS setting_notify ON setting; "
    "DROP TRIGGER IF EXISTS job_notify_insert ON job; "
    "DROP TRIGGER IF EXISTS job_notify_update ON job; "
    "DROP TRIGGER IF EXISTS job_notify_delete ON job; "
    "DROP TRIGGER IF EXISTS queue_notify_insert ON queue; "
    "DROP TRIGGER IF EXISTS queue_notify_update ON queue; "
    "DROP TRIGGER IF EXISTS queue_notify_delete ON queue; "
    "DROP TRIGGER IF EXISTS meta_notify_insert ON meta; "
    "DROP TRIGGER IF EXISTS meta_notify_update ON meta; "
    "DROP TRIGGER IF EXISTS meta_notify_delete ON meta; "
    "DROP TRIGGER IF EXISTS setting_notify_insert ON setting; "
    "DROP TRIGGER IF EXISTS setting_notify_update ON setting; "
    "DROP TRIGGER IF EXISTS setting_notify_delete ON setting")


def _install_notify_postgres(db: Database) -> None:
    """Idle workers and waiters LISTEN (``wait_change``): a committed change to jobs (enqueue,
    finish, retry, cancel), queues (resume, limits), meta (resume all) or settings wakes them.
    One NOTIFY per statement that changed a row, on the schema's own channel (queues in other
    schemas of the database wake no one here); PostgreSQL folds repeats within a transaction. A
    statement trigger also fires for a statement that changed nothing (an idle worker's empty
    claim): the transition table says so, and such a statement wakes no one (else two idle
    workers would wake each other in a loop). Transition tables need one trigger per event."""
    db.execute_sql(_DROP_PG_NOTIFY)
    db.execute_sql("DROP FUNCTION IF EXISTS queuectl_notify()")
    db.execute_sql(_NOTIFY_FUNCTION_POSTGRES)
    db.execute_sql(_NOTIFY_TRIGGERS_POSTGRES)


#: A notification's channel: the schema's own (``postgres.notify_channel`` says which), so
#: listeners of other schemas of the database are not woken (before version 11 all shared
#: 'queuectl'). The payload names the schema, and whether queues, meta or settings changed
#: (" control").
_NOTIFY_FUNCTION_POSTGRES = (
    "CREATE OR REPLACE FUNCTION queuectl_notify_changed() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "IF EXISTS (SELECT FROM changed) THEN "
    "PERFORM pg_notify(CASE WHEN octet_length(TG_TABLE_SCHEMA) <= 54 "
    "THEN 'queuectl.' || TG_TABLE_SCHEMA ELSE 'queuectl#' || md5(TG_TABLE_SCHEMA) END, "
    "CASE WHEN TG_TABLE_NAME = 'job' THEN TG_TABLE_SCHEMA "
    "ELSE TG_TABLE_SCHEMA || ' control' END); END IF; "
    "RETURN NULL; END $$")


_NOTIFY_TRIGGERS_POSTGRES = (  # the tables whose changes wake the listeners, each event
    "CREATE TRIGGER job_notify_insert AFTER INSERT ON job REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER job_notify_update AFTER UPDATE ON job REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER job_notify_delete AFTER DELETE ON job REFERENCING OLD TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER queue_notify_insert AFTER INSERT ON queue REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER queue_notify_update AFTER UPDATE ON queue REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER queue_notify_delete AFTER DELETE ON queue REFERENCING OLD TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER meta_notify_insert AFTER INSERT ON meta REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER meta_notify_update AFTER UPDATE ON meta REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER meta_notify_delete AFTER DELETE ON meta REFERENCING OLD TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER setting_notify_insert AFTER INSERT ON setting REFERENCING NEW TABLE AS "
    "changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER setting_notify_update AFTER UPDATE ON setting REFERENCING NEW TABLE AS "
    "changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER setting_notify_delete AFTER DELETE ON setting REFERENCING OLD TABLE AS "
    "changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed()")


def _install_triggers(db: Database) -> None:
    """Install the triggers that keep ``job_count``, ``job.rank``, ``attempt_minute`` and
    ``job_failed_minute``, and fill the counts and rollups from the jobs and attempts there
    are (the caller holds the write transaction, so nothing changes in between)."""
    if isinstance(db, SqliteDatabase):
        db.execute_sql("CREATE TRIGGER job_count_insert AFTER INSERT ON job BEGIN "
                       "INSERT INTO job_count (queue, state, n) VALUES (NEW.queue, NEW.state, 1) "
                       "ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1; END")
        db.execute_sql(
            "CREATE TRIGGER job_count_update AFTER UPDATE OF state, queue ON job "
            "WHEN NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue BEGIN "
            "UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state; "
            "INSERT INTO job_count (queue, state, n) VALUES (NEW.queue, NEW.state, 1) "
            "ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1; END"
        )
        db.execute_sql(
            "CREATE TRIGGER job_count_delete AFTER DELETE ON job BEGIN "
            "UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state; END"
        )
        db.execute_sql(_RANK_TRIGGER_SQLITE)
        # A job that completes releases the jobs waiting on it, whoever wrote the change.
        db.execute_sql("CREATE TRIGGER job_release AFTER UPDATE OF state ON job "
                       "WHEN NEW.state = 'completed' AND OLD.state IS NOT 'completed' BEGIN "
                       "UPDATE job SET waiting_on = waiting_on - 1 WHERE seq IN "
                       "(SELECT job_seq FROM job_dep WHERE dep_seq = NEW.seq) AND waiting_on > 0 "
                       "AND state IN ('pending', 'failed'); END")
        db.execute_sql(_MINUTE_INSERT_SQLITE)
        db.execute_sql(_MINUTE_FINISH_SQLITE)
        db.execute_sql(_MINUTE_UPDATE_SQLITE)
        db.execute_sql(_MINUTE_DELETE_SQLITE)
        db.execute_sql(_FAILED_INSERT_SQLITE)
        db.execute_sql(_FAILED_UPDATE_SQLITE)
        db.execute_sql(_FAILED_DELETE_SQLITE)
    else:  # PostgreSQL
        db.execute_sql(_DROP_PG_TRIGGERS)  # an upgrade installs them anew (notify: below)
        db.execute_sql("DROP FUNCTION IF EXISTS job_count_change(); "  # version 3's, per row
                       "DROP FUNCTION IF EXISTS job_failed_change()")
        db.execute_sql(_RANK_FUNCTION_POSTGRES)
        pgsql.install(db)
        _install_notify_postgres(db)
    JobCount.delete().execute()
    JobCount.insert_from(Job.select(Job.queue, Job.state, fn.COUNT(Job.seq))
                         .group_by(Job.queue, Job.state),
                         [JobCount.queue, JobCount.state, JobCount.n]).execute()
    AttemptMinute.delete().execute()
    FailedMinute.delete().execute()
    if isinstance(db, SqliteDatabase):
        db.execute_sql(_MINUTE_FILL_SQLITE)
        db.execute_sql(_FAILED_FILL_SQLITE)
    else:
        db.execute_sql(_MINUTE_FILL_POSTGRES)
        db.execute_sql(_FAILED_FILL_POSTGRES)


def _upgrade_to_4(migrator: SchemaMigrator) -> None:
    """PostgreSQL: jobs counted per statement, not per row (see pgsql.JOBS_INSERT; SQLite's
    triggers are unchanged). Both: seq ends the job_due index (the oldest due in one step)."""
    db = migrator.database
    db.execute_sql("DROP INDEX IF EXISTS job_due")
    Job._schema.create_indexes(safe=True)
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
    migrate(migrator.add_column("job", "schedule", CharField(null=True)))
    Schedule.create_table()
    _install_schedule_notify(migrator.database)


_SCHEDULE_NOTIFY_POSTGRES = (
    "DROP TRIGGER IF EXISTS schedule_notify_insert ON schedule; "
    "DROP TRIGGER IF EXISTS schedule_notify_update ON schedule; "
    "DROP TRIGGER IF EXISTS schedule_notify_delete ON schedule; "
    "CREATE TRIGGER schedule_notify_insert AFTER INSERT ON schedule REFERENCING NEW TABLE AS "
    "changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER schedule_notify_update AFTER UPDATE ON schedule REFERENCING NEW TABLE AS "
    "changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed(); "
    "CREATE TRIGGER schedule_notify_delete AFTER DELETE ON schedule REFERENCING OLD TABLE AS "
    "changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed()")


def _install_schedule_notify(db: Database) -> None:
    """PostgreSQL: a schedule added, paused, resumed or moved on wakes the idle workers (their
    sleep ends at the earliest due time, which may now be sooner), as a job change does. SQLite
    needs nothing: every commit wakes them (``wake``)."""
    if not isinstance(db, SqliteDatabase):
        db.execute_sql(_SCHEDULE_NOTIFY_POSTGRES)


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
        db.execute_sql("DROP TRIGGER IF EXISTS attempt_minute_delete")
        db.execute_sql("DROP TRIGGER IF EXISTS job_failed_delete")
        db.execute_sql(_MINUTE_DELETE_SQLITE)
        db.execute_sql(_FAILED_DELETE_SQLITE)
    else:  # version 9's functions, with the pruning guard (store/pgsql.py)
        db.execute_sql(JOBS_DELETE)
        db.execute_sql(MINUTE_DELETE)


def _upgrade_to_11(migrator: SchemaMigrator) -> None:
    """What the console and ``wait`` watch ignores the workers' heartbeats: SQLite's
    job_count.v (``_install_change_counts_sqlite``); PostgreSQL's notifications go to a
    channel of the schema's own (``notify_channel``), so that a queue in one schema no longer
    wakes the listeners of every other schema of the database."""
    db = migrator.database
    if isinstance(db, SqliteDatabase):
        _install_change_counts_sqlite(db)
    else:
        db.execute_sql(_NOTIFY_FUNCTION_POSTGRES)


# SQLite's data_version moves at every commit, a heartbeat's included (each worker's, once a
# second), so what shows jobs cannot tell a heartbeat from a change to jobs by it. job_count.v
# can: it grows with every change of a job (insert, delete, any update), of a queue (pause,
# limit: what a waiting job is held by) and of the ``pause`` of every queue, and with nothing
# else; ``jobs_token`` reads its sum. No write is added to the claim or the finish: their
# state change already writes the two job_count rows that carry v; an update that keeps the
# job's state and queue (edit, priority, a dependency released, ``pause JOB_ID``) bumps the
# row of its state. The trigger names of job_count are those ``_install_triggers`` created.
_CHANGE_COUNTS_SQLITE = (
    "DROP TRIGGER IF EXISTS job_count_insert",
    "DROP TRIGGER IF EXISTS job_count_update",
    "DROP TRIGGER IF EXISTS job_count_delete",
    "CREATE TRIGGER job_count_insert AFTER INSERT ON job BEGIN "
    "INSERT INTO job_count (queue, state, n, v) VALUES (NEW.queue, NEW.state, 1, 1) "
    "ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1, v = job_count.v + 1; END",
    "CREATE TRIGGER job_count_update AFTER UPDATE OF state, queue ON job "
    "WHEN NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue BEGIN "
    "UPDATE job_count SET n = n - 1, v = v + 1 WHERE queue = OLD.queue AND state = OLD.state; "
    "INSERT INTO job_count (queue, state, n, v) VALUES (NEW.queue, NEW.state, 1, 1) "
    "ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1, v = job_count.v + 1; END",
    "CREATE TRIGGER job_count_delete AFTER DELETE ON job BEGIN "
    "UPDATE job_count SET n = n - 1, v = v + 1 WHERE queue = OLD.queue AND state = OLD.state; "
    "END",
    "CREATE TRIGGER job_touch AFTER UPDATE ON job "
    "WHEN NEW.state IS OLD.state AND NEW.queue IS OLD.queue BEGIN "
    "UPDATE job_count SET v = v + 1 WHERE queue = NEW.queue AND state = NEW.state; END",
    "CREATE TRIGGER queue_touch_insert AFTER INSERT ON queue BEGIN "
    "UPDATE job_count SET v = v + 1 WHERE queue = NEW.name; END",
    "CREATE TRIGGER queue_touch_update AFTER UPDATE ON queue BEGIN "
    "UPDATE job_count SET v = v + 1 WHERE queue IN (OLD.name, NEW.name); END",
    "CREATE TRIGGER queue_touch_delete AFTER DELETE ON queue BEGIN "
    "UPDATE job_count SET v = v + 1 WHERE queue = OLD.name; END",
    "CREATE TRIGGER paused_all_touch_insert AFTER INSERT ON meta "
    "WHEN NEW.key = 'paused_all' BEGIN UPDATE job_count SET v = v + 1; END",
    "CREATE TRIGGER paused_all_touch_update AFTER UPDATE ON meta "
    "WHEN NEW.key = 'paused_all' OR OLD.key = 'paused_all' BEGIN "
    "UPDATE job_count SET v = v + 1; END",
    "CREATE TRIGGER paused_all_touch_delete AFTER DELETE ON meta "
    "WHEN OLD.key = 'paused_all' BEGIN UPDATE job_count SET v = v + 1; END",
)


def _install_change_counts_sqlite(db: Database) -> None:
    """job_count.v and the triggers that keep it (a new database and version 11's upgrade)."""
    if "v" not in [row[1] for row in db.execute_sql("PRAGMA table_info(job_count)").fetchall()]:
        db.execute_sql("ALTER TABLE job_count ADD COLUMN v INTEGER NOT NULL DEFAULT 0")
    for statement in _CHANGE_COUNTS_SQLITE:
        db.execute_sql(statement)


#: meta key of the counter worker ids are taken from (a rowid would be reused after a delete).
LAST_WORKER_ID = "last_worker_id"
UPGRADES: dict[int, Callable[[SchemaMigrator], None]] = {2: _upgrade_to_2, 3: _upgrade_to_3,
                                                         4: _upgrade_to_4, 5: _upgrade_to_5,
                                                         6: _upgrade_to_6, 7: _upgrade_to_7,
                                                         8: _upgrade_to_8, 9: _upgrade_to_9,
                                                         10: _upgrade_to_10, 11: _upgrade_to_11}


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
                    raise DatabaseUnusable(f"database {describe_target()} has tables but no "
                                           "queuectl schema (use an empty database or schema)")
                raise DatabaseUnusable(
                    f"{db.database} is an SQLite database but not a queuectl one"
                )
            db.create_tables(MODELS)
            _install_triggers(db)
            _install_schedule_notify(db)
            if isinstance(db, SqliteDatabase):
                _install_change_counts_sqlite(db)
            Meta.create(key="schema_version", value=str(SCHEMA_VERSION))
            Meta.create(key=LAST_WORKER_ID, value="0")
            return
        from playhouse.migrate import SchemaMigrator

        from queuectl_tui.progress import Bar, bar
        migrator = SchemaMigrator.from_database(db)
        # A step rewrites tables or builds indexes: minutes on a big database, said on a terminal.
        with bar("upgrading the database", SCHEMA_VERSION - version, "steps") if progress \
                else Bar() as shown:
            while version < SCHEMA_VERSION:
                version += 1
                shown.update(description=f"upgrading the database to schema version {version}")
                UPGRADES[version](migrator)
                Meta.update(value=str(version)).where(Meta.key == "schema_version").execute()
                shown.advance()


def _current_version(db: SqliteDatabase) -> int | None:
    if isinstance(db, SqliteDatabase):  # one plain query: this runs at every command's start
        try:
            row = db.execute_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
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
        raise DatabaseUnusable(
            f"database {describe_target()} has schema version {version}, newer than this "
            f"queuectl-tui supports ({SCHEMA_VERSION}); upgrade queuectl-tui"
        )
    return version


def schema_version() -> int:
    return int(Meta.get(Meta.key == "schema_version").value)
