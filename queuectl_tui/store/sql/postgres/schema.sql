-- PostgreSQL's schema: what a new database (a schema of its own) is made of. store/schema.py
-- runs the tables and indexes in this file's order, then the functions and triggers: the
-- rank function below, then store/pgsql.py's counts, rollups and batch functions (the count
-- slots included), then the notifications below, then the fills. Upgrades run the blocks they
-- name. The format is queries.sql's (store/sql/__init__.py); a block of several statements is
-- one round trip. Times are UNIX seconds (DOUBLE PRECISION); peewee's models
-- (store/models.py) map these tables, and tests/engine/test_schema.py holds a new database
-- equal to one upgraded from version 1. SQLite's schema.sql says what each table holds.

-- ---------------------------------------------------------------------------------------------
-- Tables, each with its indexes
-- ---------------------------------------------------------------------------------------------

-- name: meta
CREATE TABLE "meta" ("key" VARCHAR(255) NOT NULL PRIMARY KEY, "value" TEXT NOT NULL);

-- name: setting
CREATE TABLE "setting" ("key" VARCHAR(255) NOT NULL PRIMARY KEY, "value" TEXT NOT NULL);

-- name: environment
CREATE TABLE "environment" ("digest" VARCHAR(255) NOT NULL PRIMARY KEY, "data" TEXT NOT NULL);

-- name: worker
CREATE TABLE "worker" ("id" SERIAL NOT NULL PRIMARY KEY, "host" VARCHAR(255) NOT NULL,
"pid" INTEGER NOT NULL, "proc_started" DOUBLE PRECISION NOT NULL,
"started_at" DOUBLE PRECISION NOT NULL, "heartbeat_at" DOUBLE PRECISION NOT NULL,
"status" VARCHAR(255) NOT NULL, "current_job" VARCHAR(255), "queues" VARCHAR(255));

-- name: job
CREATE TABLE "job" ("seq" SERIAL NOT NULL PRIMARY KEY, "id" VARCHAR(255) NOT NULL,
"command" TEXT NOT NULL, "queue" VARCHAR(255) NOT NULL, "state" VARCHAR(255) NOT NULL,
"priority" INTEGER NOT NULL, "attempts" INTEGER NOT NULL, "max_retries" INTEGER NOT NULL,
"backoff_base" DOUBLE PRECISION NOT NULL, "timeout" DOUBLE PRECISION,
"run_at" DOUBLE PRECISION NOT NULL, "created_at" DOUBLE PRECISION NOT NULL,
"updated_at" DOUBLE PRECISION NOT NULL, "started_at" DOUBLE PRECISION,
"finished_at" DOUBLE PRECISION, "last_error" TEXT, "exit_code" INTEGER, "output_tail" TEXT,
"cwd" TEXT NOT NULL, "env_digest" VARCHAR(255), "worker_id" INTEGER,
"cancel_requested" BOOLEAN NOT NULL, "claim_token" BIGINT,
"waiting_on" INTEGER NOT NULL DEFAULT 0, "rank" DOUBLE PRECISION NOT NULL DEFAULT 0,
"paused_token" BIGINT, "label" TEXT, "schedule" VARCHAR(255));

-- name: job_id
CREATE UNIQUE INDEX "job_id" ON "job" ("id");

-- name: job_claim
CREATE INDEX "job_claim" ON "job" ("queue", "rank" DESC, "run_at", "seq")
WHERE state IN ('pending', 'failed') AND waiting_on = 0;

-- name: job_due
CREATE INDEX "job_due" ON "job" ("queue", "run_at", "seq")
WHERE state IN ('pending', 'failed') AND waiting_on = 0;

-- name: job_state_seq
CREATE INDEX "job_state_seq" ON "job" ("state", "seq");

-- name: job_failed
CREATE INDEX "job_failed" ON "job" ("finished_at", "queue", "state", "last_error")
WHERE state IN ('failed', 'dead');

-- name: job_count
-- slot: the writing session's row (store/pgsql.py: the triggers add to the rows of the
-- session that wrote, queuectl_fold() folds them into slot 0; readers sum the slots).
CREATE TABLE "job_count" ("queue" VARCHAR(255) NOT NULL, "state" VARCHAR(255) NOT NULL,
"n" BIGINT NOT NULL, "slot" INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ("queue", "state", "slot"));

-- name: queue
CREATE TABLE "queue" ("name" VARCHAR(255) NOT NULL PRIMARY KEY, "paused" BOOLEAN,
"max_running" INTEGER);

-- name: job_dep
CREATE TABLE "job_dep" ("job_seq" INTEGER NOT NULL, "dep_seq" INTEGER NOT NULL,
"dep_id" VARCHAR(255) NOT NULL, PRIMARY KEY ("job_seq", "dep_seq"),
FOREIGN KEY ("job_seq") REFERENCES "job" ("seq") ON DELETE CASCADE);

-- name: job_dep_dep_seq
CREATE INDEX "job_dep_dep_seq" ON "job_dep" ("dep_seq");

