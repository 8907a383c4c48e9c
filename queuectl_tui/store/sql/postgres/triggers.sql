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
-- (SKIP LOCKED: a row another claimer holds is passed over, not waited for; the update then
-- finds the rows it locked by seq alone: locked, they stay due, and a filter on their state
-- there made the planner walk job_due, every pending job, per claim), numbered after
-- the job's last attempt, with tokens p_token + 1, + 2, ...; with p_mark, the worker's row says
-- what it is on (p_next, else the first job claimed) when it claimed some or p_wrote (an
-- empty look writes nothing). Each statement here sees what the ones before it committed to
-- this transaction: the claim sees the room and the dependents the ends freed. Returns the
-- claims (the job columns of queries.JOB_COLUMNS, the attempt's seq, number and log file,
-- the settings' version), then one row of the ends: only its last column set, the seqs of the
-- jobs whose end was recorded. Raises 'worker N is no longer registered' (all undone) when it
-- claimed for a worker whose row is gone. No bitmap scans: planned for an array of unknown
-- length, the ends' update read job_state_seq's 'processing' entries as a bitmap, and a bitmap
-- scan never marks an index entry dead, so every batch read every job claimed since the last
-- vacuum again (18,000 entries and 645 pages per batch late in a drain of 20,000); a plain
-- index scan marks the dead ones, which later scans skip and btree then removes.
CREATE OR REPLACE FUNCTION queuectl_cycle(e_seq bigint[], e_token bigint[], e_state text[],
e_run_at float8[], e_given int[], e_finished float8[], e_error text[], e_code int[], e_tail
text[], e_now float8[], e_started float8[], e_attempt bigint[], e_outcome text[], e_pid int[],
e_pid_started float8[], e_cpu float8[], e_rss bigint[], e_procs int[], p_now float8, p_queues
text[], p_worker int, p_host text, p_token bigint, p_n int, p_mark boolean, p_next text,
p_wrote boolean) RETURNS TABLE (o_seq bigint, o_id text, o_command text, o_queue text, o_state
text, o_priority int, o_attempts int, o_max_retries int, o_backoff_base float8, o_timeout
float8, o_run_at float8, o_created_at float8, o_updated_at float8, o_started_at float8, o_cwd
text, o_env_digest text, o_worker_id int, o_claim_token bigint, o_attempt bigint, o_number int,
o_log_file text, o_version text, o_ended bigint[]) LANGUAGE plpgsql SET enable_bitmapscan = off AS $$
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
= h.seq RETURNING job.seq,
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

-- name: jobs_insert
-- job_count and job_failed_minute follow inserted jobs once per statement, from its
-- transition table, into the rows of the writing session (slot pg_backend_pid(): see
-- store/pgsql.py).
CREATE OR REPLACE FUNCTION job_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
INSERT INTO job_count (queue, state, slot, n) SELECT queue, state, pg_backend_pid(), count(*)
FROM new_rows GROUP BY queue, state ON CONFLICT (queue, state, slot) DO UPDATE SET n =
job_count.n + excluded.n;
INSERT INTO job_failed_minute (minute, queue, state, error, slot, n) SELECT minute, queue,
state, error, pg_backend_pid(), n FROM (SELECT FLOOR(finished_at / 60)::BIGINT, queue, state,
COALESCE(last_error, ''), count(*) FROM new_rows WHERE state IN ('failed', 'dead') AND
finished_at IS NOT NULL GROUP BY 1, 2, 3, 4) f (minute, queue, state, error, n) ON CONFLICT
(minute, queue, state, error, slot) DO UPDATE SET n = job_failed_minute.n + excluded.n;
RETURN NULL;
END $$;

-- name: jobs_update
-- Every claim and finish is an update: the rollup of failures is left alone unless a row was
-- or is a failure; the jobs waiting on one that completed here are released (one statement
-- for all of them, and none unless a dependency row names one of them).
CREATE OR REPLACE FUNCTION job_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
INSERT INTO job_count (queue, state, slot, n) SELECT queue, state, pg_backend_pid(), sum(d) FROM
(SELECT queue, state, 1 AS d FROM new_rows UNION ALL SELECT queue, state, -1 FROM old_rows) c
GROUP BY queue, state HAVING sum(d) <> 0 ON CONFLICT (queue, state, slot) DO UPDATE SET n =
job_count.n + excluded.n;
IF EXISTS (SELECT 1 FROM new_rows WHERE state IN ('failed', 'dead')) OR EXISTS (SELECT 1 FROM
old_rows WHERE state IN ('failed', 'dead')) THEN INSERT INTO job_failed_minute (minute, queue,
state, error, slot, n) SELECT minute, queue, state, error, pg_backend_pid(), sum(n) FROM (SELECT
FLOOR(finished_at / 60)::BIGINT, queue, state, COALESCE(last_error, ''), count(*) FROM new_rows
WHERE state IN ('failed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2, 3, 4 UNION ALL
SELECT minute, queue, state, error, -n FROM (SELECT FLOOR(finished_at / 60)::BIGINT, queue,
state, COALESCE(last_error, ''), count(*) FROM old_rows WHERE state IN ('failed', 'dead') AND
finished_at IS NOT NULL GROUP BY 1, 2, 3, 4) o (minute, queue, state, error, n)) c (minute,
queue, state, error, n) GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ON CONFLICT (minute, queue,
state, error, slot) DO UPDATE SET n = job_failed_minute.n + excluded.n;
END IF;
IF EXISTS (SELECT 1 FROM new_rows n JOIN job_dep d ON d.dep_seq = n.seq WHERE n.state =
'completed') THEN UPDATE job SET waiting_on = GREATEST(job.waiting_on - r.n, 0) FROM (SELECT
d.job_seq, count(*) AS n FROM new_rows n JOIN old_rows o ON o.seq = n.seq JOIN job_dep d ON
d.dep_seq = n.seq WHERE n.state = 'completed' AND o.state <> 'completed' GROUP BY d.job_seq) r
WHERE job.seq = r.job_seq AND job.waiting_on > 0 AND job.state IN ('pending', 'failed');
END IF;
RETURN NULL;
END $$;

-- name: jobs_delete
-- Deleted jobs leave the counts; the rollup of failures keeps them while a pruning
-- transaction runs (meta's 'pruning' row, retention.py: past windows keep what is pruned).
CREATE OR REPLACE FUNCTION job_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
INSERT INTO job_count (queue, state, slot, n) SELECT queue, state, pg_backend_pid(), -count(*)
FROM old_rows GROUP BY queue, state ON CONFLICT (queue, state, slot) DO UPDATE SET n =
job_count.n + excluded.n;
IF NOT EXISTS (SELECT 1 FROM meta WHERE key = 'pruning') THEN INSERT INTO job_failed_minute
(minute, queue, state, error, slot, n) SELECT minute, queue, state, error, pg_backend_pid(), -n
FROM (SELECT FLOOR(finished_at / 60)::BIGINT, queue, state, COALESCE(last_error, ''), count(*)
FROM old_rows WHERE state IN ('failed', 'dead') AND finished_at IS NOT NULL GROUP BY 1, 2, 3, 4)
f (minute, queue, state, error, n) ON CONFLICT (minute, queue, state, error, slot) DO UPDATE SET
n = job_failed_minute.n + excluded.n;
END IF;
RETURN NULL;
END $$;

-- name: minute_change
-- attempt_minute: an attempt that gets its end adds itself to its session's row of its queue
-- and minute (per row: only an attempt inserted with its end, which claims never do).
CREATE OR REPLACE FUNCTION attempt_minute_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
INSERT INTO attempt_minute (minute, slot, queue, attempts, completed, failed, reruns, wait_n,
wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty) SELECT FLOOR(NEW.finished_at /
60)::BIGINT, pg_backend_pid(), NEW.queue, 1, CASE WHEN NEW.outcome = 'completed' THEN 1 ELSE 0
END, CASE WHEN NEW.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END, CASE WHEN
NEW.number > 1 THEN 1 ELSE 0 END, CASE WHEN NEW.due_at IS NULL THEN 0 ELSE 1 END,
COALESCE(NEW.started_at - NEW.due_at, 0), NEW.started_at - NEW.due_at, CASE WHEN NEW.duration IS
NULL THEN 0 ELSE 1 END, COALESCE(NEW.duration, 0), NEW.duration, NEW.seq, 0 WHERE
NEW.finished_at IS NOT NULL ON CONFLICT (minute, queue, slot) DO UPDATE SET attempts =
attempt_minute.attempts + excluded.attempts, completed = attempt_minute.completed +
excluded.completed, failed = attempt_minute.failed + excluded.failed, reruns =
attempt_minute.reruns + excluded.reruns, wait_n = attempt_minute.wait_n + excluded.wait_n,
wait_sum = attempt_minute.wait_sum + excluded.wait_sum, wait_max =
GREATEST(attempt_minute.wait_max, excluded.wait_max), run_n = attempt_minute.run_n +
excluded.run_n, run_sum = attempt_minute.run_sum + excluded.run_sum, run_max =
GREATEST(attempt_minute.run_max, excluded.run_max), min_seq = LEAST(attempt_minute.min_seq,
excluded.min_seq), dirty = GREATEST(attempt_minute.dirty, excluded.dirty);
RETURN NULL;
END $$;

-- name: minute_update
-- The ends of attempts, once per statement (a batch's ends are one statement): what the
-- changed rows of old_rows took out (with a dirty mark where one held its key's maximum: a
-- maximum cannot be taken back, metrics reads a dirty minute from the attempts) and what those
-- of new_rows add, grouped per minute and queue, into the session's rows. An update that
-- changes no figure (a process recorded) returns at once. When no changed attempt had ended
-- before (a batch's ends, every worker's cycle), there is nothing to take out: new_rows'
-- figures go in alone, without the join, the maxima's look-up and the union (half of this
-- trigger's time, a fifth of a cycle's fixed cost in the server).
CREATE OR REPLACE FUNCTION attempt_minute_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
IF NOT EXISTS (SELECT 1 FROM old_rows WHERE finished_at IS NOT NULL) THEN
INSERT INTO attempt_minute (minute, slot, queue, attempts, completed, failed, reruns, wait_n,
wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty) SELECT FLOOR(finished_at /
60)::BIGINT, pg_backend_pid(), queue, count(*), count(*) FILTER (WHERE outcome = 'completed'),
count(*) FILTER (WHERE outcome IN ('failed', 'timeout', 'lost')), count(*) FILTER (WHERE number
> 1), count(due_at), COALESCE(sum(started_at - due_at), 0), max(started_at - due_at),
count(duration), COALESCE(sum(duration), 0), max(duration), min(seq), 0 FROM new_rows WHERE
finished_at IS NOT NULL GROUP BY 1, 3 ORDER BY 1, 3 ON CONFLICT (minute, queue, slot) DO UPDATE
SET attempts = attempt_minute.attempts + excluded.attempts, completed = attempt_minute.completed
+ excluded.completed, failed = attempt_minute.failed + excluded.failed, reruns =
attempt_minute.reruns + excluded.reruns, wait_n = attempt_minute.wait_n + excluded.wait_n,
wait_sum = attempt_minute.wait_sum + excluded.wait_sum, wait_max =
GREATEST(attempt_minute.wait_max, excluded.wait_max), run_n = attempt_minute.run_n +
excluded.run_n, run_sum = attempt_minute.run_sum + excluded.run_sum, run_max =
GREATEST(attempt_minute.run_max, excluded.run_max), min_seq = LEAST(attempt_minute.min_seq,
excluded.min_seq), dirty = GREATEST(attempt_minute.dirty, excluded.dirty);
RETURN NULL;
END IF;
IF NOT EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.seq = o.seq WHERE (o.finished_at IS
NOT NULL OR n.finished_at IS NOT NULL) AND (o.finished_at IS DISTINCT FROM n.finished_at OR
o.outcome IS DISTINCT FROM n.outcome OR o.number IS DISTINCT FROM n.number OR o.started_at IS
DISTINCT FROM n.started_at OR o.due_at IS DISTINCT FROM n.due_at OR o.duration IS DISTINCT FROM
n.duration OR o.queue IS DISTINCT FROM n.queue)) THEN RETURN NULL;
END IF;
INSERT INTO attempt_minute (minute, slot, queue, attempts, completed, failed, reruns, wait_n,
wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty) SELECT minute, pg_backend_pid(),
queue, sum(attempts), sum(completed), sum(failed), sum(reruns), sum(wait_n), sum(wait_sum),
max(wait_max), sum(run_n), sum(run_sum), max(run_max), min(min_seq), max(dirty) FROM (SELECT
FLOOR(o.finished_at / 60)::BIGINT AS minute, o.queue, -1 AS attempts, -(CASE WHEN o.outcome =
'completed' THEN 1 ELSE 0 END) AS completed, -(CASE WHEN o.outcome IN ('failed', 'timeout',
'lost') THEN 1 ELSE 0 END) AS failed, -(CASE WHEN o.number > 1 THEN 1 ELSE 0 END) AS reruns,
-(CASE WHEN o.due_at IS NULL THEN 0 ELSE 1 END) AS wait_n, -COALESCE(o.started_at - o.due_at, 0)
AS wait_sum, NULL::float8 AS wait_max, -(CASE WHEN o.duration IS NULL THEN 0 ELSE 1 END) AS
run_n, -COALESCE(o.duration, 0) AS run_sum, NULL::float8 AS run_max, NULL::bigint AS min_seq,
CASE WHEN o.started_at - o.due_at >= m.wait_max OR o.duration >= m.run_max THEN 1 ELSE 0 END AS
dirty FROM old_rows o JOIN new_rows n ON n.seq = o.seq CROSS JOIN LATERAL (SELECT max(wait_max)
AS wait_max, max(run_max) AS run_max FROM attempt_minute a WHERE a.minute = FLOOR(o.finished_at
/ 60)::BIGINT AND a.queue = o.queue) m WHERE o.finished_at IS NOT NULL AND (o.finished_at IS
DISTINCT FROM n.finished_at OR o.outcome IS DISTINCT FROM n.outcome OR o.number IS DISTINCT FROM
n.number OR o.started_at IS DISTINCT FROM n.started_at OR o.due_at IS DISTINCT FROM n.due_at OR
o.duration IS DISTINCT FROM n.duration OR o.queue IS DISTINCT FROM n.queue) UNION ALL SELECT
FLOOR(n.finished_at / 60)::BIGINT, n.queue, 1, CASE WHEN n.outcome = 'completed' THEN 1 ELSE 0
END, CASE WHEN n.outcome IN ('failed', 'timeout', 'lost') THEN 1 ELSE 0 END, CASE WHEN n.number
> 1 THEN 1 ELSE 0 END, CASE WHEN n.due_at IS NULL THEN 0 ELSE 1 END, COALESCE(n.started_at -
n.due_at, 0), n.started_at - n.due_at, CASE WHEN n.duration IS NULL THEN 0 ELSE 1 END,
COALESCE(n.duration, 0), n.duration, n.seq, 0 FROM old_rows o JOIN new_rows n ON n.seq = o.seq
WHERE n.finished_at IS NOT NULL AND (o.finished_at IS DISTINCT FROM n.finished_at OR o.outcome
IS DISTINCT FROM n.outcome OR o.number IS DISTINCT FROM n.number OR o.started_at IS DISTINCT
FROM n.started_at OR o.due_at IS DISTINCT FROM n.due_at OR o.duration IS DISTINCT FROM
n.duration OR o.queue IS DISTINCT FROM n.queue)) d GROUP BY minute, queue ORDER BY 1, 3 ON
CONFLICT (minute, queue, slot) DO UPDATE SET attempts = attempt_minute.attempts +
excluded.attempts, completed = attempt_minute.completed + excluded.completed, failed =
attempt_minute.failed + excluded.failed, reruns = attempt_minute.reruns + excluded.reruns,
wait_n = attempt_minute.wait_n + excluded.wait_n, wait_sum = attempt_minute.wait_sum +
excluded.wait_sum, wait_max = GREATEST(attempt_minute.wait_max, excluded.wait_max), run_n =
attempt_minute.run_n + excluded.run_n, run_sum = attempt_minute.run_sum + excluded.run_sum,
run_max = GREATEST(attempt_minute.run_max, excluded.run_max), min_seq =
LEAST(attempt_minute.min_seq, excluded.min_seq), dirty = GREATEST(attempt_minute.dirty,
excluded.dirty);
RETURN NULL;
END $$;

-- name: minute_delete
-- Deleted attempts are taken out of their rows (negative figures, dirty where one held the
-- key's maximum), except while a pruning transaction runs.
CREATE OR REPLACE FUNCTION attempt_minute_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
IF EXISTS (SELECT 1 FROM meta WHERE key = 'pruning') THEN RETURN NULL;
END IF;
INSERT INTO attempt_minute (minute, slot, queue, attempts, completed, failed, reruns, wait_n,
wait_sum, wait_max, run_n, run_sum, run_max, min_seq, dirty) SELECT d.minute, pg_backend_pid(),
d.queue, -d.attempts, -d.completed, -d.failed, -d.reruns, -d.wait_n, -d.wait_sum, NULL,
-d.run_n, -d.run_sum, NULL, NULL, CASE WHEN d.wait_max >= m.wait_max OR d.run_max >= m.run_max
THEN 1 ELSE 0 END FROM (SELECT FLOOR(finished_at / 60)::BIGINT AS minute, queue, count(*) AS
attempts, count(*) FILTER (WHERE outcome = 'completed') AS completed, count(*) FILTER (WHERE
outcome IN ('failed', 'timeout', 'lost')) AS failed, count(*) FILTER (WHERE number > 1) AS
reruns, count(due_at) AS wait_n, COALESCE(sum(started_at - due_at), 0) AS wait_sum,
max(started_at - due_at) AS wait_max, count(duration) AS run_n, COALESCE(sum(duration), 0) AS
run_sum, max(duration) AS run_max FROM old_rows WHERE finished_at IS NOT NULL GROUP BY 1, 2) d
CROSS JOIN LATERAL (SELECT max(wait_max) AS wait_max, max(run_max) AS run_max FROM
attempt_minute a WHERE a.minute = d.minute AND a.queue = d.queue) m ON CONFLICT (minute, queue,
slot) DO UPDATE SET attempts = attempt_minute.attempts + excluded.attempts, completed =
attempt_minute.completed + excluded.completed, failed = attempt_minute.failed + excluded.failed,
reruns = attempt_minute.reruns + excluded.reruns, wait_n = attempt_minute.wait_n +
excluded.wait_n, wait_sum = attempt_minute.wait_sum + excluded.wait_sum, wait_max =
GREATEST(attempt_minute.wait_max, excluded.wait_max), run_n = attempt_minute.run_n +
excluded.run_n, run_sum = attempt_minute.run_sum + excluded.run_sum, run_max =
GREATEST(attempt_minute.run_max, excluded.run_max), min_seq = LEAST(attempt_minute.min_seq,
excluded.min_seq), dirty = GREATEST(attempt_minute.dirty, excluded.dirty);
RETURN NULL;
END $$;

-- name: fold_function
-- The fold: rows of sessions not writing now (skip locked) into slot 0, then the keys left at
-- zero with no other slot are removed (job_count keeps its zero rows). One folder at a time
-- (a try-lock); the others return false at once.
CREATE OR REPLACE FUNCTION queuectl_fold() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN IF NOT
pg_try_advisory_xact_lock(1903519094, hashtext(current_schema())) THEN RETURN false;
END IF;
WITH gone AS (DELETE FROM job_count WHERE (queue, state, slot) IN (SELECT queue, state, slot
FROM job_count WHERE slot <> 0 FOR UPDATE SKIP LOCKED) RETURNING queue, state, n) INSERT INTO
job_count (queue, state, slot, n) SELECT queue, state, 0, sum(n) FROM gone GROUP BY 1, 2 ORDER
BY 1, 2 ON CONFLICT (queue, state, slot) DO UPDATE SET n = job_count.n + excluded.n;
WITH gone AS (DELETE FROM attempt_minute WHERE (minute, queue, slot) IN (SELECT minute, queue,
slot FROM attempt_minute WHERE slot <> 0 FOR UPDATE SKIP LOCKED) RETURNING *) INSERT INTO
attempt_minute (minute, slot, queue, attempts, completed, failed, reruns, wait_n, wait_sum,
wait_max, run_n, run_sum, run_max, min_seq, dirty) SELECT minute, 0, queue, sum(attempts),
sum(completed), sum(failed), sum(reruns), sum(wait_n), sum(wait_sum), max(wait_max), sum(run_n),
sum(run_sum), max(run_max), min(min_seq), max(dirty) FROM gone GROUP BY minute, queue ORDER BY
1, 3 ON CONFLICT (minute, queue, slot) DO UPDATE SET attempts = attempt_minute.attempts +
excluded.attempts, completed = attempt_minute.completed + excluded.completed, failed =
attempt_minute.failed + excluded.failed, reruns = attempt_minute.reruns + excluded.reruns,
wait_n = attempt_minute.wait_n + excluded.wait_n, wait_sum = attempt_minute.wait_sum +
excluded.wait_sum, wait_max = GREATEST(attempt_minute.wait_max, excluded.wait_max), run_n =
attempt_minute.run_n + excluded.run_n, run_sum = attempt_minute.run_sum + excluded.run_sum,
run_max = GREATEST(attempt_minute.run_max, excluded.run_max), min_seq =
LEAST(attempt_minute.min_seq, excluded.min_seq), dirty = GREATEST(attempt_minute.dirty,
excluded.dirty);
DELETE FROM attempt_minute m WHERE slot = 0 AND attempts = 0 AND NOT EXISTS (SELECT FROM
attempt_minute o WHERE o.minute = m.minute AND o.queue = m.queue AND o.slot <> 0);
WITH gone AS (DELETE FROM job_failed_minute WHERE (minute, queue, state, error, slot) IN (SELECT
minute, queue, state, error, slot FROM job_failed_minute WHERE slot <> 0 FOR UPDATE SKIP LOCKED)
RETURNING minute, queue, state, error, n) INSERT INTO job_failed_minute (minute, queue, state,
error, slot, n) SELECT minute, queue, state, error, 0, sum(n) FROM gone GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4 ON CONFLICT (minute, queue, state, error, slot) DO UPDATE SET n =
job_failed_minute.n + excluded.n;
DELETE FROM job_failed_minute f WHERE slot = 0 AND n = 0 AND NOT EXISTS (SELECT FROM
job_failed_minute o WHERE o.minute = f.minute AND o.queue = f.queue AND o.state = f.state AND
o.error = f.error AND o.slot <> 0);
RETURN true;
END $$;

-- name: log_name_function
-- engine.log_name in SQL, for the attempts a claim inserts: ID@SEQ-ATTEMPT.log, the id as it
-- is when plain, else each character outside [A-Za-z0-9._-] written %XX (its UTF-8 bytes), a
-- leading dot too, cut at 100 characters but never inside an escape. A test holds it equal to
-- the Python function.
CREATE OR REPLACE FUNCTION queuectl_log_name(id text, seq bigint, number integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$ DECLARE safe text := '';
ch text;
b integer;
BEGIN IF id ~ '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$' THEN RETURN id || '@' || seq || '-' ||
number || '.log';
END IF;
FOREACH ch IN ARRAY regexp_split_to_array(id, '') LOOP IF ch ~ '^[A-Za-z0-9._-]$' THEN safe :=
safe || ch;
ELSE FOR b IN SELECT get_byte(convert_to(ch, 'UTF8'), i) FROM generate_series(0,
octet_length(convert_to(ch, 'UTF8')) - 1) AS i LOOP safe := safe || '%%' ||
upper(lpad(to_hex(b), 2, '0'));
END LOOP;
END IF;
END LOOP;
IF left(safe, 1) = '.' THEN safe := '%%2E' || substr(safe, 2);
END IF;
IF length(safe) > 100 THEN safe := left(safe, 100);
IF substr(safe, 100, 1) = '%%' THEN safe := left(safe, 99);
ELSIF substr(safe, 99, 1) = '%%' THEN safe := left(safe, 98);
END IF;
END IF;
RETURN safe || '@' || seq || '-' || number || '.log';
END $$;

-- name: triggers
-- The job triggers (statement level, with transition tables) and attempt triggers.
CREATE TRIGGER job_counts_insert AFTER INSERT ON job REFERENCING NEW TABLE AS new_rows FOR EACH
STATEMENT EXECUTE FUNCTION job_counts_insert();
CREATE TRIGGER job_counts_update AFTER UPDATE ON job REFERENCING OLD TABLE AS old_rows NEW TABLE
AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_update();
CREATE TRIGGER job_counts_delete AFTER DELETE ON job REFERENCING OLD TABLE AS old_rows FOR EACH
STATEMENT EXECUTE FUNCTION job_counts_delete();
CREATE TRIGGER job_rank BEFORE UPDATE OF priority, run_at ON job FOR EACH ROW WHEN (OLD.priority
IS DISTINCT FROM NEW.priority OR OLD.run_at IS DISTINCT FROM NEW.run_at) EXECUTE FUNCTION
job_rank_change();
CREATE TRIGGER attempt_minute_insert AFTER INSERT ON attempt FOR EACH ROW WHEN (NEW.finished_at
IS NOT NULL) EXECUTE FUNCTION attempt_minute_change();
CREATE TRIGGER attempt_minute_delete AFTER DELETE ON attempt REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION attempt_minute_delete();
CREATE TRIGGER attempt_minute_update AFTER UPDATE ON attempt REFERENCING OLD TABLE AS old_rows
NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION attempt_minute_update();

-- name: add_slots
-- Idempotent: the slot column of each rollup and the keys that include it (run by every
-- install of the triggers).
ALTER TABLE job_count ADD COLUMN IF NOT EXISTS slot INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_count DROP CONSTRAINT IF EXISTS job_count_pkey;
ALTER TABLE job_count ADD CONSTRAINT job_count_pkey PRIMARY KEY (queue, state, slot);
ALTER TABLE attempt_minute ADD COLUMN IF NOT EXISTS slot INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempt_minute DROP CONSTRAINT IF EXISTS attempt_minute_pkey;
ALTER TABLE attempt_minute ADD CONSTRAINT attempt_minute_pkey PRIMARY KEY (minute, queue, slot);
ALTER TABLE job_failed_minute ADD COLUMN IF NOT EXISTS slot INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_failed_minute DROP CONSTRAINT IF EXISTS job_failed_minute_pkey;
ALTER TABLE job_failed_minute ADD CONSTRAINT job_failed_minute_pkey
PRIMARY KEY (minute, queue, state, error, slot);

-- name: drop_job_release
-- The dependents' release of old installs, folded into job_counts_update since.
DROP FUNCTION IF EXISTS job_release();

-- The locks, keyed (1903519093, hash of the schema): the schema's writers (the hot path shared,
-- everything else exclusive); (1903519094, schema): one folder at a time; (1903519095, hash of
-- schema/queue): one claimer at a time per limited queue (in cycle_function); (1903519096,
-- schema): the watchers', held shared for their session (queuectl_notify_changed).

-- name: write_lock
-- Every write but the hot path's: decided against a queue that no claim is changing.
SELECT pg_advisory_xact_lock(1903519093, hashtext(current_schema()));

-- name: write_lock_shared
-- Claims, finishes and hand-backs: side by side with each other.
SELECT pg_advisory_xact_lock_shared(1903519093, hashtext(current_schema()));

-- name: fold
-- The idle sessions' count rows into slot 0 (after an exclusive write, and on a heartbeat).
SELECT queuectl_fold();

-- name: watch
-- A watcher (`wait`, `logs -f`, the console) says so for as long as its session lives: job
-- updates that make no work notify while someone holds this lock (queuectl_notify_changed).
-- A try: a claim may hold it exclusive for a moment; false then, and the caller tries again.
SELECT pg_try_advisory_lock_shared(1903519096, hashtext(current_schema()));
