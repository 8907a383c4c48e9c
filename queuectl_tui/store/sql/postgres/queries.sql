-- PostgreSQL's statements of the worker's hot path, by name (loaded by store/sql/__init__.py).
-- The per-job ones are prepared once per connection (the server planned the claim anew each
-- time, which cost as much as running it: 0.3-0.4 ms). A statement spans the lines after its
-- name and description, joined by single spaces; tests/engine/test_store.py holds each text to the
-- one measured.

-- name: next_number
-- The number of a job's next attempt.
SELECT COALESCE(MAX(number), 0) + 1 FROM attempt WHERE job_seq = %s;

-- name: new_attempt
-- The attempt of a claim.
INSERT INTO attempt (job_seq, number, worker_id, host, started_at, log_file, claim_token,
due_at, queue) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq;

-- name: finish_job
-- A job's end, fenced on its claim token (a worker presumed lost changes nothing).
UPDATE job SET state = %s, run_at = COALESCE(%s, run_at), attempts = attempts - %s, finished_at
= %s, last_error = %s, exit_code = %s, output_tail = COALESCE(%s, output_tail), updated_at = %s,
started_at = %s, worker_id = NULL, cancel_requested = false, claim_token = NULL WHERE seq = %s
AND state = 'processing' AND claim_token IS NOT DISTINCT FROM %s;

-- name: finish_attempt
-- An attempt's end and its costs.
UPDATE attempt SET finished_at = %s, exit_code = %s, outcome = %s, error = %s, started_at = %s,
duration = %s, pid = COALESCE(pid, %s), pid_started = COALESCE(pid_started, %s), cpu_seconds =
%s, peak_rss_bytes = %s, processes = %s WHERE seq = %s AND outcome IS NULL;

-- name: set_worker
-- The worker's row: idle or busy on a job (a stopping worker stays stopping), and its
-- heartbeat.
UPDATE worker SET status = CASE WHEN status = 'stopping' THEN status WHEN CAST(%s AS TEXT) IS
NULL THEN 'idle' ELSE 'busy' END, current_job = %s, heartbeat_at = %s WHERE id = %s;

-- name: next_due
-- When the next job of the worker's open queues (with waiting jobs, not paused, under their
-- limit: summed over the rollups' slots; no lock: an idle worker's read) is due, and the
-- settings' version.
SELECT MIN((SELECT run_at FROM job WHERE queue = o.name AND state IN ('pending', 'failed') AND
waiting_on = 0 ORDER BY run_at LIMIT 1)), (SELECT value FROM meta WHERE key =
'settings_version') FROM (SELECT c.queue AS name FROM (SELECT queue FROM job_count WHERE state
IN ('pending', 'failed') GROUP BY queue HAVING sum(n) > 0) c LEFT JOIN queue q ON q.name =
c.queue WHERE NOT COALESCE(q.paused, (SELECT value = '1' FROM meta WHERE key = 'paused_all'),
false) AND (q.max_running IS NULL OR q.max_running > COALESCE((SELECT sum(r.n) FROM job_count r
WHERE r.queue = c.queue AND r.state = 'processing'), 0)) AND (%(queues)s::text[] IS NULL OR
c.queue = ANY(%(queues)s::text[]))) o;

-- name: oldest_due
-- Per queue with pending jobs, the first pending entry of its job_due index (PostgreSQL has no
-- INDEXED BY: its planner takes job_due, whose condition the query repeats).
SELECT MIN((SELECT run_at FROM job WHERE queue = c.queue AND state IN ('pending', 'failed') AND
waiting_on = 0 AND state = 'pending' ORDER BY run_at LIMIT 1)) FROM (SELECT queue FROM job_count
WHERE state = 'pending' GROUP BY queue HAVING sum(n) > 0) c;

-- name: job_rows
-- These jobs (a list of seqs as one parameter).
SELECT seq, id, state, exit_code, last_error FROM job WHERE seq = ANY(%s);

-- name: cycle
-- A worker's batch in one round trip (queuectl_cycle, store/sql/postgres/triggers.sql): the
-- ends of the last batch as one array per column, then the claim's parameters.
SELECT * FROM queuectl_cycle(%(e_seq)s::bigint[], %(e_token)s::bigint[], %(e_state)s::text[],
%(e_run_at)s::float8[], %(e_given)s::int[], %(e_finished)s::float8[], %(e_error)s::text[],
%(e_code)s::int[], %(e_tail)s::text[], %(e_now)s::float8[], %(e_started)s::float8[],
%(e_attempt)s::bigint[], %(e_outcome)s::text[], %(e_pid)s::int[], %(e_pid_started)s::float8[],
%(e_cpu)s::float8[], %(e_rss)s::bigint[], %(e_procs)s::int[], %(now)s::float8,
%(queues)s::text[], %(worker)s::int, %(host)s::text, %(token)s::bigint, %(n)s::int,
%(mark)s::boolean, %(next)s::text, %(wrote)s::boolean);

-- name: heartbeat
-- A worker's heartbeat, and the fold of the sessions' count rows (queuectl_fold: a try-lock,
-- else nothing) in the same statement: one round trip a beat, not two.
UPDATE worker SET heartbeat_at = %s WHERE id = %s RETURNING queuectl_fold();
