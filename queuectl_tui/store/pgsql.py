"""PostgreSQL's rollups: their triggers, their folding, and the locks (the worker's hot path,
its batch's ends and next claim in one statement, is ``queuectl_cycle`` in
sql/postgres/triggers.sql; SQLite's triggers are in schema.py).

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

# The advisory locks, keyed (1903519093, hash of the schema): the schema's writers (the hot
# path shared, everything else exclusive); (1903519094, schema): one folder at a time;
# (1903519095, hash of schema/queue): one claimer at a time per limited queue.
# (The keys are spelt out in the statements: raw SQL here is always literal text.)
WRITE_LOCK = "SELECT pg_advisory_xact_lock(1903519093, hashtext(current_schema()))"
WRITE_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(1903519093, hashtext(current_schema()))"
FOLD = "SELECT queuectl_fold()"

#: The server's functions and triggers by name (sql/postgres/triggers.sql).
BLOCKS = load("postgres", "triggers")
#: queuectl_cycle(): a worker's batch, its ends and its next claim, in one statement.
CYCLE_FUNCTION = BLOCKS["cycle_function"]

SLOT = "pg_backend_pid()"

# --- the slots ------------------------------------------------------------------------------

#: Idempotent: the slot column and the keys that include it (run by every trigger install).
ADD_SLOTS = (
    "ALTER TABLE job_count ADD COLUMN IF NOT EXISTS slot INTEGER NOT NULL DEFAULT 0; "
    "ALTER TABLE job_count DROP CONSTRAINT IF EXISTS job_count_pkey; "
    "ALTER TABLE job_count ADD CONSTRAINT job_count_pkey PRIMARY KEY (queue, state, slot); "
    "ALTER TABLE attempt_minute ADD COLUMN IF NOT EXISTS slot INTEGER NOT NULL DEFAULT 0; "
    "ALTER TABLE attempt_minute DROP CONSTRAINT IF EXISTS attempt_minute_pkey; "
    "ALTER TABLE attempt_minute ADD CONSTRAINT attempt_minute_pkey "
    "PRIMARY KEY (minute, queue, slot); "
    "ALTER TABLE job_failed_minute ADD COLUMN IF NOT EXISTS slot INTEGER NOT NULL DEFAULT 0; "
    "ALTER TABLE job_failed_minute DROP CONSTRAINT IF EXISTS job_failed_minute_pkey; "
    "ALTER TABLE job_failed_minute ADD CONSTRAINT job_failed_minute_pkey "
    "PRIMARY KEY (minute, queue, state, error, slot)")

_COUNT_MERGE = "ON CONFLICT (queue, state, slot) DO UPDATE SET n = job_count.n + excluded.n"
_FAILED_MERGE = ("ON CONFLICT (minute, queue, state, error, slot) DO UPDATE SET "
                 "n = job_failed_minute.n + excluded.n")
_MINUTE_COLUMNS = ("(minute, slot, queue, attempts, completed, failed, reruns, wait_n, wait_sum, "
                   "wait_max, run_n, run_sum, run_max, min_seq, dirty)")
_MINUTE_MERGE = (
    "ON CONFLICT (minute, queue, slot) DO UPDATE SET "
    "attempts = attempt_minute.attempts + excluded.attempts, "
    "completed = attempt_minute.completed + excluded.completed, "
    "failed = attempt_minute.failed + excluded.failed, "
    "reruns = attempt_minute.reruns + excluded.reruns, "
    "wait_n = attempt_minute.wait_n + excluded.wait_n, "
    "wait_sum = attempt_minute.wait_sum + excluded.wait_sum, "
    "wait_max = GREATEST(attempt_minute.wait_max, excluded.wait_max), "
    "run_n = attempt_minute.run_n + excluded.run_n, "
    "run_sum = attempt_minute.run_sum + excluded.run_sum, "
    "run_max = GREATEST(attempt_minute.run_max, excluded.run_max), "
    "min_seq = LEAST(attempt_minute.min_seq, excluded.min_seq), "
    "dirty = GREATEST(attempt_minute.dirty, excluded.dirty)")

# Failed or dead jobs with a finish time, per (minute, queue, state, error), of a transition table.
_FAILED_OF = ("SELECT FLOOR(finished_at / 60)::BIGINT, queue, state, COALESCE(last_error, ''), "
              "count(*) FROM ")
_FAILED_WHERE = (" WHERE state IN ('failed', 'dead') AND finished_at IS NOT NULL "
                 "GROUP BY 1, 2, 3, 4")
_FAILED_OF_NEW = _FAILED_OF + "new_rows" + _FAILED_WHERE
_FAILED_OF_OLD = _FAILED_OF + "old_rows" + _FAILED_WHERE

JOBS_INSERT = (
    "CREATE OR REPLACE FUNCTION job_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO job_count (queue, state, slot, n) SELECT queue, state, " + SLOT + ", count(*) "
    "FROM new_rows GROUP BY queue, state " + _COUNT_MERGE + "; "
    "INSERT INTO job_failed_minute (minute, queue, state, error, slot, n) SELECT minute, queue, "
    "state, error, " + SLOT + ", n FROM (" + _FAILED_OF_NEW + ") f (minute, "
    "queue, state, error, n) " + _FAILED_MERGE + "; RETURN NULL; END $$")
# Every claim and finish is an update: the rollup of failures is left alone unless a row was
# or is a failure; the jobs waiting on one that completed here are released (one statement
# for all of them, and none unless a dependency row names one of them).
JOBS_UPDATE = (
    "CREATE OR REPLACE FUNCTION job_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO job_count (queue, state, slot, n) SELECT queue, state, " + SLOT + ", sum(d) "
    "FROM (SELECT queue, state, 1 AS d FROM new_rows UNION ALL SELECT queue, state, -1 "
    "FROM old_rows) c GROUP BY queue, state HAVING sum(d) <> 0 " + _COUNT_MERGE + "; "
    "IF EXISTS (SELECT 1 FROM new_rows WHERE state IN ('failed', 'dead')) OR EXISTS (SELECT 1 "
    "FROM old_rows WHERE state IN ('failed', 'dead')) THEN "
    "INSERT INTO job_failed_minute (minute, queue, state, error, slot, n) SELECT minute, queue, "
    "state, error, " + SLOT + ", sum(n) FROM (" + _FAILED_OF_NEW + " UNION ALL "
    "SELECT minute, queue, state, error, -n FROM (" + _FAILED_OF_OLD + ") o "
    "(minute, queue, state, error, n)) c (minute, queue, state, error, n) GROUP BY 1, 2, 3, 4 "
    "HAVING sum(n) <> 0 " + _FAILED_MERGE + "; END IF; "
    "IF EXISTS (SELECT 1 FROM new_rows n JOIN job_dep d ON d.dep_seq = n.seq "
    "WHERE n.state = 'completed') THEN "
    "UPDATE job SET waiting_on = GREATEST(job.waiting_on - r.n, 0) FROM "
    "(SELECT d.job_seq, count(*) AS n "
    "FROM new_rows n JOIN old_rows o ON o.seq = n.seq JOIN job_dep d ON d.dep_seq = n.seq "
    "WHERE n.state = 'completed' AND o.state <> 'completed' GROUP BY d.job_seq) r "
    "WHERE job.seq = r.job_seq AND job.waiting_on > 0 AND job.state IN ('pending', 'failed'); "
    "END IF; RETURN NULL; END $$")
#: db.PRUNING's meta row exists only inside a pruning transaction (retention.py): the rollups
#: of past windows keep what is pruned, so the delete triggers leave them alone meanwhile.
PRUNING_NOW = "EXISTS (SELECT 1 FROM meta WHERE key = 'pruning')"
JOBS_DELETE = (
    "CREATE OR REPLACE FUNCTION job_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO job_count (queue, state, slot, n) SELECT queue, state, " + SLOT + ", -count(*) "
    "FROM old_rows GROUP BY queue, state " + _COUNT_MERGE + "; "
    "IF NOT " + PRUNING_NOW + " THEN "
    "INSERT INTO job_failed_minute (minute, queue, state, error, slot, n) SELECT minute, queue, "
    "state, error, " + SLOT + ", -n FROM (" + _FAILED_OF_OLD + ") f (minute, "
    "queue, state, error, n) " + _FAILED_MERGE + "; END IF; RETURN NULL; END $$")

# attempt_minute: an attempt that gets its end adds itself to its session's row of its queue
# and minute; one whose figures change, or that is deleted, is taken out there (negative
# figures) and marks the row dirty when it held the key's maximum (a maximum cannot be taken
# back: metrics reads a dirty minute from the attempts). Updates and deletes are handled once
# per statement (a batch's ends are one statement); an attempt inserted with its end (rare:
# claims insert unfinished ones) per row.
_MINUTE_ADD = (
    "INSERT INTO attempt_minute " + _MINUTE_COLUMNS
    + " SELECT FLOOR(NEW.finished_at / 60)::BIGINT, " + SLOT
    + ", NEW.queue, 1, CASE WHEN NEW.outcome = 'completed' THEN 1 ELSE 0 END, "
    "CASE WHEN NEW.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END, "
    "CASE WHEN NEW.number > 1 THEN 1 ELSE 0 END, CASE WHEN NEW.due_at IS NULL THEN 0 ELSE 1 END, "
    "COALESCE(NEW.started_at - NEW.due_at, 0), NEW.started_at - NEW.due_at, "
    "CASE WHEN NEW.duration IS NULL THEN 0 ELSE 1 END, COALESCE(NEW.duration, 0), NEW.duration, "
    "NEW.seq, 0 WHERE NEW.finished_at IS NOT NULL " + _MINUTE_MERGE)
MINUTE_CHANGE = (
    "CREATE OR REPLACE FUNCTION attempt_minute_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN " + _MINUTE_ADD + "; RETURN NULL; END $$")
MINUTE_DELETE = (
    "CREATE OR REPLACE FUNCTION attempt_minute_delete() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF " + PRUNING_NOW + " THEN RETURN NULL; END IF; "
    "INSERT INTO attempt_minute " + _MINUTE_COLUMNS + " SELECT d.minute, " + SLOT
    + ", d.queue, -d.attempts, -d.completed, -d.failed, -d.reruns, -d.wait_n, -d.wait_sum, NULL, "
    "-d.run_n, -d.run_sum, NULL, NULL, CASE WHEN d.wait_max >= m.wait_max OR "
    "d.run_max >= m.run_max THEN 1 ELSE 0 END FROM (SELECT FLOOR(finished_at / 60)::BIGINT "
    "AS minute, queue, count(*) AS attempts, "
    "count(*) FILTER (WHERE outcome = 'completed') AS completed, "
    "count(*) FILTER (WHERE outcome IN ('failed', 'timeout', 'lost')) AS failed, "
    "count(*) FILTER (WHERE number > 1) AS reruns, count(due_at) AS wait_n, "
    "COALESCE(sum(started_at - due_at), 0) AS wait_sum, max(started_at - due_at) AS wait_max, "
    "count(duration) AS run_n, COALESCE(sum(duration), 0) AS run_sum, "
    "max(duration) AS run_max FROM old_rows WHERE finished_at IS NOT NULL GROUP BY 1, 2) d "
    "CROSS JOIN LATERAL (SELECT max(wait_max) AS wait_max, max(run_max) AS run_max "
    "FROM attempt_minute a WHERE a.minute = d.minute AND a.queue = d.queue) m "
    + _MINUTE_MERGE + "; RETURN NULL; END $$")

# The ends of attempts, once per statement (a batch's finish is one statement): what the
# changed rows of old_rows took out (with a dirty mark where one held its key's maximum) and
# what those of new_rows add, grouped per minute and queue, into the session's rows. An update
# that changes no figure (a process recorded) returns at once.
_ATTEMPT_CHANGED = (
    "o.finished_at IS DISTINCT FROM n.finished_at OR o.outcome IS DISTINCT FROM n.outcome OR "
    "o.number IS DISTINCT FROM n.number OR o.started_at IS DISTINCT FROM n.started_at OR "
    "o.due_at IS DISTINCT FROM n.due_at OR o.duration IS DISTINCT FROM n.duration OR "
    "o.queue IS DISTINCT FROM n.queue")
MINUTE_UPDATE = (
    "CREATE OR REPLACE FUNCTION attempt_minute_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.seq = o.seq WHERE "
    "(o.finished_at IS NOT NULL OR n.finished_at IS NOT NULL) AND (" + _ATTEMPT_CHANGED + ")) "
    "THEN RETURN NULL; END IF; "
    "INSERT INTO attempt_minute " + _MINUTE_COLUMNS + " SELECT minute, " + SLOT + ", queue, "
    "sum(attempts), sum(completed), sum(failed), sum(reruns), sum(wait_n), sum(wait_sum), "
    "max(wait_max), sum(run_n), sum(run_sum), max(run_max), min(min_seq), max(dirty) FROM ("
    "SELECT FLOOR(o.finished_at / 60)::BIGINT AS minute, o.queue, -1 AS attempts, "
    "-(CASE WHEN o.outcome = 'completed' THEN 1 ELSE 0 END) AS completed, "
    "-(CASE WHEN o.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END) AS failed, "
    "-(CASE WHEN o.number > 1 THEN 1 ELSE 0 END) AS reruns, "
    "-(CASE WHEN o.due_at IS NULL THEN 0 ELSE 1 END) AS wait_n, "
    "-COALESCE(o.started_at - o.due_at, 0) AS wait_sum, NULL::float8 AS wait_max, "
    "-(CASE WHEN o.duration IS NULL THEN 0 ELSE 1 END) AS run_n, "
    "-COALESCE(o.duration, 0) AS run_sum, NULL::float8 AS run_max, NULL::bigint AS min_seq, "
    "CASE WHEN o.started_at - o.due_at >= m.wait_max OR o.duration >= m.run_max THEN 1 "
    "ELSE 0 END AS dirty FROM old_rows o JOIN new_rows n ON n.seq = o.seq "
    "CROSS JOIN LATERAL (SELECT max(wait_max) AS wait_max, max(run_max) AS run_max "
    "FROM attempt_minute a WHERE a.minute = FLOOR(o.finished_at / 60)::BIGINT "
    "AND a.queue = o.queue) m WHERE o.finished_at IS NOT NULL AND (" + _ATTEMPT_CHANGED + ") "
    "UNION ALL SELECT FLOOR(n.finished_at / 60)::BIGINT, n.queue, 1, "
    "CASE WHEN n.outcome = 'completed' THEN 1 ELSE 0 END, "
    "CASE WHEN n.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END, "
    "CASE WHEN n.number > 1 THEN 1 ELSE 0 END, CASE WHEN n.due_at IS NULL THEN 0 ELSE 1 END, "
    "COALESCE(n.started_at - n.due_at, 0), n.started_at - n.due_at, "
    "CASE WHEN n.duration IS NULL THEN 0 ELSE 1 END, COALESCE(n.duration, 0), n.duration, "
    "n.seq, 0 FROM old_rows o JOIN new_rows n ON n.seq = o.seq WHERE n.finished_at IS NOT NULL "
    "AND (" + _ATTEMPT_CHANGED + ")) d GROUP BY minute, queue ORDER BY 1, 3 "
    + _MINUTE_MERGE + "; RETURN NULL; END $$")

# The fold: rows of sessions not writing now (skip locked) into slot 0, then the keys left at
# zero with no other slot are removed (job_count keeps its zero rows, as before).
FOLD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION queuectl_fold() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN "
    "IF NOT pg_try_advisory_xact_lock(1903519094, hashtext(current_schema())) THEN "
    "RETURN false; END IF; "
    "WITH gone AS (DELETE FROM job_count WHERE (queue, state, slot) IN (SELECT queue, state, "
    "slot FROM job_count WHERE slot <> 0 FOR UPDATE SKIP LOCKED) RETURNING queue, state, n) "
    "INSERT INTO job_count (queue, state, slot, n) SELECT queue, state, 0, sum(n) FROM gone "
    "GROUP BY 1, 2 ORDER BY 1, 2 " + _COUNT_MERGE + "; "
    "WITH gone AS (DELETE FROM attempt_minute WHERE (minute, queue, slot) IN (SELECT minute, "
    "queue, slot FROM attempt_minute WHERE slot <> 0 FOR UPDATE SKIP LOCKED) RETURNING *) "
    "INSERT INTO attempt_minute " + _MINUTE_COLUMNS + " SELECT minute, 0, queue, sum(attempts), "
    "sum(completed), sum(failed), sum(reruns), sum(wait_n), sum(wait_sum), max(wait_max), "
    "sum(run_n), sum(run_sum), max(run_max), min(min_seq), max(dirty) FROM gone "
    "GROUP BY minute, queue ORDER BY 1, 3 " + _MINUTE_MERGE + "; "
    "DELETE FROM attempt_minute m WHERE slot = 0 AND attempts = 0 AND NOT EXISTS (SELECT FROM "
    "attempt_minute o WHERE o.minute = m.minute AND o.queue = m.queue AND o.slot <> 0); "
    "WITH gone AS (DELETE FROM job_failed_minute WHERE (minute, queue, state, error, slot) IN "
    "(SELECT minute, queue, state, error, slot FROM job_failed_minute WHERE slot <> 0 "
    "FOR UPDATE SKIP LOCKED) RETURNING minute, queue, state, error, n) "
    "INSERT INTO job_failed_minute (minute, queue, state, error, slot, n) SELECT minute, queue, "
    "state, error, 0, sum(n) FROM gone GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
    + _FAILED_MERGE + "; "
    "DELETE FROM job_failed_minute f WHERE slot = 0 AND n = 0 AND NOT EXISTS (SELECT FROM "
    "job_failed_minute o WHERE o.minute = f.minute AND o.queue = f.queue AND o.state = f.state "
    "AND o.error = f.error AND o.slot <> 0); RETURN true; END $$")

#: The job triggers (statement level, with transition tables) and attempt triggers.
TRIGGERS = (
    "CREATE TRIGGER job_counts_insert AFTER INSERT ON job REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION job_counts_insert(); "
    "CREATE TRIGGER job_counts_update AFTER UPDATE ON job REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_update(); "
    "CREATE TRIGGER job_counts_delete AFTER DELETE ON job REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION job_counts_delete(); "
    # rank only when priority or run_at really change (a finish lists run_at: no call then)
    "CREATE TRIGGER job_rank BEFORE UPDATE OF priority, run_at ON job FOR EACH ROW "
    "WHEN (OLD.priority IS DISTINCT FROM NEW.priority OR OLD.run_at IS DISTINCT FROM NEW.run_at) "
    "EXECUTE FUNCTION job_rank_change(); "
    # An attempt is inserted unfinished by every claim: WHEN spares that the call.
    "CREATE TRIGGER attempt_minute_insert AFTER INSERT ON attempt FOR EACH ROW "
    "WHEN (NEW.finished_at IS NOT NULL) EXECUTE FUNCTION attempt_minute_change(); "
    "CREATE TRIGGER attempt_minute_delete AFTER DELETE ON attempt REFERENCING OLD TABLE AS "
    "old_rows FOR EACH STATEMENT EXECUTE FUNCTION attempt_minute_delete(); "
    "CREATE TRIGGER attempt_minute_update AFTER UPDATE ON attempt REFERENCING OLD TABLE AS "
    "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION attempt_minute_update()")


#: engine.log_name in SQL, for the attempts a batch claim inserts: ``ID@SEQ-ATTEMPT.log``, the
#: id as it is when plain, else each character outside [A-Za-z0-9._-] written %XX (its UTF-8
#: bytes), a leading dot too, cut at 100 characters but never inside an escape. A test holds
#: it equal to the Python function.
LOG_NAME_FUNCTION = (
    "CREATE OR REPLACE FUNCTION queuectl_log_name(id text, seq bigint, number integer) "
    "RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$ DECLARE safe text := ''; ch text; "
    "b integer; BEGIN "
    "IF id ~ '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$' THEN RETURN id || '@' || seq || '-' "
    "|| number || '.log'; END IF; "
    "FOREACH ch IN ARRAY regexp_split_to_array(id, '') LOOP "
    "IF ch ~ '^[A-Za-z0-9._-]$' THEN safe := safe || ch; ELSE "
    "FOR b IN SELECT get_byte(convert_to(ch, 'UTF8'), i) FROM generate_series(0, "
    "octet_length(convert_to(ch, 'UTF8')) - 1) AS i LOOP "
    "safe := safe || '%%' || upper(lpad(to_hex(b), 2, '0')); END LOOP; END IF; END LOOP; "
    "IF left(safe, 1) = '.' THEN safe := '%%2E' || substr(safe, 2); END IF; "
    "IF length(safe) > 100 THEN safe := left(safe, 100); "
    "IF substr(safe, 100, 1) = '%%' THEN safe := left(safe, 99); "
    "ELSIF substr(safe, 99, 1) = '%%' THEN safe := left(safe, 98); END IF; END IF; "
    "RETURN safe || '@' || seq || '-' || number || '.log'; END $$")


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
    db.execute_sql("DROP FUNCTION IF EXISTS job_release()")  # folded into job_counts_update
    db.execute_sql(TRIGGERS)
