"""Opening the database: pragmas, schema creation, the schema version and upgrades.

The schema version lives in the ``meta`` table. A database written by a newer queuectl is
refused rather than guessed at; an older one is upgraded in place, step by step, inside a
transaction, by the functions in ``UPGRADES``.
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
import sqlite3
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

from peewee import (
    BigIntegerField,
    CharField,
    DatabaseError,
    DoubleField,
    IntegerField,
    InterfaceError,
    OperationalError,
    SqliteDatabase,
    TextField,
    fn,
)

from queuectl_tui import paths, pgsql
from queuectl_tui.errors import DatabaseUnusable, InvalidInput
from queuectl_tui.models import (
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
    database,
)
from queuectl_tui.pgsql import FOLD, JOBS_DELETE, MINUTE_DELETE

if TYPE_CHECKING:
    from pathlib import Path

    from playhouse.migrate import SchemaMigrator

SCHEMA_VERSION = 11
BUSY_TIMEOUT_MS = 15_000

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
# per statement, from its transition tables, into rows of the writing session (see pgsql.py).
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


def _install_notify_postgres(db) -> None:
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


#: A notification's channel: the schema's own (``notify_channel`` says which), so listeners of
#: other schemas of the database are not woken (before version 11 all shared 'queuectl'). The
#: payload names the schema, and whether queues, meta or settings changed (" control").
_NOTIFY_FUNCTION_POSTGRES = (
    "CREATE OR REPLACE FUNCTION queuectl_notify_changed() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "IF EXISTS (SELECT FROM changed) THEN "
    "PERFORM pg_notify(CASE WHEN octet_length(TG_TABLE_SCHEMA) <= 54 "
    "THEN 'queuectl.' || TG_TABLE_SCHEMA ELSE 'queuectl#' || md5(TG_TABLE_SCHEMA) END, "
    "CASE WHEN TG_TABLE_NAME = 'job' THEN TG_TABLE_SCHEMA "
    "ELSE TG_TABLE_SCHEMA || ' control' END); END IF; "
    "RETURN NULL; END $$")


def notify_channel(schema: str) -> str:
    """The NOTIFY channel of a schema's queue, as the trigger function above names it: within
    PostgreSQL's 63 bytes of an identifier, the schema's name when it fits, else its md5 (the
    prefixes differ, so the two forms never meet)."""
    raw = schema.encode()
    if len(raw) <= 54:
        return "queuectl." + schema
    import hashlib  # rarely needed: its import costs a command's start-up a few ms
    return "queuectl#" + hashlib.md5(raw, usedforsecurity=False).hexdigest()


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


def _install_triggers(db) -> None:
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


def _install_schedule_notify(db) -> None:
    """PostgreSQL: a schedule added, paused, resumed or moved on wakes the idle workers (their
    sleep ends at the earliest due time, which may now be sooner), as a job change does. SQLite
    needs nothing: every commit wakes them (``wake``)."""
    if not isinstance(db, SqliteDatabase):
        db.execute_sql(_SCHEDULE_NOTIFY_POSTGRES)


def _upgrade_to_9(migrator: SchemaMigrator) -> None:
    """PostgreSQL without one lock for every writer: the counts and rollups keep a row per
    writing session (``slot``), folded by ``queuectl_fold()``; dependents are released once per
    statement and only when some exist; the rank trigger runs only when the rank changes
    (pgsql.py). SQLite: nothing to change (its writers take turns anyway)."""
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
    else:  # version 9's functions, with the pruning guard (pgsql.py)
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


def _install_change_counts_sqlite(db) -> None:
    """job_count.v and the triggers that keep it (a new database and version 11's upgrade)."""
    if "v" not in [row[1] for row in db.execute_sql("PRAGMA table_info(job_count)").fetchall()]:
        db.execute_sql("ALTER TABLE job_count ADD COLUMN v INTEGER NOT NULL DEFAULT 0")
    for statement in _CHANGE_COUNTS_SQLITE:
        db.execute_sql(statement)


#: Sum of job_count.v (see _CHANGE_COUNTS_SQLITE): one small table read.
_JOBS_TOKEN_SQLITE = "SELECT total(v) FROM job_count"


class _JobsToken(threading.local):
    version = None  # (connection, data_version) when ``token`` was read
    token = None


_jobs_token = _JobsToken()


def jobs_token():
    """Like ``change_token``, but one that moves only when jobs, queues or the pause of every
    queue changed, not at the workers' heartbeats (what shows jobs reads them again only
    then). SQLite: job_count.v's sum, read only when data_version moved since this thread's
    last look (data_version itself is read from shared memory). PostgreSQL: the change token
    (heartbeats send no notification there)."""
    if not is_sqlite():
        return change_token()
    version = change_token()
    kept, conn = _jobs_token, database.connection()
    if kept.version != (conn, version) or kept.token is None:
        kept.token = database.execute_sql(_JOBS_TOKEN_SQLITE).fetchone()[0]
        kept.version = (conn, version)
    return kept.token


#: meta key of the counter worker ids are taken from (a rowid would be reused after a delete).
LAST_WORKER_ID = "last_worker_id"
UPGRADES: dict[int, Callable[[SchemaMigrator], None]] = {2: _upgrade_to_2, 3: _upgrade_to_3,
                                                         4: _upgrade_to_4, 5: _upgrade_to_5,
                                                         6: _upgrade_to_6, 7: _upgrade_to_7,
                                                         8: _upgrade_to_8, 9: _upgrade_to_9,
                                                         10: _upgrade_to_10, 11: _upgrade_to_11}


def open_db(path: Path | str | None = None, *, create: bool = True,
            progress: bool = False) -> SqliteDatabase:
    """Connect the models to the SQLite file at ``path`` (the configured default if None), or
    to the PostgreSQL database a ``postgresql://`` URL names. ``progress``: an upgrade of the
    schema shows a progress bar on a terminal (a command; never a worker or the console)."""
    path = path if path is not None else paths.target(None)
    if paths.is_url(path):
        return _open_postgres(path, progress)
    path = paths.real(os.fspath(path))  # links resolved, as str(Path(path)) without pathlib
    if database.obj is not None and getattr(database.obj, "database", None) == path:
        return database.obj
    close_db()
    if not os.path.exists(path):
        if not create:
            raise DatabaseUnusable(f"no database at {path}")
        try:
            paths.ensure_private_dir(os.path.dirname(path) or ".")
            # Create the file ourselves so that it is 0600 from its first byte.
            os.close(paths.create_new_file(path))
        except OSError as exc:
            raise DatabaseUnusable(f"cannot create database {path}: {exc.strerror}") from None
    elif not os.path.isfile(path):
        # SQLite would open a directory (and fail later) or a device such as /dev/null (and
        # write a journal beside it): refused before anything is created next to it.
        raise DatabaseUnusable(f"{path} is not a database file (it is a "
                               f"{'directory' if os.path.isdir(path) else 'special file'})")
    db = SqliteDatabase(
        path,
        pragmas={  # journal_mode=wal is set once the file is known to be ours (below)
            "synchronous": "normal",
            "foreign_keys": 1,
            "busy_timeout": BUSY_TIMEOUT_MS,
        },
        timeout=BUSY_TIMEOUT_MS / 1000,
        check_same_thread=False,
    )
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        _ensure_schema(db, progress)
        # Persistent in the file, and a change to it: only now that the file is known to be a
        # queuectl database (a foreign or newer one is refused above, byte for byte untouched).
        db.execute_sql("PRAGMA journal_mode=wal")
    except DatabaseUnusable:
        close_db()
        raise
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        close_db()
        raise DatabaseUnusable(describe_db_error(exc, path)) from None
    try:  # only beside a database known to be ours; also one moved without its logs
        paths.ensure_private_dir(paths.logs_path(path))
        os.close(_WriterQueue.open(path))  # there from the start: a refused write changes nothing
    except OSError:
        pass  # a read-only place: reading works; a job says why it has no log
    global _opened
    _opened += 1  # writers look for the lock file again (the schema's first write came before)
    return db


# --- PostgreSQL ---------------------------------------------------------------------------------

PG_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT = 5  # seconds: an unreachable server is one clear line, not a long hang
IDLE_IN_TRANSACTION_MS = 30_000


#: libpq connection parameters whose value is a secret; a URL can carry any of them in its query
#: string (``?password=…``). Those that name files (passfile, sslkey) are shown.
SECRET_PARAMS = frozenset({"password", "sslpassword", "oauth_client_secret"})


def redact(url: str) -> str:
    """The URL with every secret it carries replaced by ``***``: the password before the host,
    each secret parameter of the query string (``SECRET_PARAMS``, their names percent-encoded
    or not) and any parameter whose value itself holds one (``dbname=host=h password=p``, a
    URL). What messages, screens and ``status --json`` show: the one place that hides them."""
    from urllib.parse import unquote, urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("://", 1)[0] + "://…"
    changed = password is not None
    if changed:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}")
    if parts.query:
        fields = []
        for field in parts.query.split("&"):
            key, eq, value = field.partition("=")
            if eq and (unquote(key.replace("+", " ")).strip().lower() in SECRET_PARAMS
                       or _holds_secret(unquote(value.replace("+", " ")))):
                field, changed = f"{key}=***", True
            fields.append(field)
        parts = parts._replace(query="&".join(fields))
    return urlunsplit(parts) if changed else url


