-- SQLite's forms of the execution metrics' statements that differ from PostgreSQL's (loaded by
-- store/sql/__init__.py). A finish time's minute is CAST(finished_at / 60 AS INTEGER), which
-- truncates, as the rollups' triggers compute it.

-- name: window_minutes
-- A window's whole minutes from the rollup attempt_minute (kept by triggers): a row per queue and
-- minute, whatever the number of attempts; dirty: a maximum went with a deleted attempt.
SELECT minute, queue, attempts, completed, failed, reruns, wait_max, wait_sum, wait_n, run_max,
  run_sum, run_n, min_seq, dirty
FROM attempt_minute WHERE minute BETWEEN ? AND ?;

-- name: window_scan
-- The figures per queue of the attempts of a window's partial minutes (the index range with a
-- second to spare, then the minute test decides, as the triggers did).
SELECT a.queue, count(*), count(*) FILTER (WHERE a.outcome = 'completed'),
  count(*) FILTER (WHERE a.outcome IN ('failed', 'timeout', 'lost')),
  count(*) FILTER (WHERE a.number > 1),
  max(a.started_at - a.due_at), sum(a.started_at - a.due_at), count(a.due_at),
  max(a.duration), sum(a.duration), count(a.duration), min(a.seq)
FROM attempt a
WHERE a.finished_at > ? AND a.finished_at <= ?
  AND CAST(a.finished_at / 60 AS INTEGER) BETWEEN ? AND ?
GROUP BY a.queue;

-- name: failed_minutes
-- Jobs failed or dead per queue, state and last error in a window's whole minutes, from the
-- rollup job_failed_minute.
SELECT queue, state, error, sum(n) FROM job_failed_minute
WHERE minute BETWEEN ? AND ?
GROUP BY 1, 2, 3;

-- name: window_failures
-- Jobs failed or dead per queue, state and last error in a window's partial minutes, from the
-- partial index job_failed (its condition repeated as a literal).
SELECT queue, state, last_error, count(*) FROM job
WHERE state IN ('failed', 'dead') AND finished_at > ? AND finished_at <= ?
  AND CAST(finished_at / 60 AS INTEGER) BETWEEN ? AND ?
GROUP BY 1, 2, 3;

-- name: queue_oldest_due
-- A queue's waiting job due the longest: the head of its job_due index, named (the planner may
-- not pick it), whose condition the query repeats as literals.
SELECT id, run_at FROM job INDEXED BY job_due
WHERE queue = ? AND state IN ('pending', 'failed') AND waiting_on = 0
ORDER BY run_at LIMIT 1;

-- name: window_slices
-- The console's chart: a window cut in equal slices (the last one holds the window's end);
-- attempts and mean and max times per slice (min() of two values is SQLite's scalar min).
SELECT min(CAST((a.finished_at - ?) / ? AS INTEGER), ?) AS b, count(*),
  avg(a.started_at - a.due_at), max(a.started_at - a.due_at), avg(a.duration), max(a.duration)
FROM attempt a
WHERE a.finished_at > ? AND a.finished_at <= ?
GROUP BY b;

-- name: window_slices_of_queues
-- window_slices of the queues in a JSON list.
SELECT min(CAST((a.finished_at - ?) / ? AS INTEGER), ?) AS b, count(*),
  avg(a.started_at - a.due_at), max(a.started_at - a.due_at), avg(a.duration), max(a.duration)
FROM attempt a
WHERE a.finished_at > ? AND a.finished_at <= ? AND a.queue IN (SELECT value FROM json_each(?))
GROUP BY b;
