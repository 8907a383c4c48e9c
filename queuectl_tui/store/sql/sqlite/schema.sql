-- SQLite's schema: what a new database is made of (store/schema.py runs the tables and indexes,
-- then the triggers, then the fills, each in this file's order; upgrades run the blocks they
-- name). The format is queries.sql's (store/sql/__init__.py): a block's lines are joined by
-- single spaces, so each text below is the one the database stores (sqlite_master.sql).
-- Times are UNIX seconds (REAL); peewee's models (store/models.py) map these tables, and
-- tests/engine/test_schema.py holds a new database equal to one upgraded from version 1.

-- ---------------------------------------------------------------------------------------------
-- Tables, each with its indexes
-- ---------------------------------------------------------------------------------------------

-- name: meta
-- Key/value facts about the database itself: schema_version, last_worker_id, paused_all.
CREATE TABLE "meta" ("key" VARCHAR(255) NOT NULL PRIMARY KEY, "value" TEXT NOT NULL);

-- name: setting
-- The settings (settings.py), each value JSON.
CREATE TABLE "setting" ("key" VARCHAR(255) NOT NULL PRIMARY KEY, "value" TEXT NOT NULL);

-- name: environment
-- Environments recorded at enqueue, stored once per distinct content (jobs share them).
CREATE TABLE "environment" ("digest" VARCHAR(255) NOT NULL PRIMARY KEY, "data" TEXT NOT NULL);

-- name: worker
-- The live workers. id is never reused: it is drawn from meta's last_worker_id, not from the
-- rowid, which hands a deleted top id out again.
CREATE TABLE "worker" ("id" INTEGER NOT NULL PRIMARY KEY, "host" VARCHAR(255) NOT NULL,
"pid" INTEGER NOT NULL, "proc_started" REAL NOT NULL, "started_at" REAL NOT NULL,
"heartbeat_at" REAL NOT NULL, "status" VARCHAR(255) NOT NULL, "current_job" VARCHAR(255),
"queues" VARCHAR(255));

-- name: job
-- Every job. seq: insertion order (pages, log names); id: the user's name for it.
-- claim_token: fresh at each claim, every write about the run is fenced on it. waiting_on: how
-- many of its --after jobs have not completed (claimable at 0). rank: the claim order,
-- priority - priority_aging * run_at / 60 (effective priority, which grows with the time
-- waited, orders as this, which does not change with time and so can be indexed); set at
-- insert, kept by job_rank. paused_token: the claim_token of the run that is paused.
CREATE TABLE "job" ("seq" INTEGER NOT NULL PRIMARY KEY, "id" VARCHAR(255) NOT NULL,
"command" TEXT NOT NULL, "queue" VARCHAR(255) NOT NULL, "state" VARCHAR(255) NOT NULL,
"priority" INTEGER NOT NULL, "attempts" INTEGER NOT NULL, "max_retries" INTEGER NOT NULL,
"backoff_base" REAL NOT NULL, "timeout" REAL, "run_at" REAL NOT NULL,
"created_at" REAL NOT NULL, "updated_at" REAL NOT NULL, "started_at" REAL, "finished_at" REAL,
"last_error" TEXT, "exit_code" INTEGER, "output_tail" TEXT, "cwd" TEXT NOT NULL,
"env_digest" VARCHAR(255), "worker_id" INTEGER, "cancel_requested" INTEGER NOT NULL,
"claim_token" INTEGER, "waiting_on" INTEGER NOT NULL DEFAULT 0,
"rank" REAL NOT NULL DEFAULT 0, "paused_token" INTEGER, "label" TEXT,
"schedule" VARCHAR(255));

-- name: job_id
CREATE UNIQUE INDEX "job_id" ON "job" ("id");

-- name: job_claim
-- The claim: per queue, the next job in (rank desc, run_at, seq) order among claimable rows
-- only. Per queue, so that a paused queue or one at its limit is skipped in one step, not row
-- by row. The condition is spelt out (models.CLAIMABLE_WHERE): SQLite uses a partial index
-- only when the query repeats its condition with literals.
CREATE INDEX "job_claim" ON "job" ("queue", "rank" DESC, "run_at", "seq")
WHERE state IN ('pending', 'failed') AND waiting_on = 0;