def _holds_secret(value: str) -> bool:
    """A parameter's value that is a connection string of its own with a secret in it."""
    if paths.is_url(value.strip()):
        return redact(value.strip()) != value.strip()
    import re
    return re.search(r"(?i)(?:^|[\s'\"])(?:" + "|".join(sorted(SECRET_PARAMS)) + r")\s*=",
                     value) is not None


def parse_pg_url(url: str) -> tuple[str, dict]:
    """(database name, connect parameters) from ``postgresql://user:password@host:port/db?…``
    (query parameters such as ``sslmode`` or ``options`` are passed on to libpq)."""
    from urllib.parse import parse_qsl, unquote, urlsplit
    shown = redact(url)
    usage = "expected postgresql://user:password@host:port/dbname or a file path"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"bad database URL {shown} ({exc}); {usage}") from None
    if parts.scheme.lower() not in PG_SCHEMES:
        raise InvalidInput(f"unsupported database URL {shown}; {usage}")
    name = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not name or "/" in name:
        raise InvalidInput(f"database URL {shown} names no database; {usage}")
    params: dict = {"host": unquote(parts.hostname) if parts.hostname else None, "port": port,
                    "user": unquote(parts.username) if parts.username else None,
                    "password": unquote(parts.password) if parts.password is not None else None}
    params = {key: value for key, value in params.items() if value is not None}
    params.update(parse_qsl(parts.query))
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    # Who each session is, in pg_stat_activity (the host and PID of a worker, say).
    params.setdefault("application_name", f"queuectl-tui {socket.gethostname()} {os.getpid()}")
    return name, params