-- name: attempt
CREATE TABLE "attempt" ("seq" SERIAL NOT NULL PRIMARY KEY, "job_seq" INTEGER NOT NULL,
"number" INTEGER NOT NULL, "worker_id" INTEGER, "host" VARCHAR(255), "pid" INTEGER,
"pid_started" DOUBLE PRECISION, "started_at" DOUBLE PRECISION NOT NULL,
"finished_at" DOUBLE PRECISION, "exit_code" INTEGER, "duration" DOUBLE PRECISION,
"outcome" VARCHAR(255), "error" TEXT, "log_file" VARCHAR(255), "claim_token" BIGINT,
"due_at" DOUBLE PRECISION, "cpu_seconds" DOUBLE PRECISION, "peak_rss_bytes" BIGINT,
"processes" INTEGER, "queue" VARCHAR(255), "log_dropped" DOUBLE PRECISION,
FOREIGN KEY ("job_seq") REFERENCES "job" ("seq") ON DELETE CASCADE);

-- name: attempt_job_seq_number
CREATE UNIQUE INDEX "attempt_job_seq_number" ON "attempt" ("job_seq", "number");

-- name: attempt_window
CREATE INDEX "attempt_window" ON "attempt" ("finished_at", "outcome", "number", "started_at",
"due_at", "duration", "queue");

-- name: attempt_minute
-- slot: as job_count's.
CREATE TABLE "attempt_minute" ("minute" BIGINT NOT NULL, "queue" VARCHAR(255) NOT NULL,
"attempts" BIGINT NOT NULL, "completed" BIGINT NOT NULL, "failed" BIGINT NOT NULL,
"reruns" BIGINT NOT NULL, "wait_n" BIGINT NOT NULL, "wait_sum" DOUBLE PRECISION NOT NULL,
"wait_max" DOUBLE PRECISION, "run_n" BIGINT NOT NULL, "run_sum" DOUBLE PRECISION NOT NULL,
"run_max" DOUBLE PRECISION, "min_seq" BIGINT, "dirty" INTEGER NOT NULL,
"slot" INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ("minute", "queue", "slot"));

-- name: job_failed_minute
-- slot: as job_count's.
CREATE TABLE "job_failed_minute" ("minute" BIGINT NOT NULL, "queue" VARCHAR(255) NOT NULL,
"state" VARCHAR(255) NOT NULL, "error" TEXT NOT NULL, "n" BIGINT NOT NULL,
"slot" INTEGER NOT NULL DEFAULT 0, PRIMARY KEY ("minute", "queue", "state", "error", "slot"));

-- name: schedule
CREATE TABLE "schedule" ("name" VARCHAR(255) NOT NULL PRIMARY KEY, "spec" TEXT NOT NULL,
"cron" VARCHAR(255), "every" DOUBLE PRECISION, "tz" VARCHAR(255) NOT NULL,
"catch_up" VARCHAR(255) NOT NULL, "no_overlap" BOOLEAN NOT NULL, "paused" BOOLEAN NOT NULL,
"cwd" TEXT NOT NULL, "env_digest" VARCHAR(255), "created_at" DOUBLE PRECISION NOT NULL,
"next_at" DOUBLE PRECISION, "last_at" DOUBLE PRECISION, "last_job" VARCHAR(255),
"skipped_at" DOUBLE PRECISION, "skipped_why" TEXT);

-- name: schedule_next
CREATE INDEX "schedule_next" ON "schedule" ("paused", "next_at");

-- ---------------------------------------------------------------------------------------------
-- The rank and the notifications (the counts and rollups: store/pgsql.py)
-- ---------------------------------------------------------------------------------------------

-- name: job_rank_change
-- job.rank when priority or run_at change (pgsql's job_rank trigger calls it only when they
-- really do): the rate is models.AGING_RATE_SQL, read in the statement's own transaction.
CREATE OR REPLACE FUNCTION job_rank_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
NEW.rank := NEW.priority - COALESCE((SELECT CAST(value AS DOUBLE PRECISION) FROM setting
WHERE key = 'priority_aging'), 0) * NEW.run_at / 60.0; RETURN NEW; END $$;

