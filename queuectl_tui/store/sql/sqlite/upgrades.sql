-- What opening an older SQLite database reads and runs besides schema.sql's blocks
-- (store/schema.py, UPGRADES): its version, and each version's own steps, by version. A step
-- that makes a table, index or trigger of today runs schema.sql's block of that name.

-- name: schema_version
-- Read at every command's start (one plain query, no write lock); "no such table": a new file.
SELECT value FROM meta WHERE key = 'schema_version';

-- name: upgrade_3_job_columns
-- Version 3: NOT NULL with a DEFAULT in one ALTER each (playhouse's add_column would rebuild
-- the table); the rank of every job is its priority (no aging before this version).
ALTER TABLE job ADD COLUMN waiting_on INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN rank REAL NOT NULL DEFAULT 0;
UPDATE job SET rank = priority;

-- name: upgrade_3_attempt_queue
-- Version 3: each attempt gets its job's queue.
UPDATE attempt SET queue = (SELECT queue FROM job WHERE job.seq = attempt.job_seq);

-- name: upgrade_3_drop
-- Version 3: version 2's triggers counted per state only, and its job_count with them; the
-- claim and due indexes are now per queue; attempt_window covers attempt_finished_at.
DROP TRIGGER IF EXISTS job_count_insert;
DROP TRIGGER IF EXISTS job_count_update;
DROP TRIGGER IF EXISTS job_count_delete;
DROP TABLE IF EXISTS job_count;
DROP INDEX IF EXISTS job_claim;
DROP INDEX IF EXISTS job_due;
DROP INDEX IF EXISTS attempt_finished_at;

-- name: upgrade_4_drop
-- Version 4: seq ends the job_due index (the oldest due in one step).
DROP INDEX IF EXISTS job_due;

-- name: upgrade_10_drop
-- Version 10: the delete triggers of the rollups, made again with the pruning guard.
DROP TRIGGER IF EXISTS attempt_minute_delete;
DROP TRIGGER IF EXISTS job_failed_delete;

-- name: upgrade_11_add_v
-- Version 11: job_count.v, the change counter (made only where missing: a database upgraded
-- from before version 3 got today's job_count at version 3).
ALTER TABLE job_count ADD COLUMN v INTEGER NOT NULL DEFAULT 0;

-- name: upgrade_11_drop
-- Version 11: the count triggers, made again with v, and the triggers that bump v (dropped
-- first: a database upgraded from before version 3 has them already).
DROP TRIGGER IF EXISTS job_count_insert;
DROP TRIGGER IF EXISTS job_count_update;
DROP TRIGGER IF EXISTS job_count_delete;
DROP TRIGGER IF EXISTS job_touch;
DROP TRIGGER IF EXISTS queue_touch_insert;
DROP TRIGGER IF EXISTS queue_touch_update;
DROP TRIGGER IF EXISTS queue_touch_delete;
DROP TRIGGER IF EXISTS paused_all_touch_insert;
DROP TRIGGER IF EXISTS paused_all_touch_update;
DROP TRIGGER IF EXISTS paused_all_touch_delete;