def _postgres_class():
    from peewee import PostgresqlDatabase, __exception_wrapper__

    class Postgres(PostgresqlDatabase):
        """A connection the server dropped (restart, failover, idle kill) is replaced at the
        next statement outside a transaction; inside one, the error reaches the caller, whose
        transaction is then rolled back as a whole (a worker retries it)."""

        url = display = ""
        liveness: dict | None = None  # what keep_alive asks of new connections

        def _initialize_connection(self, conn):
            # As SQLite's busy timeout: a lock held too long fails the waiter with a message
            # (a worker retries) instead of hanging. A session idle inside a transaction (a
            # frozen process: SIGSTOP, a paused VM) is ended by the server, which releases
            # the write lock for everyone else; that process's transaction is rolled back.
            # A worker's heartbeat session also bounds each statement (see keep_alive).
            limit = _session.statement_ms
            with conn.cursor() as cursor:
                cursor.execute(
                    f"SET lock_timeout = {BUSY_TIMEOUT_MS}; "
                    f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}"
                    + (f"; SET statement_timeout = {limit}" if limit else "")
                )
            _session.liveness = self.liveness

        def cursor(self, named_cursor=None):
            state = self._state
            if not state.closed and state.conn.closed and not self.in_transaction():
                state.reset()  # the dead connection: nothing to close, connect anew
            return super().cursor(named_cursor)

        def rollback(self):
            if not self._state.closed and self._state.conn.closed:
                return  # the server already ended the transaction with the connection
            super().rollback()

        # A statement on a connection that is gone raises InterfaceError, which is not a
        # DatabaseError: made one, so that every caller's handling of a database failure
        # (a worker's retry, the CLI's one line) covers a lost server too.
        def _execute_cursor(self, *args, **kwargs):
            try:
                return super()._execute_cursor(*args, **kwargs)
            except InterfaceError as exc:
                raise OperationalError(f"connection lost ({exc})") from None

        def begin(self, *args, **kwargs):
            first, _begin.first = _begin.first, None
            try:
                if first is None:
                    return super().begin(*args, **kwargs)
                with __exception_wrapper__:  # BEGIN and the write lock in one round trip
                    cursor = self.cursor()
                    cursor.execute("BEGIN; " + first[0], first[1])
                    _begin.result = cursor.fetchone()
            except InterfaceError as exc:
                raise OperationalError(f"connection lost ({exc})") from None

        def commit(self):
            try:
                return super().commit()
            except InterfaceError as exc:
                raise OperationalError(f"connection lost ({exc})") from None

    return Postgres