-- name: job_due
-- When the next waiting job of a queue becomes due (an idle worker's sleep), and which job
-- has been due the longest (stats): seq breaks ties, as the claim's order does, in one step on
-- PostgreSQL too (SQLite's index ends with the rowid, which is seq, anyway).
CREATE INDEX "job_due" ON "job" ("queue", "run_at", "seq")
WHERE state IN ('pending', 'failed') AND waiting_on = 0;

-- name: job_state_seq
-- Per-state pages (ordered by seq) and the oldest pending job.
CREATE INDEX "job_state_seq" ON "job" ("state", "seq");

-- name: job_failed
-- Jobs that failed or died, by when: the DLQ count and the most frequent errors of a window.
-- Partial: a job enters it only when it fails, so the completion path writes nothing here.
CREATE INDEX "job_failed" ON "job" ("finished_at", "queue", "state", "last_error")
WHERE state IN ('failed', 'dead');

-- name: job_count
-- How many jobs are in each state of each queue (n), kept exact by the job_count_* triggers
-- in the same transaction as every change; v grows with every change of a job, a queue or
-- the pause of every queue (what the console and wait watch: connection.jobs_token).
CREATE TABLE "job_count" ("queue" VARCHAR(255) NOT NULL, "state" VARCHAR(255) NOT NULL,
"n" INTEGER NOT NULL, v INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ("queue", "state"));

-- name: queue
-- Every queue a job was ever put on. paused NULL: as pause/resume without a queue last said
-- (meta paused_all); max_running NULL: no limit.
CREATE TABLE "queue" ("name" VARCHAR(255) NOT NULL PRIMARY KEY, "paused" INTEGER,
"max_running" INTEGER);

-- name: job_dep
-- enqueue --after: job_seq waits until dep_seq completes (dep_id names a deleted one).
CREATE TABLE "job_dep" ("job_seq" INTEGER NOT NULL, "dep_seq" INTEGER NOT NULL,
"dep_id" VARCHAR(255) NOT NULL, PRIMARY KEY ("job_seq", "dep_seq"),
FOREIGN KEY ("job_seq") REFERENCES "job" ("seq") ON DELETE CASCADE);

-- name: job_dep_dep_seq
CREATE INDEX "job_dep_dep_seq" ON "job_dep" ("dep_seq");

-- name: attempt
-- One run of a job. due_at: the job's run_at when claimed (waited = started_at - due_at);
-- queue: the job's, copied by the claim (the rollup is keyed by it); log_dropped: when its
-- log went for the logs directory's cap.
CREATE TABLE "attempt" ("seq" INTEGER NOT NULL PRIMARY KEY, "job_seq" INTEGER NOT NULL,
"number" INTEGER NOT NULL, "worker_id" INTEGER, "host" VARCHAR(255), "pid" INTEGER,
"pid_started" REAL, "started_at" REAL NOT NULL, "finished_at" REAL, "exit_code" INTEGER,
"duration" REAL, "outcome" VARCHAR(255), "error" TEXT, "log_file" VARCHAR(255),
"claim_token" INTEGER, "due_at" REAL, "cpu_seconds" REAL, "peak_rss_bytes" INTEGER,
"processes" INTEGER, "queue" VARCHAR(255), "log_dropped" REAL,
FOREIGN KEY ("job_seq") REFERENCES "job" ("seq") ON DELETE CASCADE);

-- name: attempt_job_seq_number
CREATE UNIQUE INDEX "attempt_job_seq_number" ON "attempt" ("job_seq", "number");

-- name: attempt_window
-- Attempts by finish time, with what the metrics of a window read: a window is one range of
-- this index, never the table's rows.
CREATE INDEX "attempt_window" ON "attempt" ("finished_at", "outcome", "number", "started_at",
"due_at", "duration", "queue");

-- name: attempt_minute
-- Finished attempts per minute of finished_at and queue, kept by the attempt_minute_*
-- triggers: a window's whole minutes cost one row per queue (metrics.py). A maximum cannot
-- be taken back, so a row whose maximum went away is marked dirty (its minute is then read
-- from the attempts); a row left with no attempts is deleted.
CREATE TABLE "attempt_minute" ("minute" INTEGER NOT NULL, "queue" VARCHAR(255) NOT NULL,
"attempts" INTEGER NOT NULL, "completed" INTEGER NOT NULL, "failed" INTEGER NOT NULL,
"reruns" INTEGER NOT NULL, "wait_n" INTEGER NOT NULL, "wait_sum" REAL NOT NULL,
"wait_max" REAL, "run_n" INTEGER NOT NULL, "run_sum" REAL NOT NULL, "run_max" REAL,
"min_seq" INTEGER, "dirty" INTEGER NOT NULL, PRIMARY KEY ("minute", "queue"));

-- name: job_failed_minute
-- Failed or dead jobs per minute of finished_at, queue, state and last error ('' for none),
-- kept by the job_failed_* triggers: a window's DLQ count and top errors in a few rows.
CREATE TABLE "job_failed_minute" ("minute" INTEGER NOT NULL, "queue" VARCHAR(255) NOT NULL,
"state" VARCHAR(255) NOT NULL, "error" TEXT NOT NULL, "n" INTEGER NOT NULL,
PRIMARY KEY ("minute", "queue", "state", "error"));

-- name: schedule
-- Recurring jobs (schedules.py). next_at: the earliest due time not yet turned into a job
-- (NULL: none left); spec: the job each due time makes (JSON).
CREATE TABLE "schedule" ("name" VARCHAR(255) NOT NULL PRIMARY KEY, "spec" TEXT NOT NULL,
"cron" VARCHAR(255), "every" REAL, "tz" VARCHAR(255) NOT NULL,
"catch_up" VARCHAR(255) NOT NULL, "no_overlap" INTEGER NOT NULL, "paused" INTEGER NOT NULL,
"cwd" TEXT NOT NULL, "env_digest" VARCHAR(255), "created_at" REAL NOT NULL, "next_at" REAL,
"last_at" REAL, "last_job" VARCHAR(255), "skipped_at" REAL, "skipped_why" TEXT);

-- name: schedule_next
-- The earliest due time, read by every idle worker's wait: one step of this index.
CREATE INDEX "schedule_next" ON "schedule" ("paused", "next_at");

-- ---------------------------------------------------------------------------------------------
-- Triggers: whoever writes (the ORM, plain SQL, another process), the counts, the rank and the
-- rollups change in the same transaction. Created in this order (as every version did).
-- ---------------------------------------------------------------------------------------------

-- name: job_rank
-- Keeps job.rank when priority or run_at change (inserts set it themselves: a trigger would
-- write every enqueued row twice). The rate is models.AGING_RATE_SQL, read in the statement's
-- own transaction.
CREATE TRIGGER job_rank AFTER UPDATE OF priority, run_at ON job
WHEN NEW.priority IS NOT OLD.priority OR NEW.run_at IS NOT OLD.run_at
BEGIN
  UPDATE job SET rank = NEW.priority - COALESCE((SELECT CAST(value AS DOUBLE PRECISION)
  FROM setting WHERE key = 'priority_aging'), 0) * NEW.run_at / 60.0 WHERE seq = NEW.seq;
END;

-- name: job_release
-- A job that completes releases the jobs waiting on it, whoever wrote the change (in SQL: no
-- round trip on the worker's hot path).
CREATE TRIGGER job_release AFTER UPDATE OF state ON job
WHEN NEW.state = 'completed' AND OLD.state IS NOT 'completed'
BEGIN
  UPDATE job SET waiting_on = waiting_on - 1
  WHERE seq IN (SELECT job_seq FROM job_dep WHERE dep_seq = NEW.seq) AND waiting_on > 0
  AND state IN ('pending', 'failed');
END;

-- attempt_minute: an attempt that gets its end (or is inserted with one) is added to the row
-- of its queue and minute; one whose figures change is taken out of its old row and added
-- anew; a deleted one is taken out (not while old jobs are pruned: meta's 'pruning' row,
-- schema.PRUNING, exists only inside that transaction, and the rollups of past windows keep
-- what is pruned). The worker's finish pays one upsert. The minute is CAST(finished_at / 60
-- AS INTEGER): the cast truncates, which is the floor for times after 1970 (metrics.py
-- computes the same minute in Python).

-- name: attempt_minute_insert
CREATE TRIGGER attempt_minute_insert AFTER INSERT ON attempt WHEN NEW.finished_at IS NOT NULL
BEGIN
  INSERT INTO attempt_minute (minute, queue, attempts, completed, failed, reruns, wait_n,
  wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty)
  SELECT CAST(NEW.finished_at / 60 AS INTEGER), NEW.queue, 1,
  CASE WHEN NEW.outcome = 'completed' THEN 1 ELSE 0 END,
  CASE WHEN NEW.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END,
  CASE WHEN NEW.number > 1 THEN 1 ELSE 0 END, CASE WHEN NEW.due_at IS NULL THEN 0 ELSE 1 END,
  COALESCE(NEW.started_at - NEW.due_at, 0), NEW.started_at - NEW.due_at,
  CASE WHEN NEW.duration IS NULL THEN 0 ELSE 1 END, COALESCE(NEW.duration, 0), NEW.duration,
  NEW.seq, 0 WHERE NEW.finished_at IS NOT NULL
  ON CONFLICT (minute, queue) DO UPDATE SET attempts = attempt_minute.attempts + 1,
  completed = attempt_minute.completed + excluded.completed,
  failed = attempt_minute.failed + excluded.failed,
  reruns = attempt_minute.reruns + excluded.reruns,
  wait_n = attempt_minute.wait_n + excluded.wait_n,
  wait_sum = attempt_minute.wait_sum + excluded.wait_sum,
  wait_max = CASE WHEN excluded.wait_max > attempt_minute.wait_max OR attempt_minute.wait_max
  IS NULL THEN excluded.wait_max ELSE attempt_minute.wait_max END,
  run_n = attempt_minute.run_n + excluded.run_n,
  run_sum = attempt_minute.run_sum + excluded.run_sum,
  run_max = CASE WHEN excluded.run_max > attempt_minute.run_max OR attempt_minute.run_max
  IS NULL THEN excluded.run_max ELSE attempt_minute.run_max END,
  min_seq = CASE WHEN excluded.min_seq < attempt_minute.min_seq THEN excluded.min_seq
  ELSE attempt_minute.min_seq END;
END;

-- name: attempt_minute_finish
CREATE TRIGGER attempt_minute_finish AFTER UPDATE OF finished_at ON attempt
WHEN OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL
BEGIN
  INSERT INTO attempt_minute (minute, queue, attempts, completed, failed, reruns, wait_n,
  wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty)
  SELECT CAST(NEW.finished_at / 60 AS INTEGER), NEW.queue, 1,
  CASE WHEN NEW.outcome = 'completed' THEN 1 ELSE 0 END,
  CASE WHEN NEW.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END,
  CASE WHEN NEW.number > 1 THEN 1 ELSE 0 END, CASE WHEN NEW.due_at IS NULL THEN 0 ELSE 1 END,
  COALESCE(NEW.started_at - NEW.due_at, 0), NEW.started_at - NEW.due_at,
  CASE WHEN NEW.duration IS NULL THEN 0 ELSE 1 END, COALESCE(NEW.duration, 0), NEW.duration,
  NEW.seq, 0 WHERE NEW.finished_at IS NOT NULL
  ON CONFLICT (minute, queue) DO UPDATE SET attempts = attempt_minute.attempts + 1,
  completed = attempt_minute.completed + excluded.completed,
  failed = attempt_minute.failed + excluded.failed,
  reruns = attempt_minute.reruns + excluded.reruns,
  wait_n = attempt_minute.wait_n + excluded.wait_n,
  wait_sum = attempt_minute.wait_sum + excluded.wait_sum,
  wait_max = CASE WHEN excluded.wait_max > attempt_minute.wait_max OR attempt_minute.wait_max
  IS NULL THEN excluded.wait_max ELSE attempt_minute.wait_max END,
  run_n = attempt_minute.run_n + excluded.run_n,
  run_sum = attempt_minute.run_sum + excluded.run_sum,
  run_max = CASE WHEN excluded.run_max > attempt_minute.run_max OR attempt_minute.run_max
  IS NULL THEN excluded.run_max ELSE attempt_minute.run_max END,
  min_seq = CASE WHEN excluded.min_seq < attempt_minute.min_seq THEN excluded.min_seq
  ELSE attempt_minute.min_seq END;
END;

-- name: attempt_minute_update
CREATE TRIGGER attempt_minute_update AFTER UPDATE OF finished_at, outcome, number, started_at,
due_at, duration, queue ON attempt
WHEN OLD.finished_at IS NOT NULL AND (OLD.finished_at IS NOT NEW.finished_at OR OLD.outcome IS
NOT NEW.outcome OR OLD.number IS NOT NEW.number OR OLD.started_at IS NOT NEW.started_at OR
OLD.due_at IS NOT NEW.due_at OR OLD.duration IS NOT NEW.duration OR OLD.queue IS NOT NEW.queue)
BEGIN
  UPDATE attempt_minute SET attempts = attempts - 1,
  completed = completed - CASE WHEN OLD.outcome = 'completed' THEN 1 ELSE 0 END,
  failed = failed - CASE WHEN OLD.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END,
  reruns = reruns - CASE WHEN OLD.number > 1 THEN 1 ELSE 0 END,
  wait_n = wait_n - CASE WHEN OLD.due_at IS NULL THEN 0 ELSE 1 END,
  wait_sum = wait_sum - COALESCE(OLD.started_at - OLD.due_at, 0),
  run_n = run_n - CASE WHEN OLD.duration IS NULL THEN 0 ELSE 1 END,
  run_sum = run_sum - COALESCE(OLD.duration, 0),
  dirty = CASE WHEN OLD.started_at - OLD.due_at >= wait_max OR OLD.duration >= run_max
  THEN 1 ELSE dirty END WHERE queue = OLD.queue AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
  DELETE FROM attempt_minute WHERE attempts = 0 AND queue = OLD.queue
  AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
  INSERT INTO attempt_minute (minute, queue, attempts, completed, failed, reruns, wait_n,
  wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty)
  SELECT CAST(NEW.finished_at / 60 AS INTEGER), NEW.queue, 1,
  CASE WHEN NEW.outcome = 'completed' THEN 1 ELSE 0 END,
  CASE WHEN NEW.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END,
  CASE WHEN NEW.number > 1 THEN 1 ELSE 0 END, CASE WHEN NEW.due_at IS NULL THEN 0 ELSE 1 END,
  COALESCE(NEW.started_at - NEW.due_at, 0), NEW.started_at - NEW.due_at,
  CASE WHEN NEW.duration IS NULL THEN 0 ELSE 1 END, COALESCE(NEW.duration, 0), NEW.duration,
  NEW.seq, 0 WHERE NEW.finished_at IS NOT NULL
  ON CONFLICT (minute, queue) DO UPDATE SET attempts = attempt_minute.attempts + 1,
  completed = attempt_minute.completed + excluded.completed,
  failed = attempt_minute.failed + excluded.failed,
  reruns = attempt_minute.reruns + excluded.reruns,
  wait_n = attempt_minute.wait_n + excluded.wait_n,
  wait_sum = attempt_minute.wait_sum + excluded.wait_sum,
  wait_max = CASE WHEN excluded.wait_max > attempt_minute.wait_max OR attempt_minute.wait_max
  IS NULL THEN excluded.wait_max ELSE attempt_minute.wait_max END,
  run_n = attempt_minute.run_n + excluded.run_n,
  run_sum = attempt_minute.run_sum + excluded.run_sum,
  run_max = CASE WHEN excluded.run_max > attempt_minute.run_max OR attempt_minute.run_max
  IS NULL THEN excluded.run_max ELSE attempt_minute.run_max END,
  min_seq = CASE WHEN excluded.min_seq < attempt_minute.min_seq THEN excluded.min_seq
  ELSE attempt_minute.min_seq END;
END;

-- name: attempt_minute_delete
CREATE TRIGGER attempt_minute_delete AFTER DELETE ON attempt
WHEN OLD.finished_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'pruning')
BEGIN
  UPDATE attempt_minute SET attempts = attempts - 1,
  completed = completed - CASE WHEN OLD.outcome = 'completed' THEN 1 ELSE 0 END,
  failed = failed - CASE WHEN OLD.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END,
  reruns = reruns - CASE WHEN OLD.number > 1 THEN 1 ELSE 0 END,
  wait_n = wait_n - CASE WHEN OLD.due_at IS NULL THEN 0 ELSE 1 END,
  wait_sum = wait_sum - COALESCE(OLD.started_at - OLD.due_at, 0),
  run_n = run_n - CASE WHEN OLD.duration IS NULL THEN 0 ELSE 1 END,
  run_sum = run_sum - COALESCE(OLD.duration, 0),
  dirty = CASE WHEN OLD.started_at - OLD.due_at >= wait_max OR OLD.duration >= run_max
  THEN 1 ELSE dirty END WHERE queue = OLD.queue AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
  DELETE FROM attempt_minute WHERE attempts = 0 AND queue = OLD.queue
  AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
END;

-- job_failed_minute: a job counts in the row of its queue, state, last error and finish
-- minute while it is failed or dead with a finish time; a change of any of those moves it
-- (out of the old row, into the new), a delete takes it out (not while pruning). A completion
-- writes nothing here; a failure one upsert, the claim of a failed job one update.

-- name: job_failed_insert
CREATE TRIGGER job_failed_insert AFTER INSERT ON job
WHEN NEW.state IN ('failed', 'dead') AND NEW.finished_at IS NOT NULL
BEGIN
  INSERT INTO job_failed_minute (minute, queue, state, error, n)
  SELECT CAST(NEW.finished_at / 60 AS INTEGER), NEW.queue, NEW.state, COALESCE(NEW.last_error, ''), 1
  WHERE NEW.state IN ('failed', 'dead') AND NEW.finished_at IS NOT NULL
  ON CONFLICT (minute, queue, state, error) DO UPDATE SET n = job_failed_minute.n + 1;
END;

-- name: job_failed_update
CREATE TRIGGER job_failed_update AFTER UPDATE OF state, finished_at, last_error, queue ON job
WHEN ((OLD.state IN ('failed', 'dead') AND OLD.finished_at IS NOT NULL) OR (NEW.state IN
('failed', 'dead') AND NEW.finished_at IS NOT NULL)) AND (OLD.state IS NOT NEW.state OR
OLD.finished_at IS NOT NEW.finished_at OR OLD.last_error IS NOT NEW.last_error OR
OLD.queue IS NOT NEW.queue)
BEGIN
  UPDATE job_failed_minute SET n = n - 1
  WHERE OLD.state IN ('failed', 'dead') AND OLD.finished_at IS NOT NULL
  AND queue = OLD.queue AND state = OLD.state AND error = COALESCE(OLD.last_error, '')
  AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
  DELETE FROM job_failed_minute
  WHERE n = 0 AND OLD.state IN ('failed', 'dead') AND OLD.finished_at IS NOT NULL
  AND queue = OLD.queue AND state = OLD.state AND error = COALESCE(OLD.last_error, '')
  AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
  INSERT INTO job_failed_minute (minute, queue, state, error, n)
  SELECT CAST(NEW.finished_at / 60 AS INTEGER), NEW.queue, NEW.state, COALESCE(NEW.last_error, ''), 1
  WHERE NEW.state IN ('failed', 'dead') AND NEW.finished_at IS NOT NULL
  ON CONFLICT (minute, queue, state, error) DO UPDATE SET n = job_failed_minute.n + 1;
END;

-- name: job_failed_delete
CREATE TRIGGER job_failed_delete AFTER DELETE ON job
WHEN OLD.state IN ('failed', 'dead') AND OLD.finished_at IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'pruning')
BEGIN
  UPDATE job_failed_minute SET n = n - 1
  WHERE queue = OLD.queue AND state = OLD.state AND error = COALESCE(OLD.last_error, '')
  AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
  DELETE FROM job_failed_minute
  WHERE n = 0 AND queue = OLD.queue AND state = OLD.state AND error = COALESCE(OLD.last_error, '')
  AND minute = CAST(OLD.finished_at / 60 AS INTEGER);
