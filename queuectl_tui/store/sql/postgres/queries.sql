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

-- name: claim_batch
-- Up to %(n)s due jobs, best first, claimed with their attempts in one statement: the head of
-- each open queue (a limited one no further than its room, and only by the claimer holding its
-- lock: %(limited)s, from claim_locks) locked with SKIP LOCKED, so that a row another claimer
-- holds is passed over rather than waited for; the best %(n)s of those marked processing with
-- tokens %(token)s + 1, + 2, ..., and an attempt row each, numbered after the job's last (the
-- unique (job_seq, number) index's last entry). With %(mark)s, the worker's row says what it is
-- on (%(next)s, else the first job claimed) when it claimed some or %(wrote)s (ends recorded:
-- an empty look writes nothing). Returns the job columns (queries.JOB_COLUMNS, in that order),
-- the attempt's seq and number, the settings' version, and whether the worker's row was there
-- to mark.
WITH h AS (SELECT j.seq, row_number() OVER (ORDER BY j.rank DESC, j.run_at, j.seq) AS k FROM
(SELECT c.queue AS name, CASE WHEN q.max_running IS NULL THEN NULL ELSE q.max_running -
COALESCE((SELECT sum(r.n) FROM job_count r WHERE r.queue = c.queue AND r.state = 'processing'),
0) END AS room FROM (SELECT queue FROM job_count WHERE state IN ('pending', 'failed') GROUP BY
queue HAVING sum(n) > 0) c LEFT JOIN queue q ON q.name = c.queue WHERE NOT COALESCE(q.paused,
(SELECT value = '1' FROM meta WHERE key = 'paused_all'), false) AND (q.max_running IS NULL OR
(c.queue = ANY(%(limited)s::text[]) AND q.max_running > COALESCE((SELECT sum(r.n) FROM job_count
r WHERE r.queue = c.queue AND r.state = 'processing'), 0))) AND (%(queues)s::text[] IS NULL OR
c.queue = ANY(%(queues)s::text[]))) o CROSS JOIN LATERAL (SELECT seq, rank, run_at FROM job
WHERE queue = o.name AND state IN ('pending', 'failed') AND waiting_on = 0 AND run_at <= %(now)s
ORDER BY rank DESC, run_at, seq LIMIT LEAST(%(n)s, COALESCE(o.room, %(n)s)) FOR UPDATE SKIP
LOCKED) j ORDER BY j.rank DESC, j.run_at, j.seq LIMIT %(n)s), c AS (UPDATE job SET state =
'processing', attempts = job.attempts + 1, worker_id = %(worker)s, started_at = %(now)s,
finished_at = NULL, updated_at = %(now)s, cancel_requested = false, claim_token = %(token)s +
h.k FROM h WHERE job.seq = h.seq AND job.state IN ('pending', 'failed') AND job.waiting_on = 0
RETURNING job.seq, job.id, job.command, job.queue, job.state, job.priority, job.attempts,
job.max_retries, job.backoff_base, job.timeout, job.run_at, job.created_at, job.updated_at,
job.started_at, job.cwd, job.env_digest, job.worker_id, job.claim_token, h.k), a AS (INSERT INTO
attempt (job_seq, number, worker_id, host, started_at, log_file, claim_token, due_at, queue)
SELECT c.seq, n.number, %(worker)s, %(host)s, %(now)s, queuectl_log_name(c.id, c.seq, n.number),
c.claim_token, c.run_at, c.queue FROM c CROSS JOIN LATERAL (SELECT COALESCE(MAX(number), 0) + 1
AS number FROM attempt WHERE job_seq = c.seq) n RETURNING seq, job_seq, number, log_file), f AS
(SELECT COALESCE(%(next)s::text, (SELECT c.id FROM c ORDER BY c.k LIMIT 1)) AS job), w AS
(UPDATE worker SET status = CASE WHEN status = 'stopping' THEN status WHEN (SELECT job FROM f)
IS NULL THEN 'idle' ELSE 'busy' END, current_job = (SELECT job FROM f), heartbeat_at = %(now)s
WHERE id = %(worker)s AND %(mark)s::boolean AND (%(wrote)s::boolean OR EXISTS (SELECT 1 FROM c))
RETURNING id) SELECT c.seq, c.id, c.command, c.queue, c.state, c.priority, c.attempts,
c.max_retries, c.backoff_base, c.timeout, c.run_at, c.created_at, c.updated_at, c.started_at,
c.cwd, c.env_digest, c.worker_id, c.claim_token, a.seq, a.number, a.log_file, (SELECT value FROM
meta WHERE key = 'settings_version'), (SELECT count(*) FROM w) FROM c JOIN a ON a.job_seq =
c.seq ORDER BY c.k;

-- name: finish_batch
-- The ends of a batch in one statement: each job moved on (fenced: still processing under the
-- claim's token) and, for those that were, their attempts given their end. The values come as
-- one array per column (a fixed statement, prepared once, whatever the batch's size).
WITH v AS (SELECT * FROM unnest(%(seq)s::bigint[], %(token)s::bigint[], %(state)s::text[],
%(run_at)s::float8[], %(given)s::int[], %(finished)s::float8[], %(error)s::text[],
%(code)s::int[], %(tail)s::text[], %(now)s::float8[], %(started)s::float8[],
%(attempt)s::bigint[], %(outcome)s::text[], %(pid)s::int[], %(pid_started)s::float8[],
%(cpu)s::float8[], %(rss)s::bigint[], %(procs)s::int[]) AS v (seq, token, state, run_at, given,
finished, error, code, tail, now, started, attempt, outcome, pid, pid_started, cpu, rss,
procs)), j AS (UPDATE job SET state = v.state, run_at = COALESCE(v.run_at, job.run_at), attempts
= job.attempts - v.given, finished_at = v.finished, last_error = v.error, exit_code = v.code,
output_tail = COALESCE(v.tail, job.output_tail), updated_at = v.now, started_at = v.started,
worker_id = NULL, cancel_requested = false, claim_token = NULL FROM v WHERE job.seq = v.seq AND
job.state = 'processing' AND job.claim_token IS NOT DISTINCT FROM v.token RETURNING job.seq), a
AS (UPDATE attempt SET finished_at = v.now, exit_code = v.code, outcome = v.outcome, error =
v.error, started_at = v.started, duration = GREATEST(0, v.now - v.started), pid =
COALESCE(attempt.pid, v.pid), pid_started = COALESCE(attempt.pid_started, v.pid_started),
cpu_seconds = v.cpu, peak_rss_bytes = v.rss, processes = v.procs FROM v JOIN j ON j.seq = v.seq
WHERE attempt.seq = v.attempt AND attempt.outcome IS NULL) SELECT seq FROM j;

-- name: claim_locks
-- A claiming transaction's first statement (after BEGIN, in the same round trip): the schema's
-- writers' lock, shared, then a try-lock on each limited queue the worker serves (key
-- 1903519095, hash of schema/queue: one claimer at a time per limited queue); returns those it
-- holds.
SELECT pg_advisory_xact_lock_shared(1903519093, hashtext(current_schema())), ARRAY(SELECT name
FROM (SELECT name FROM queue WHERE max_running IS NOT NULL AND (%(queues)s::text[] IS NULL OR
name = ANY(%(queues)s::text[])) ORDER BY name OFFSET 0) l WHERE
pg_try_advisory_xact_lock(1903519095, hashtext(current_schema() || '/' || name)));