def _open_postgres(url: str, progress: bool = False):
    if database.obj is not None and getattr(database.obj, "url", None) == url:
        return database.obj
    close_db()
    name, params = parse_pg_url(url)
    try:
        import psycopg2  # noqa: F401  (peewee picks it up)
    except ImportError:
        raise DatabaseUnusable(
            "PostgreSQL needs its driver: pip install 'queuectl-tui[postgres]'"
        ) from None
    db = _postgres_class()(name, **params)
    db.url, db.display = url, redact(url)
    database.initialize(db)
    try:
        db.connect(reuse_if_open=True)
        _ensure_schema(db, progress)
    except DatabaseUnusable:
        close_db()
        raise
    except (DatabaseError, InterfaceError) as exc:
        close_db()
        raise DatabaseUnusable(describe_db_error(exc, db.display)) from None
    try:  # this host's logs (a server has no directory beside it)
        paths.ensure_private_dir(paths.home() / "logs")
    except OSError:
        pass
    return db


# A worker on another host than the server must notice a silent network (packets dropped, no
# reset) well within its lease: other hosts take its job back once the lease has passed
# without a heartbeat. Left to the kernel, a statement sent into a cut waits for TCP's
# retransmissions, which back off exponentially (a 7.5 s cut held a heartbeat for 14.5 s),
# and an idle connection notices nothing for two hours. keep_alive bounds both by the lease.

class _Session(threading.local):
    statement_ms = 0  # this thread's statement_timeout (the heartbeat's session), 0: none
    liveness: dict | None = None  # the keep_alive parameters its connection was opened with


_session = _Session()


def unanswered_limit(lease: float) -> float:
    """How long a worker waits for the network to answer a statement before it gives the
    connection up and opens another: a sixth of the lease, from half a second to ten."""
    return min(max(lease / 6, 0.5), 10.0)


def keep_alive(lease: float, *, bound_statements: bool = False) -> None:
    """PostgreSQL: give up, within ``unanswered_limit(lease)``, a connection the network no
    longer carries, and reopen it (libpq's ``tcp_user_timeout``, TCP keepalives and
    ``connect_timeout``, as parameters of every connection opened from now on, except those
    the URL sets itself). The calling thread's own connection is reopened with them unless a
    transaction is open; ``bound_statements`` also sets its ``statement_timeout`` to that
    limit, so that a statement stuck on the server side (a lock) fails as fast. No-op on
    SQLite."""
    obj = database.obj
    if obj is None or isinstance(obj, SqliteDatabase):
        return
    limit = unanswered_limit(lease)
    wanted = {"tcp_user_timeout": round(limit * 1000), "keepalives": 1,
              "keepalives_idle": max(1, round(limit)), "keepalives_interval": 1,
              "keepalives_count": 3, "connect_timeout": max(2, math.ceil(limit))}
    from urllib.parse import parse_qsl, urlsplit
    own = {key for key, _ in parse_qsl(urlsplit(obj.url).query)}
    wanted = {key: value for key, value in wanted.items() if key not in own}
    if obj.liveness != wanted:
        obj.connect_params.update(wanted)
        obj.liveness = wanted
    statement_ms = round(limit * 1000) if bound_statements else 0
    if _session.liveness != wanted or _session.statement_ms != statement_ms:
        _session.statement_ms = statement_ms
        if not database.is_closed() and not database.in_transaction():
            database.close()  # opened anew, with them, at the next statement