END;

-- job_count: every insert, delete and change of state or queue of a job adds or takes one in
-- the same transaction, so the counts are exact whoever writes, at two small writes per state
-- change (claim, finish), none per heartbeat. A pair met for the first time gets its row from
-- the upsert.
--
-- job_count.v (the change counter): SQLite's data_version moves at every commit, a
-- heartbeat's included, so what shows jobs cannot tell a heartbeat from a change to jobs by
-- it. v grows with every change of a job (insert, delete, any update), of a queue (pause,
-- limit: what a waiting job is held by) and of the pause of every queue, and with nothing
-- else. No write is added to the claim or the finish: their state change already writes the
-- two rows that carry v; an update that keeps the job's state and queue (edit, priority, a
-- dependency released, pause JOB_ID) bumps the row of its state.

-- name: job_count_insert
CREATE TRIGGER job_count_insert AFTER INSERT ON job
BEGIN
  INSERT INTO job_count (queue, state, n, v) VALUES (NEW.queue, NEW.state, 1, 1)
  ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1, v = job_count.v + 1;
END;

-- name: job_count_update
CREATE TRIGGER job_count_update AFTER UPDATE OF state, queue ON job
WHEN NEW.state IS NOT OLD.state OR NEW.queue IS NOT OLD.queue
BEGIN
  UPDATE job_count SET n = n - 1, v = v + 1 WHERE queue = OLD.queue AND state = OLD.state;
  INSERT INTO job_count (queue, state, n, v) VALUES (NEW.queue, NEW.state, 1, 1)
  ON CONFLICT (queue, state) DO UPDATE SET n = job_count.n + 1, v = job_count.v + 1;
