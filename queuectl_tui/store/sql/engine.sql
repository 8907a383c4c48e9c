-- The engine's statements written once for both backends (loaded by store/sql/__init__.py:
-- psycopg2's markers, made SQLite's at load). Each is fixed SQL where the ORM cost more to build
-- the statement than the database to run it, on a path that runs often.

-- name: follow_look
-- `logs -f` at each wake-up: the job's state and its first attempt numbered %s or later, in one
-- read (two ORM reads cost a follower ~1.5 ms at every commit anyone makes).
SELECT state, last_error,
  (SELECT seq FROM attempt WHERE job_seq = job.seq AND number >= %s ORDER BY number LIMIT 1)
FROM job WHERE seq = %s AND id = %s;

-- name: jobs_after
-- `wait`'s look at the jobs enqueued since its last one: a range of the primary key.
SELECT seq, state, queue FROM job WHERE seq > %s;

-- name: attempts_ended_since
-- Jobs whose attempt ended at or after a time: a range of the index attempt_window, not a visit
-- of every job waited for.
SELECT job_seq FROM attempt WHERE finished_at >= %s;

-- name: failed_since
-- Jobs failed or dead at or after a time, with or without a run (cancelled while waiting, a
-- dependency failed): the partial index job_failed, whose condition the query repeats as a
-- literal for SQLite to use it.
SELECT seq FROM job WHERE state IN ('failed', 'dead') AND finished_at >= %s;

-- name: open_counts
-- Jobs not completed or dead, per queue, from the rollup job_count (PostgreSQL keeps several
-- rows per queue and state: the caller sums them).
SELECT queue, n FROM job_count WHERE state IN ('pending', 'processing', 'failed') AND n <> 0;

-- name: unfinished_jobs
-- `wait --all`'s full look (the states of waiting.UNFINISHED): built by the ORM it cost ~0.5 ms
-- each time, and its run ~0.01 ms.
SELECT seq FROM job WHERE state IN ('pending', 'processing', 'failed');

-- name: settings_versioned
-- Every stored setting and the settings' version (meta key settings.VERSION_KEY) in one
-- statement: one snapshot, never a version newer than the values read with it.
SELECT key, value FROM setting
UNION ALL
SELECT key, value FROM meta WHERE key = 'settings_version';

-- name: settings_version
-- The settings' version alone (one row): cheaper than settings_versioned when nothing changed.
SELECT value FROM meta WHERE key = 'settings_version';

-- name: next_schedule_run
-- When the earliest schedule that is not paused is due: an idle worker's look, one step of the
-- index schedule_next.
SELECT MIN(next_at) FROM schedule WHERE paused = false;

-- name: aging_rate
-- priority_aging as the claim's rank reads it (models.AGING_RATE_SQL): points of priority per
-- minute waited, 0 when unset.
SELECT COALESCE((SELECT CAST(value AS DOUBLE PRECISION) FROM setting
                 WHERE key = 'priority_aging'), 0);

-- name: pause_flags
-- Every pause flag in one read (a worker asks before it starts a job it held): the every-queue
-- flag (name NULL) and each queue's own.
SELECT NULL, value FROM meta WHERE key = 'paused_all'
UNION ALL
SELECT name, CASE WHEN paused THEN '1' ELSE '0' END FROM queue WHERE paused IS NOT NULL;

-- name: drop_unused_attempt
-- The attempt row of a job handed back, never used (one that ended is kept).
DELETE FROM attempt WHERE seq = %s AND outcome IS NULL;