def describe_target(target: Path | str | None = None) -> str:
    """Which database, as a person may see it: a file path, or the URL without its password."""
    if target is None:
        obj = database.obj
        return getattr(obj, "display", "") or str(getattr(obj, "database", "?"))
    return redact(target) if paths.is_url(target) else str(target)


class _Listener(threading.local):
    conn = None  # the connection LISTEN was sent on (a reconnect needs it again)
    schema = None  # the queue's schema: its notifications come on its own channel, naming it
    count = 0  # notifications about this queue from other sessions seen so far
    control = 0  # those of them about queues, meta or settings (pause, resume, limits)


_listener = _Listener()


def _listen():
    """This thread's PostgreSQL connection, listening to the queue's channel."""
    conn = database.connection()
    if _listener.conn is not conn:
        _listener.schema = database.execute_sql("SELECT current_schema()").fetchone()[0]
        channel = notify_channel(_listener.schema)
        database.execute_sql('LISTEN "' + channel.replace('"', '""') + '"')
        _listener.conn = conn
    return conn


def _drain(conn) -> None:
    try:
        conn.poll()
    except Exception as exc:  # psycopg2's own error, not wrapped by peewee: a lost connection
        raise OperationalError(f"connection lost ({' '.join(str(exc).split())})") from None
    me, schema = conn.get_backend_pid(), _listener.schema
    for note in conn.notifies:
        if note.pid != me and note.payload == schema:
            _listener.count += 1
        elif note.pid != me and note.payload == schema + " control":
            _listener.count += 1
            _listener.control += 1
    conn.notifies.clear()


def wait_change(timeout: float) -> None:
    """PostgreSQL: sleep until another session commits a change to jobs, queues or settings
    (a NOTIFY from the triggers below) or ``timeout`` seconds pass. Callers compare
    ``change_token()`` before and after."""
    import select
    try:
        conn = _listen()
        seen = _listener.count
        _drain(conn)  # read along with earlier statements' results: no need to sleep
        if _listener.count == seen:
            select.select([conn], [], [], max(0.0, timeout))
            _drain(conn)
    except Exception as exc:  # a dropped connection: reported by the next real statement
        if not isinstance(exc, (DatabaseError, InterfaceError, OSError, ValueError)):
            raise
        import time
        time.sleep(min(timeout, 0.05))


def close_db() -> None:
    if database.obj is not None:
        if not database.obj.is_closed():
            database.obj.close()
        database.initialize(None)


def db_path() -> Path:
    from pathlib import Path
    return Path(database.obj.database)


def logs_dir() -> Path:
    """Where this database's job logs and worker journals are on this host (worked out once
    per database: a worker asks for every job)."""
    global _logs
    obj = database.obj
    key = (obj, obj.database, os.environ.get("QUEUECTL_HOME"))
    if _logs[0] != key:
        _logs = (key, paths.logs_dir(obj.url if getattr(obj, "url", None) else obj.database))
    return _logs[1]


_logs: tuple = (None, None)