END;

-- name: job_count_delete
CREATE TRIGGER job_count_delete AFTER DELETE ON job
BEGIN
  UPDATE job_count SET n = n - 1, v = v + 1 WHERE queue = OLD.queue AND state = OLD.state;
END;

-- name: job_touch
CREATE TRIGGER job_touch AFTER UPDATE ON job
WHEN NEW.state IS OLD.state AND NEW.queue IS OLD.queue
BEGIN
  UPDATE job_count SET v = v + 1 WHERE queue = NEW.queue AND state = NEW.state;
END;

-- name: queue_touch_insert
CREATE TRIGGER queue_touch_insert AFTER INSERT ON queue
BEGIN
  UPDATE job_count SET v = v + 1 WHERE queue = NEW.name;
END;

-- name: queue_touch_update
CREATE TRIGGER queue_touch_update AFTER UPDATE ON queue
BEGIN
  UPDATE job_count SET v = v + 1 WHERE queue IN (OLD.name, NEW.name);
END;

-- name: queue_touch_delete
CREATE TRIGGER queue_touch_delete AFTER DELETE ON queue
BEGIN
  UPDATE job_count SET v = v + 1 WHERE queue = OLD.name;
END;

-- name: paused_all_touch_insert
CREATE TRIGGER paused_all_touch_insert AFTER INSERT ON meta WHEN NEW.key = 'paused_all'
BEGIN
  UPDATE job_count SET v = v + 1;