-- name: queuectl_notify_changed
-- Idle workers and watchers LISTEN (wait_change) on the schema's own channel (postgres.
-- notify_channel says which: listeners of other schemas of the database are not woken;
-- before version 11 all shared 'queuectl'). The payload names the schema, and whether queues,
-- meta, settings or schedules changed (" control"). A statement trigger also fires for a
-- statement that changed nothing (an idle worker's empty claim): the transition table says so,
-- and such a statement wakes no one (else two idle workers would wake each other in a loop).
-- A job update notifies only when it makes work or news a worker needs (a job pending or
-- failed, a cancel, a slot of a limited queue freed) or while a watcher is connected (`wait`,
-- `logs -f`, the console: a session holding the watchers' lock shared, triggers.sql's
-- watch): a worker's claims and ends notify no one otherwise. Every NOTIFY takes the
-- server's one notification-queue lock at commit and wakes every listening session of the
-- database (a transaction each), so ends notifying busy workers cost more the more workers
-- ran. No watcher holds the lock when this session can take it exclusive for a moment (a
-- claim that meets another claim's moment notifies, as before). The job's test is an IF of
-- its own: PL/pgSQL plans a statement for the table that fired, and the other tables have no
-- state. PostgreSQL folds repeats within a transaction.
CREATE OR REPLACE FUNCTION queuectl_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NOT EXISTS (SELECT FROM changed) THEN RETURN NULL; END IF;
IF TG_TABLE_NAME = 'job' AND TG_OP = 'UPDATE' THEN
IF NOT EXISTS (SELECT FROM changed c WHERE c.state IN ('pending', 'failed')
OR c.cancel_requested OR (c.state <> 'processing' AND EXISTS (SELECT FROM queue q
WHERE q.name = c.queue AND q.max_running IS NOT NULL)))
AND pg_try_advisory_lock(1903519096, hashtext(TG_TABLE_SCHEMA)) THEN
PERFORM pg_advisory_unlock(1903519096, hashtext(TG_TABLE_SCHEMA)); RETURN NULL; END IF; END IF;
PERFORM pg_notify(CASE WHEN octet_length(TG_TABLE_SCHEMA) <= 54
THEN 'queuectl.' || TG_TABLE_SCHEMA ELSE 'queuectl#' || md5(TG_TABLE_SCHEMA) END,
CASE WHEN TG_TABLE_NAME = 'job' THEN TG_TABLE_SCHEMA
ELSE TG_TABLE_SCHEMA || ' control' END);
RETURN NULL; END $$;

-- name: notify_triggers
-- The tables whose committed changes wake the listeners: jobs (enqueue, finish, retry,
-- cancel), queues (resume, limits), meta (resume all), settings. Transition tables need one
-- trigger per event.
CREATE TRIGGER job_notify_insert AFTER INSERT ON job REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER job_notify_update AFTER UPDATE ON job REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER job_notify_delete AFTER DELETE ON job REFERENCING OLD TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER queue_notify_insert AFTER INSERT ON queue REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER queue_notify_update AFTER UPDATE ON queue REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER queue_notify_delete AFTER DELETE ON queue REFERENCING OLD TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER meta_notify_insert AFTER INSERT ON meta REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER meta_notify_update AFTER UPDATE ON meta REFERENCING NEW TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER meta_notify_delete AFTER DELETE ON meta REFERENCING OLD TABLE AS changed
FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER setting_notify_insert AFTER INSERT ON setting REFERENCING NEW TABLE AS
changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER setting_notify_update AFTER UPDATE ON setting REFERENCING NEW TABLE AS
changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER setting_notify_delete AFTER DELETE ON setting REFERENCING OLD TABLE AS
changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();

-- name: schedule_notify_triggers
-- A schedule added, paused, resumed or moved on wakes the idle workers (their sleep ends at
-- the earliest due time, which may now be sooner), as a job change does. (SQLite needs
-- nothing: every commit wakes them.)
CREATE TRIGGER schedule_notify_insert AFTER INSERT ON schedule REFERENCING NEW TABLE AS
changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER schedule_notify_update AFTER UPDATE ON schedule REFERENCING NEW TABLE AS
changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();
CREATE TRIGGER schedule_notify_delete AFTER DELETE ON schedule REFERENCING OLD TABLE AS
changed FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify_changed();

-- ---------------------------------------------------------------------------------------------
-- Fills: the counts and rollups made anew from the jobs and attempts there are, into slot 0,
-- after their triggers are installed (under the exclusive lock: nothing changes between).
-- FLOOR: a cast to an integer would round.
-- ---------------------------------------------------------------------------------------------

-- name: fill_job_count
DELETE FROM job_count;
INSERT INTO job_count (queue, state, n) SELECT queue, state, COUNT(seq) FROM job
GROUP BY queue, state;

-- name: fill_attempt_minute
DELETE FROM attempt_minute;
INSERT INTO attempt_minute (minute, queue, attempts, completed, failed, reruns, wait_n,
wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty)
SELECT FLOOR(finished_at / 60)::BIGINT, queue, count(*),
SUM(CASE WHEN outcome = 'completed' THEN 1 ELSE 0 END),
SUM(CASE WHEN outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END),
SUM(CASE WHEN number > 1 THEN 1 ELSE 0 END), count(due_at),
COALESCE(SUM(started_at - due_at), 0), MAX(started_at - due_at), count(duration),
COALESCE(SUM(duration), 0), MAX(duration), MIN(seq), 0
FROM attempt WHERE finished_at IS NOT NULL GROUP BY 1, 2;

-- name: fill_job_failed_minute
DELETE FROM job_failed_minute;
INSERT INTO job_failed_minute (minute, queue, state, error, n)
SELECT FLOOR(finished_at / 60)::BIGINT, queue, state, COALESCE(last_error, ''), count(*)
FROM job WHERE state IN ('failed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2, 3, 4;
