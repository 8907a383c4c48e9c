-- The execution metrics' statements written once for both backends (loaded by
-- store/sql/__init__.py: psycopg2's markers, made SQLite's at load). A window is
-- finished_at > %s AND finished_at <= %s: one range of the covering index attempt_window.

-- name: window_times
-- Wait and run time of every attempt of a window (percentiles exact up to metrics.SAMPLE_MAX
-- attempts); each attempt carries its queue, so no job is read.
SELECT a.queue, a.started_at - a.due_at, a.duration FROM attempt a
WHERE a.finished_at > %s AND a.finished_at <= %s;

-- name: window_sample
-- An even sample of a busy window without a second pass over it: every k-th attempt seq from the
-- first %s to the last %s (step k, given twice), each read by its rowid; those that finished
-- outside the window are left out by its condition.
WITH RECURSIVE ids(seq) AS (SELECT %s UNION ALL SELECT seq + %s FROM ids WHERE seq + %s <= %s)
SELECT a.queue, a.started_at - a.due_at, a.duration FROM ids JOIN attempt a ON a.seq = ids.seq
WHERE a.finished_at > %s AND a.finished_at <= %s;

-- name: last_attempt_seq
-- The highest attempt seq: where a window's sample ends.
SELECT max(seq) FROM attempt;
