-- PostgreSQL's server-side functions and triggers, by name (loaded by store/sql/__init__.py and
-- installed by store/pgsql.py). A block spans the lines after its name and description, joined
-- by single spaces: a plpgsql body keeps its semicolons. Raw SQL sent without parameters still
-- goes through psycopg2's formatting: a percent sign is written %%.

-- name: cycle_function
-- A worker's batch in one statement, run on its own (autocommit: one statement, one
-- transaction, one round trip) or inside a write transaction. Takes the schema's writers'
-- lock shared; records the ends of the previous batch (each job moved on, fenced on its claim
-- token, and the attempts of those that were given their end); then, with p_n > 0, try-locks
-- the limited queues the worker serves (one claimer at a time per limited queue: its running
-- count is read by the claim, a later statement, so it includes every claim the lock's
-- previous holder committed) and claims up to p_n due jobs with their attempts, best first
-- (SKIP LOCKED: a row another claimer holds is passed over, not waited for), numbered after
-- the job's last attempt, with tokens p_token + 1, + 2, ...; with p_mark, the worker's row says
-- what it is on (p_next, else the first job claimed) when it claimed some or p_wrote (an
-- empty look writes nothing). Each statement here sees what the ones before it committed to
-- this transaction: the claim sees the room and the dependents the ends freed. Returns the
-- claims (the job columns of queries.JOB_COLUMNS, the attempt's seq, number and log file,
-- the settings' version), then one row of the ends: only its last column set, the seqs of the
-- jobs whose end was recorded. Raises 'worker N is no longer registered' (all undone) when it
-- claimed for a worker whose row is gone.
CREATE OR REPLACE FUNCTION queuectl_cycle(e_seq bigint[], e_token bigint[], e_state text[],
e_run_at float8[], e_given int[], e_finished float8[], e_error text[], e_code int[], e_tail
text[], e_now float8[], e_started float8[], e_attempt bigint[], e_outcome text[], e_pid int[],
e_pid_started float8[], e_cpu float8[], e_rss bigint[], e_procs int[], p_now float8, p_queues
text[], p_worker int, p_host text, p_token bigint, p_n int, p_mark boolean, p_next text,
p_wrote boolean) RETURNS TABLE (o_seq bigint, o_id text, o_command text, o_queue text, o_state
text, o_priority int, o_attempts int, o_max_retries int, o_backoff_base float8, o_timeout
float8, o_run_at float8, o_created_at float8, o_updated_at float8, o_started_at float8, o_cwd
text, o_env_digest text, o_worker_id int, o_claim_token bigint, o_attempt bigint, o_number int,
o_log_file text, o_version text, o_ended bigint[]) LANGUAGE plpgsql AS $$
DECLARE limited text[]; ended bigint[]; got bigint;
BEGIN
PERFORM pg_advisory_xact_lock_shared(1903519093, hashtext(current_schema()));
IF cardinality(e_seq) > 0 THEN
WITH v AS (SELECT * FROM unnest(e_seq, e_token, e_state, e_run_at, e_given, e_finished,
e_error, e_code, e_tail, e_now, e_started, e_attempt, e_outcome, e_pid, e_pid_started, e_cpu,
e_rss, e_procs) AS v (seq, token, state, run_at, given, finished, error, code, tail, now,
started, attempt, outcome, pid, pid_started, cpu, rss, procs)), j AS (UPDATE job SET state =
v.state, run_at = COALESCE(v.run_at, job.run_at), attempts = job.attempts - v.given,
finished_at = v.finished, last_error = v.error, exit_code = v.code, output_tail =
COALESCE(v.tail, job.output_tail), updated_at = v.now, started_at = v.started, worker_id = NULL,
cancel_requested = false, claim_token = NULL FROM v WHERE job.seq = v.seq AND job.state =
'processing' AND job.claim_token IS NOT DISTINCT FROM v.token RETURNING job.seq), a AS (UPDATE
attempt SET finished_at = v.now, exit_code = v.code, outcome = v.outcome, error = v.error,
started_at = v.started, duration = GREATEST(0, v.now - v.started), pid = COALESCE(attempt.pid,
v.pid), pid_started = COALESCE(attempt.pid_started, v.pid_started), cpu_seconds = v.cpu,
peak_rss_bytes = v.rss, processes = v.procs FROM v JOIN j ON j.seq = v.seq WHERE attempt.seq =
v.attempt AND attempt.outcome IS NULL) SELECT array_agg(j.seq) INTO ended FROM j;
END IF;
IF p_n > 0 THEN
limited := ARRAY(SELECT name FROM (SELECT name FROM queue WHERE max_running IS NOT NULL AND
(p_queues IS NULL OR name = ANY(p_queues)) ORDER BY name OFFSET 0) l WHERE
pg_try_advisory_xact_lock(1903519095, hashtext(current_schema() || '/' || name)));
RETURN QUERY WITH h AS (SELECT j.seq, row_number() OVER (ORDER BY j.rank DESC, j.run_at, j.seq)
AS k FROM (SELECT c.queue AS name, CASE WHEN q.max_running IS NULL THEN NULL ELSE
q.max_running - COALESCE((SELECT sum(r.n) FROM job_count r WHERE r.queue = c.queue AND r.state
= 'processing'), 0) END AS room FROM (SELECT queue FROM job_count WHERE state IN ('pending',
'failed') GROUP BY queue HAVING sum(n) > 0) c LEFT JOIN queue q ON q.name = c.queue WHERE NOT
COALESCE(q.paused, (SELECT value = '1' FROM meta WHERE key = 'paused_all'), false) AND
(q.max_running IS NULL OR (c.queue = ANY(limited) AND q.max_running > COALESCE((SELECT sum(r.n)
FROM job_count r WHERE r.queue = c.queue AND r.state = 'processing'), 0))) AND (p_queues IS
NULL OR c.queue = ANY(p_queues))) o CROSS JOIN LATERAL (SELECT seq, rank, run_at FROM job WHERE
queue = o.name AND state IN ('pending', 'failed') AND waiting_on = 0 AND run_at <= p_now ORDER
BY rank DESC, run_at, seq LIMIT LEAST(p_n, COALESCE(o.room, p_n)) FOR UPDATE SKIP LOCKED) j
ORDER BY j.rank DESC, j.run_at, j.seq LIMIT p_n), c AS (UPDATE job SET state = 'processing',
attempts = job.attempts + 1, worker_id = p_worker, started_at = p_now, finished_at = NULL,
updated_at = p_now, cancel_requested = false, claim_token = p_token + h.k FROM h WHERE job.seq
= h.seq AND job.state IN ('pending', 'failed') AND job.waiting_on = 0 RETURNING job.seq,
job.id, job.command, job.queue, job.state, job.priority, job.attempts, job.max_retries,
job.backoff_base, job.timeout, job.run_at, job.created_at, job.updated_at, job.started_at,
job.cwd, job.env_digest, job.worker_id, job.claim_token, h.k), a AS (INSERT INTO attempt
(job_seq, number, worker_id, host, started_at, log_file, claim_token, due_at, queue) SELECT
c.seq, n.number, p_worker, p_host, p_now, queuectl_log_name(c.id, c.seq, n.number),
c.claim_token, c.run_at, c.queue FROM c CROSS JOIN LATERAL (SELECT COALESCE(MAX(number), 0) + 1
AS number FROM attempt WHERE job_seq = c.seq) n RETURNING seq, job_seq, number, log_file), f
AS (SELECT COALESCE(p_next, (SELECT c.id FROM c ORDER BY c.k LIMIT 1)) AS job), w AS (UPDATE
worker SET status = CASE WHEN status = 'stopping' THEN status WHEN (SELECT job FROM f) IS NULL
THEN 'idle' ELSE 'busy' END, current_job = (SELECT job FROM f), heartbeat_at = p_now WHERE id =
p_worker AND p_mark AND (p_wrote OR EXISTS (SELECT 1 FROM c))) SELECT c.seq::bigint,
c.id::text, c.command::text, c.queue::text, c.state::text, c.priority::int, c.attempts::int,
c.max_retries::int, c.backoff_base::float8, c.timeout::float8, c.run_at::float8,
c.created_at::float8, c.updated_at::float8, c.started_at::float8, c.cwd::text,
c.env_digest::text, c.worker_id::int, c.claim_token::bigint, a.seq::bigint, a.number::int,
a.log_file::text, (SELECT value FROM meta WHERE key = 'settings_version')::text, NULL::bigint[]
FROM c JOIN a ON a.job_seq = c.seq ORDER BY c.k;
GET DIAGNOSTICS got = ROW_COUNT;
IF got > 0 AND p_mark AND NOT EXISTS (SELECT 1 FROM worker WHERE id = p_worker) THEN
RAISE EXCEPTION 'worker %% is no longer registered', p_worker USING ERRCODE = 'QC001';
END IF;
ELSIF p_mark AND p_wrote THEN
UPDATE worker SET status = CASE WHEN status = 'stopping' THEN status WHEN p_next IS NULL THEN
'idle' ELSE 'busy' END, current_job = p_next, heartbeat_at = p_now WHERE id = p_worker;
END IF;
o_ended := ended;
RETURN NEXT;
END $$;