def describe_db_error(exc: Exception, path: Path | str | None = None) -> str:
    """One line for a database failure a user can cause or meet (corrupt, locked, read-only)."""
    path = path or (describe_target() if database.obj is not None else "?")
    msg = str(exc).strip() or exc.__class__.__name__
    if paths.is_url(str(path)) or (
        database.obj is not None and not is_sqlite()
    ):  # PostgreSQL: libpq's lines as one
        msg = " ".join(msg.split())
        given = getattr(database.obj, "connect_params", {})
        for key in SECRET_PARAMS:  # libpq rarely echoes one, but never let it through
            if given.get(key):
                msg = msg.replace(str(given[key]), "***")
        if "could not connect" in msg or "failed:" in msg or "Connection refused" in msg:
            return f"cannot connect to database {path} ({msg})"
        if "lock timeout" in msg:
            return f"database {path} stayed locked by another session ({msg}); try again"
        if "server closed the connection" in msg or "terminating connection" in msg or (
                "connection already closed" in msg):
            return f"lost the connection to database {path} ({msg}); try again"
        return f"database {path}: {msg}"
    if "not a database" in msg or "malformed" in msg:
        return f"database {path} is corrupt or not a queuectl database ({msg})"
    if "locked" in msg or "busy" in msg:
        return f"database {path} stayed locked by another process ({msg}); try again"
    if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
        return f"cannot write database {path} ({msg})"
    if "disk" in msg and "full" in msg:
        return f"disk full while writing database {path}"
    if "disk I/O error" in msg:
        return f"input/output error on database {path} (is the disk full or failing?)"
    return f"database {path}: {msg}"


def migrate(*operations) -> None:
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


@contextmanager
def write_transaction(*, hot: bool = False, claiming: list[str] | None = None):
    """A transaction that takes the write lock up front.

    On SQLite, BEGIN IMMEDIATE: readers never upgrade to writers mid-transaction (which could
    fail with SQLITE_BUSY despite the busy timeout), so competing claimers simply queue.
    On PostgreSQL a transaction-scoped advisory lock per schema, taken in the round trip of
    BEGIN (pgsql.py): shared for the worker's hot path (``hot``: claims, finishes, hand-backs,
    which run side by side), exclusive for every other write, which so still sees a queue no
    claim is changing (a ``pause`` that has returned waited for the claims under way). A
    transaction that will claim (``claiming``: the worker's queues, empty for all) also
    try-locks the limited queues it may take from (``held_limited``).

    After a disk-full or I/O error SQLite has already rolled the transaction back, and the
    ROLLBACK that follows fails with "no transaction is active"; that error would hide the one
    that matters, so the original is raised instead.

    What ``after_commit`` asked for runs once the outermost one has committed; on PostgreSQL,
    an outermost exclusive write then folds the sessions' count rows (pgsql.FOLD).
    """
    sqlite = is_sqlite()
    outermost = not database.in_transaction()
    atomic = database.atomic("IMMEDIATE") if sqlite else database.atomic()
    queued = _writers.enter() if sqlite else False
    committed = False
    if outermost and not sqlite:
        if claiming is not None:
            _begin.first = (pgsql.CLAIM_LOCKS, {"queues": claiming or None})
        else:
            _begin.first = (pgsql.WRITE_LOCK_SHARED if hot else pgsql.WRITE_LOCK, ())
    try:
        with atomic:
            if outermost and not sqlite:
                found = _begin.result
                _begin.limited = list(found[1]) if claiming is not None and found else None
            yield
        committed = True
    except DatabaseError as exc:
        cause = exc
        while cause is not None and "no transaction is active" in str(cause):
            cause = cause.__context__  # the failed ROLLBACK, raw then wrapped, then the reason
        if cause is not exc and isinstance(cause, (DatabaseError, sqlite3.Error)):
            raise cause from None
        raise
    finally:
        if queued:
            _writers.leave()
        if outermost:
            calls, _after.calls = _after.calls, []
            if not sqlite:
                _begin.first = _begin.result = _begin.limited = None
    if outermost and committed:
        if not sqlite and not hot and claiming is None:
            fold()
        for call in calls:
            try:
                call()
            except DatabaseError:
                pass  # its own steps are each whole; what is left is recovery's (see callers)


class _Begin(threading.local):
    """PostgreSQL: the statement sent with this thread's next BEGIN (one round trip), its row,
    and the limited queues the open claiming transaction holds (None: not asked yet)."""

    first: tuple[str, object] | None = None
    result: tuple | None = None
    limited: list[str] | None = None


