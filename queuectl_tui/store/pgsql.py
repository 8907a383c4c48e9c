"""PostgreSQL's rollups: their triggers, their folding, and the locks (the worker's hot path,
its batch's ends and next claim in one statement, is ``queuectl_cycle`` in
sql/postgres/triggers.sql; SQLite's triggers are in sql/sqlite/schema.sql).

Concurrency without one lock for the whole schema:

- **Counts and rollups per session.** ``job_count``, ``attempt_minute`` and ``job_failed_minute``
  carry a ``slot`` in their key: the triggers add what a statement changed to the rows of the
  session that ran it (``pg_backend_pid()``), never to a row another session may be writing.
  A session runs one transaction at a time, so two transactions never update the same rollup
  row: no deadlock (rows updated in place in differing orders deadlocked without a global
  lock), no waiting. Readers sum the slots of a key (``SUM ... GROUP BY``); a slot may hold a
  negative figure. ``queuectl_fold()`` moves the slot rows of sessions that are not writing
  right now (``FOR UPDATE SKIP LOCKED``) into slot 0, so a key keeps a few rows; it runs on a
  worker's heartbeat and after a command's write, one folder at a time (a try-lock).
- **A shared lock for the hot path.** Claims, finishes and hand-backs take the schema's
  advisory lock shared (they run side by side); every other write (enqueue, retry, edit,
  cancel, pause, limits, delete) takes it exclusive, so what an operator changes is still
  decided against a queue that no claim is changing, as before. A ``pause`` that has returned
  waited for every claim under way, and claims after it read the flag it committed.
- **A queue's limit.** A claim (``queuectl_cycle``) try-locks each limited queue the worker
  serves (a lock of its own per queue) before it claims, and claims from a limited queue only
  if it holds that lock: its running count is then read in a later statement, so it includes
  every claim the lock's previous holder committed. Queues without a limit lock nothing.
- **One round trip per batch.** ``queuectl_cycle`` runs on its own (autocommit): the shared
  lock, the ends, the try-locks and the claim are one statement and one commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from queuectl_tui.store.sql import load

if TYPE_CHECKING:
    from peewee import Database

#: The server's functions and triggers by name (sql/postgres/triggers.sql).
BLOCKS = load("postgres", "triggers")
#: queuectl_cycle(): a worker's batch, its ends and its next claim, in one statement.
CYCLE_FUNCTION = BLOCKS["cycle_function"]

# The schema's writers' advisory lock (the hot path shared, everything else exclusive) and the
# fold (their keys and reasons are in triggers.sql).
WRITE_LOCK = BLOCKS["write_lock"]
WRITE_LOCK_SHARED = BLOCKS["write_lock_shared"]
FOLD = BLOCKS["fold"]
#: A watcher's session says so (the watchers' lock, held shared: see triggers.sql).
WATCH = BLOCKS["watch"]

# --- the slots ------------------------------------------------------------------------------

#: Idempotent: the slot column and the keys that include it (run by every trigger install).
ADD_SLOTS = BLOCKS["add_slots"]
#: The dependents' release of old installs, folded into job_counts_update since.
DROP_JOB_RELEASE = BLOCKS["drop_job_release"]

#: db.PRUNING's meta row exists only inside a pruning transaction (retention.py): the rollups
#: of past windows keep what is pruned, so the delete triggers leave them alone meanwhile.
PRUNING_NOW = "EXISTS (SELECT 1 FROM meta WHERE key = 'pruning')"

# The rollups' trigger functions (the counts of jobs and failures per statement; the minutes
# of attempts), the fold, and the triggers (sql/postgres/triggers.sql).
JOBS_INSERT = BLOCKS["jobs_insert"]
JOBS_UPDATE = BLOCKS["jobs_update"]
JOBS_DELETE = BLOCKS["jobs_delete"]
MINUTE_CHANGE = BLOCKS["minute_change"]
MINUTE_UPDATE = BLOCKS["minute_update"]
MINUTE_DELETE = BLOCKS["minute_delete"]
FOLD_FUNCTION = BLOCKS["fold_function"]
TRIGGERS = BLOCKS["triggers"]
#: engine.log_name in SQL, for the attempts a claim inserts (a test holds the two equal).
LOG_NAME_FUNCTION = BLOCKS["log_name_function"]


def install(db: Database) -> None:
    """The slots, the rollups' functions and the triggers (the caller dropped the old triggers
    and refills the rollups afterwards, under the exclusive lock)."""
    db.execute_sql(ADD_SLOTS)
    db.execute_sql(JOBS_INSERT)
    db.execute_sql(JOBS_UPDATE)
    db.execute_sql(JOBS_DELETE)
    db.execute_sql(MINUTE_CHANGE)
    db.execute_sql(MINUTE_UPDATE)
    db.execute_sql(MINUTE_DELETE)
    db.execute_sql(FOLD_FUNCTION)
    db.execute_sql(LOG_NAME_FUNCTION)
    db.execute_sql(CYCLE_FUNCTION)
    db.execute_sql(DROP_JOB_RELEASE)  # folded into job_counts_update
    db.execute_sql(TRIGGERS)