END;

-- name: paused_all_touch_update
CREATE TRIGGER paused_all_touch_update AFTER UPDATE ON meta
WHEN NEW.key = 'paused_all' OR OLD.key = 'paused_all'
BEGIN
  UPDATE job_count SET v = v + 1;
END;

-- name: paused_all_touch_delete
CREATE TRIGGER paused_all_touch_delete AFTER DELETE ON meta WHEN OLD.key = 'paused_all'
BEGIN
  UPDATE job_count SET v = v + 1;
END;

-- ---------------------------------------------------------------------------------------------
-- Fills: the counts and rollups made anew from the jobs and attempts there are, after their
-- triggers are installed (the caller holds the write transaction: nothing changes between).
-- ---------------------------------------------------------------------------------------------

-- name: fill_job_count
DELETE FROM job_count;
INSERT INTO job_count (queue, state, n) SELECT queue, state, COUNT(seq) FROM job
GROUP BY queue, state;

-- name: fill_attempt_minute
DELETE FROM attempt_minute;
INSERT INTO attempt_minute (minute, queue, attempts, completed, failed, reruns, wait_n,
wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty)
SELECT CAST(finished_at / 60 AS INTEGER), queue, count(*),
SUM(CASE WHEN outcome = 'completed' THEN 1 ELSE 0 END),
SUM(CASE WHEN outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END),
SUM(CASE WHEN number > 1 THEN 1 ELSE 0 END), count(due_at),
COALESCE(SUM(started_at - due_at), 0), MAX(started_at - due_at), count(duration),
COALESCE(SUM(duration), 0), MAX(duration), MIN(seq), 0
FROM attempt WHERE finished_at IS NOT NULL GROUP BY 1, 2;

-- name: fill_job_failed_minute
DELETE FROM job_failed_minute;
INSERT INTO job_failed_minute (minute, queue, state, error, n)
SELECT CAST(finished_at / 60 AS INTEGER), queue, state, COALESCE(last_error, ''), count(*)
FROM job WHERE state IN ('failed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2, 3, 4;