_begin = _Begin()


def held_limited() -> list[str] | None:
    """The limited queues whose claim lock this thread's PostgreSQL transaction holds (None
    when it did not ask: the claim then asks itself)."""
    return _begin.limited


def set_held_limited(queues: list[str]) -> None:
    _begin.limited = queues


def fold() -> None:
    """PostgreSQL: fold the count and rollup rows of sessions not writing now into one row per
    key (``queuectl_fold``; one folder at a time, the others return at once). Best effort."""
    if database.obj is None or is_sqlite() or database.in_transaction():
        return
    try:
        database.execute_sql(FOLD)
    except DatabaseError:
        pass


class _AfterCommit(threading.local):
    calls: list = []


_after = _AfterCommit()


def after_commit(call: Callable[[], object]) -> None:
    """Run ``call()`` once the outermost write transaction of this thread has committed (never
    if it rolls back): follow-up work that must not hold that transaction's write lock, such
    as sending a long chain of dependents to the DLQ in short steps. A database error in it is
    not the committed change's: it is dropped, and the caller arranges for recovery to redo
    what it left (see ``engine.fail_dependents``)."""
    _after.calls = [*_after.calls, call]


class _WriterQueue(threading.local):
    """Our writers queue on an flock of ``logs/writers.lock`` before BEGIN IMMEDIATE: the
    kernel hands the lock to the next one the moment it is free, where SQLite's busy handler
    sleeps 1 ms or more on every collision (two draining workers collide on most jobs: the p90
    of a worker's transaction went from 1.4 ms to 0.5 ms). Only an ordering aid: SQLite's lock
    still decides, and a writer without it (a single autocommit statement, an older queuectl)
    is waited for by the busy timeout as before. One descriptor per thread, closed with it."""

    lock = None  # the open lock file, or None where logs/ is not ours to write
    opened: tuple[str, int] | None = None
    depth = 0

    @staticmethod
    def open(db_path: str | Path) -> int:
        directory = paths.open_private_dir(paths.logs_path(db_path))
        try:
            return os.open("writers.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                           0o600, dir_fd=directory)
        finally:
            os.close(directory)

    def enter(self) -> bool:
        key = (database.obj.database, _opened)
        if self.opened != key:  # this thread's first write, or the database was opened anew
            self.opened, self.lock, self.depth = key, None, 0
            try:
                self.lock = os.fdopen(self.open(key[0]), "rb", buffering=0)
            except OSError:
                pass  # no private logs/ here: SQLite's busy timeout alone
        if self.lock is None:
            return False
        if self.depth == 0:
            _take(self.lock)
        self.depth += 1
        return True

    def leave(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            fcntl.flock(self.lock, fcntl.LOCK_UN)


_writers = _WriterQueue()
_opened = 0
#: The longest a writer waits for ``writers.lock``: as long as SQLite waits for its own lock,
#: then the same "stayed locked" error. A holder frozen inside its transaction (SIGSTOP, Ctrl+Z)
#: would otherwise hang every writer for good (see ``engine.free_locks``).
WRITERS_WAIT = BUSY_TIMEOUT_MS / 1000


def _take(lock) -> None:
    """flock ``lock`` within ``WRITERS_WAIT`` seconds, else raise OperationalError ("locked").
    flock has no timeout of its own. Taken at once when free. Else, in the main thread (a
    worker's loop, every command): a blocking flock, which the kernel wakes the moment the lock
    is let go, cut short by a SIGALRM timer; in other threads (signals reach only the main
    one), tried again after a pause that starts at 50 us and doubles up to 1 ms (a holder's
    transaction takes about half a millisecond)."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if threading.current_thread() is threading.main_thread():
        if _take_blocking(lock):
            return
    else:
        import time
        deadline = time.monotonic() + WRITERS_WAIT
        pause = 0.00005
        while time.monotonic() < deadline:
            time.sleep(pause)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pause = min(pause * 2, 0.001)
    raise OperationalError(f"database is locked: the writers' lock (logs/writers.lock) stayed "
                           f"taken for {WRITERS_WAIT:g}s{_holder(lock)}") from None


class _Expired(Exception):
    pass


def _take_blocking(lock) -> bool:
    """A blocking flock for at most WRITERS_WAIT seconds (main thread: SIGALRM ends the wait).
    Returns whether the lock is ours; the timer and handler in place before are put back."""
    import signal
    waiting = True

    def expired(signum, frame):
        if waiting:
            raise _Expired

    previous = signal.signal(signal.SIGALRM, expired)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, WRITERS_WAIT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = False
        return True
    except _Expired:
        try:  # the alarm may have come just as the lock was given: then it is ours
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
    finally:
        waiting = False
        signal.setitimer(signal.ITIMER_REAL, delay, interval)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


def _holder(lock) -> str:
    """", by process N (stopped)": who holds this flock, from /proc/locks, if known."""
    found = os.fstat(lock.fileno())
    for pid in _lock_holders({(found.st_dev, found.st_ino)}):
        from queuectl_tui import procs
        state = procs.process_status(pid, procs.start_time(pid))
        return f", by process {pid}" + (f" ({state})" if state else "")
    return ""


def lock_holders() -> set[int]:
    """PIDs of the processes holding a write lock of this SQLite database: SQLite's own (on the
    file, its -wal or -shm) or the writers' lock. Linux (/proc/locks); elsewhere none known."""
    path = database.obj.database
    files = set()
    for name in (path, path + "-wal", path + "-shm",
                 os.path.join(paths.logs_path(path), "writers.lock")):
        try:
            found = os.stat(name)
        except OSError:
            continue
        files.add((found.st_dev, found.st_ino))
    return _lock_holders(files)


def _lock_holders(files: set[tuple[int, int]]) -> set[int]:
    """PIDs holding (not waiting for) a write lock, flock or POSIX, on any of these
    (device, inode) pairs. A line of /proc/locks: ``3: FLOCK ADVISORY WRITE 1234 fe:00:5678 0
    EOF``; a waiter's has ``->`` after the number."""
    holders = set()
    try:
        with open("/proc/locks", "rb") as table:
            for line in table:
                fields = line.split()
                if len(fields) < 6 or fields[1] == b"->" or fields[3] != b"WRITE":
                    continue
                major, minor, inode = fields[5].split(b":")
                if (os.makedev(int(major, 16), int(minor, 16)), int(inode)) in files:
                    holders.add(int(fields[4]))
    except (OSError, ValueError):
        pass
    return holders


def is_sqlite() -> bool:
    return isinstance(database.obj, SqliteDatabase)


def change_token():
    """Something that changes whenever another connection commits, or None if unknown.

    SQLite's data_version is read from shared memory: polling it every few milliseconds costs
    next to nothing, which lets idle workers react to new jobs at once without busy querying.
    PostgreSQL: how many notifications (see ``_install_triggers``) other sessions sent since
    this thread started listening; reading it is a non-blocking read of the socket.
    """
    if is_sqlite():
        return database.execute_sql("PRAGMA data_version").fetchone()[0]
    try:
        _drain(_listen())
    except (DatabaseError, InterfaceError):
        return None  # no signal now: callers treat it as "maybe changed"
    return _listener.count


def control_token(change=None):
    """Something that changes whenever another connection commits a change to queues, meta or
    settings (``pause`` among them), or None if unknown: what a worker holding claimed jobs
    watches before it starts one. SQLite: the change token (``change``, when just read). On
    PostgreSQL, jobs changed by other workers (every claim and finish) do not move it, so a
    draining worker does not read the pause flags before every job."""
    if is_sqlite():
        return change_token() if change is None else change
    try:
        _drain(_listen())
    except (DatabaseError, InterfaceError):
        return None
    return _listener.control


def schema_version() -> int:
    return int(Meta.get(Meta.key == "schema_version").value)


__all__ = ["open_db", "close_db", "db_path", "describe_db_error", "SCHEMA_VERSION",
           "OperationalError", "DatabaseError"]
