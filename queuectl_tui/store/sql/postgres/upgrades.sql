-- What upgrading an older PostgreSQL schema runs besides schema.sql's blocks (store/schema.py,
-- UPGRADES), by version; and the drops that let the functions and triggers be installed anew
-- over those of any earlier version. A step that makes a table, index or trigger of today runs
-- schema.sql's block of that name.

-- name: drop_triggers
-- Every trigger of the counts, rank and rollups installed now or by an earlier version, and
-- the notify triggers of versions before 6, dropped before installing (store/pgsql.py).
DROP TRIGGER IF EXISTS job_count_insert_delete ON job;
DROP TRIGGER IF EXISTS job_count_update ON job;
DROP TRIGGER IF EXISTS job_failed_insert_delete ON job;
DROP TRIGGER IF EXISTS job_failed_update ON job;
DROP TRIGGER IF EXISTS attempt_minute_insert_delete ON attempt;
DROP TRIGGER IF EXISTS job_counts_insert ON job;
DROP TRIGGER IF EXISTS job_counts_update ON job;
DROP TRIGGER IF EXISTS job_counts_delete ON job;
DROP TRIGGER IF EXISTS job_rank ON job; DROP TRIGGER IF EXISTS job_release ON job;
DROP TRIGGER IF EXISTS attempt_minute_insert ON attempt;
DROP TRIGGER IF EXISTS attempt_minute_delete ON attempt;
DROP TRIGGER IF EXISTS attempt_minute_update ON attempt;
DROP TRIGGER IF EXISTS job_notify ON job; DROP TRIGGER IF EXISTS queue_notify ON queue;
DROP TRIGGER IF EXISTS meta_notify ON meta;
DROP TRIGGER IF EXISTS setting_notify ON setting;

-- name: drop_functions
-- Version 3's per-row count functions.
DROP FUNCTION IF EXISTS job_count_change(); DROP FUNCTION IF EXISTS job_failed_change();

-- name: drop_notify
-- The notify triggers: before version 6 one per table, then one per table and event.
DROP TRIGGER IF EXISTS job_notify ON job; DROP TRIGGER IF EXISTS queue_notify ON queue;
DROP TRIGGER IF EXISTS meta_notify ON meta;
DROP TRIGGER IF EXISTS setting_notify ON setting;
DROP TRIGGER IF EXISTS job_notify_insert ON job;
DROP TRIGGER IF EXISTS job_notify_update ON job;
DROP TRIGGER IF EXISTS job_notify_delete ON job;
DROP TRIGGER IF EXISTS queue_notify_insert ON queue;
DROP TRIGGER IF EXISTS queue_notify_update ON queue;
DROP TRIGGER IF EXISTS queue_notify_delete ON queue;
DROP TRIGGER IF EXISTS meta_notify_insert ON meta;
DROP TRIGGER IF EXISTS meta_notify_update ON meta;
DROP TRIGGER IF EXISTS meta_notify_delete ON meta;
DROP TRIGGER IF EXISTS setting_notify_insert ON setting;
DROP TRIGGER IF EXISTS setting_notify_update ON setting;
DROP TRIGGER IF EXISTS setting_notify_delete ON setting;

-- name: drop_notify_function
-- Versions 4 and 5's notify function (one NOTIFY even for a statement that changed nothing).
DROP FUNCTION IF EXISTS queuectl_notify();

-- name: drop_schedule_notify
DROP TRIGGER IF EXISTS schedule_notify_insert ON schedule;
DROP TRIGGER IF EXISTS schedule_notify_update ON schedule;
DROP TRIGGER IF EXISTS schedule_notify_delete ON schedule;

-- name: upgrade_3_job_columns
-- Version 3: NOT NULL with a DEFAULT in one ALTER each (playhouse's add_column would rewrite
-- the table); the rank of every job is its priority (no aging before this version).
ALTER TABLE job ADD COLUMN waiting_on INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN rank DOUBLE PRECISION NOT NULL DEFAULT 0;
UPDATE job SET rank = priority;

-- name: upgrade_3_attempt_queue
-- Version 3: each attempt gets its job's queue.
UPDATE attempt SET queue = (SELECT queue FROM job WHERE job.seq = attempt.job_seq);

-- name: upgrade_3_drop
-- Version 3: version 2's triggers counted per state only, and its job_count with them; the
-- claim and due indexes are now per queue; attempt_window covers attempt_finished_at.
DROP TRIGGER IF EXISTS job_count_insert_delete ON job;
DROP TRIGGER IF EXISTS job_count_update ON job;
DROP TABLE IF EXISTS job_count;
DROP INDEX IF EXISTS job_claim;
DROP INDEX IF EXISTS job_due;
DROP INDEX IF EXISTS attempt_finished_at;

-- name: upgrade_4_drop
-- Version 4: seq ends the job_due index (the oldest due in one step).
DROP INDEX IF EXISTS job_due;
