-- PostgreSQL's forms of the execution metrics' statements that differ from SQLite's (loaded by
-- store/sql/__init__.py). FLOOR where SQLite's CAST truncates (PostgreSQL's CAST rounds): the
-- minute is the one the PostgreSQL triggers compute, the slice the one SQLite's CAST gives.

-- name: window_minutes
-- A window's whole minutes from the rollup attempt_minute. Its triggers keep a row per writing
-- session (store/pgsql.py): a minute's figures are the sum of its rows (a session's row may hold
-- negative figures); sum(bigint) is numeric, cast back.
SELECT minute, queue, sum(attempts)::BIGINT, sum(completed)::BIGINT, sum(failed)::BIGINT,
  sum(reruns)::BIGINT, max(wait_max), sum(wait_sum), sum(wait_n)::BIGINT, max(run_max),
  sum(run_sum), sum(run_n)::BIGINT, min(min_seq), max(dirty)
FROM attempt_minute WHERE minute BETWEEN %s AND %s
GROUP BY minute, queue HAVING sum(attempts) <> 0;

-- name: window_scan
-- The figures per queue of the attempts of a window's partial minutes (the index range with a
-- second to spare, then the minute test decides, as the triggers did).
SELECT a.queue, count(*), count(*) FILTER (WHERE a.outcome = 'completed'),
  count(*) FILTER (WHERE a.outcome IN ('failed', 'timeout', 'lost')),
  count(*) FILTER (WHERE a.number > 1),
  max(a.started_at - a.due_at), sum(a.started_at - a.due_at), count(a.due_at),
  max(a.duration), sum(a.duration), count(a.duration), min(a.seq)
FROM attempt a
WHERE a.finished_at > %s AND a.finished_at <= %s
  AND FLOOR(a.finished_at / 60)::BIGINT BETWEEN %s AND %s
GROUP BY a.queue;

-- name: failed_minutes
-- Jobs failed or dead per queue, state and last error in a window's whole minutes, from the
-- rollup job_failed_minute: its sessions' rows summed (cast back from numeric), those that net
-- to nothing left out.
SELECT queue, state, error, sum(n)::BIGINT FROM job_failed_minute
WHERE minute BETWEEN %s AND %s
GROUP BY 1, 2, 3 HAVING sum(n) <> 0;

-- name: window_failures
-- Jobs failed or dead per queue, state and last error in a window's partial minutes, from the
-- partial index job_failed (its condition repeated as a literal).
SELECT queue, state, last_error, count(*) FROM job
WHERE state IN ('failed', 'dead') AND finished_at > %s AND finished_at <= %s
  AND FLOOR(finished_at / 60)::BIGINT BETWEEN %s AND %s
GROUP BY 1, 2, 3;

-- name: queue_oldest_due
-- A queue's waiting job due the longest: no INDEXED BY, the planner picks job_due, whose
-- condition the query repeats; seq, its last column, breaks ties in run_at as SQLite's rowid
-- does.
SELECT id, run_at FROM job
WHERE queue = %s AND state IN ('pending', 'failed') AND waiting_on = 0
ORDER BY run_at, seq LIMIT 1;

-- name: window_slices
-- The console's chart: a window cut in equal slices (the last one holds the window's end);
-- attempts and mean and max times per slice (LEAST for SQLite's scalar min()).
SELECT LEAST(FLOOR((a.finished_at - %s) / %s)::BIGINT, %s) AS b, count(*),
  avg(a.started_at - a.due_at), max(a.started_at - a.due_at), avg(a.duration), max(a.duration)
FROM attempt a
WHERE a.finished_at > %s AND a.finished_at <= %s
GROUP BY b;

-- name: window_slices_of_queues
-- window_slices of the queues in a JSON list (json_array_elements_text for SQLite's json_each).
SELECT LEAST(FLOOR((a.finished_at - %s) / %s)::BIGINT, %s) AS b, count(*),
  avg(a.started_at - a.due_at), max(a.started_at - a.due_at), avg(a.duration), max(a.duration)
FROM attempt a
WHERE a.finished_at > %s AND a.finished_at <= %s
  AND a.queue IN (SELECT json_array_elements_text(%s::json))
GROUP BY b;
