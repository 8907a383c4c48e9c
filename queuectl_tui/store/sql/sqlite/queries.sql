-- SQLite's statements of the worker's hot path, by name (loaded by store/sql/__init__.py).
-- Each is fixed SQL run on the connection: the ORM built them inside the write lock (~1.2 ms
-- of CPU per job). A statement spans the lines after its name and description, joined by
-- single spaces; tests/engine/test_store.py holds each text to the one measured.

-- name: claim
-- The next due job of the worker's open queues, claimed (its partial index named: the planner
-- would not pick it, and scanned and sorted every pending row: 16 ms at 100k pending, 3.5 us
-- here); returns the job and the settings' version. ?1 now, ?2 the worker's queues (a JSON
-- list, NULL: every queue), ?3 the worker, ?4 the claim token.
UPDATE job SET state = 'processing', attempts = attempts + 1, worker_id = ?3, started_at = ?1,
finished_at = NULL, updated_at = ?1, cancel_requested = 0, claim_token = ?4 WHERE seq = (SELECT
seq FROM job WHERE seq IN (SELECT (SELECT seq FROM job INDEXED BY job_claim WHERE queue = o.name
AND state IN ('pending', 'failed') AND waiting_on = 0 AND run_at <= ?1 ORDER BY rank DESC,
run_at, seq LIMIT 1) FROM (SELECT c.queue AS name FROM (SELECT DISTINCT queue FROM job_count
WHERE state IN ('pending', 'failed') AND n > 0) c LEFT JOIN queue q ON q.name = c.queue WHERE
NOT COALESCE(q.paused, (SELECT value = '1' FROM meta WHERE key = 'paused_all'), 0) AND
(q.max_running IS NULL OR q.max_running > COALESCE((SELECT r.n FROM job_count r WHERE r.queue =
c.queue AND r.state = 'processing'), 0)) AND (?2 IS NULL OR c.queue IN (SELECT value FROM
json_each(?2)))) o) ORDER BY rank DESC, run_at, seq LIMIT 1) RETURNING seq, id, command, queue,
state, priority, attempts, max_retries, backoff_base, timeout, run_at, created_at, updated_at,
started_at, cwd, env_digest, worker_id, claim_token, (SELECT value FROM meta WHERE key =
'settings_version');

-- name: next_number
-- The number of a job's next attempt.
SELECT COALESCE(MAX(number), 0) + 1 FROM attempt WHERE job_seq = ?;

-- name: new_attempt
-- The attempt of a claim.
INSERT INTO attempt (job_seq, number, worker_id, host, started_at, log_file, claim_token,
due_at, queue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq;

-- name: finish_job
-- A job's end, fenced on its claim token (a worker presumed lost changes nothing).
UPDATE job SET state = ?, run_at = COALESCE(?, run_at), attempts = attempts - ?, finished_at =
?, last_error = ?, exit_code = ?, output_tail = COALESCE(?, output_tail), updated_at = ?,
started_at = ?, worker_id = NULL, cancel_requested = 0, claim_token = NULL WHERE seq = ? AND
state = 'processing' AND claim_token IS ?;

-- name: finish_attempt
-- An attempt's end and its costs.
UPDATE attempt SET finished_at = ?, exit_code = ?, outcome = ?, error = ?, started_at = ?,
duration = ?, pid = COALESCE(pid, ?), pid_started = COALESCE(pid_started, ?), cpu_seconds = ?,
peak_rss_bytes = ?, processes = ? WHERE seq = ? AND outcome IS NULL;

-- name: set_worker
-- The worker's row: idle or busy on a job (a stopping worker stays stopping), and its
-- heartbeat.
UPDATE worker SET status = CASE WHEN status = 'stopping' THEN status WHEN CAST(? AS TEXT) IS
NULL THEN 'idle' ELSE 'busy' END, current_job = ?, heartbeat_at = ? WHERE id = ?;

-- name: next_due
-- When the next job of the worker's open queues is due, and the settings' version: an idle
-- worker's look for work (one step per open queue, in its own index).
SELECT MIN((SELECT run_at FROM job INDEXED BY job_due WHERE queue = o.name AND state IN
('pending', 'failed') AND waiting_on = 0 ORDER BY run_at LIMIT 1)), (SELECT value FROM meta
WHERE key = 'settings_version') FROM (SELECT c.queue AS name FROM (SELECT DISTINCT queue FROM
job_count WHERE state IN ('pending', 'failed') AND n > 0) c LEFT JOIN queue q ON q.name =
c.queue WHERE NOT COALESCE(q.paused, (SELECT value = '1' FROM meta WHERE key = 'paused_all'), 0)
AND (q.max_running IS NULL OR q.max_running > COALESCE((SELECT r.n FROM job_count r WHERE
r.queue = c.queue AND r.state = 'processing'), 0)) AND (?2 IS NULL OR c.queue IN (SELECT value
FROM json_each(?2)))) o;

-- name: oldest_due
-- Per queue with pending jobs, the first pending entry of its job_due index: how long the
-- oldest due job has waited.
SELECT MIN((SELECT run_at FROM job INDEXED BY job_due WHERE queue = c.queue AND state IN
('pending', 'failed') AND waiting_on = 0 AND state = 'pending' ORDER BY run_at LIMIT 1)) FROM
(SELECT DISTINCT queue FROM job_count WHERE state = 'pending' AND n > 0) c;

-- name: job_rows
-- These jobs (a list of seqs as one parameter).
SELECT seq, id, state, exit_code, last_error FROM job WHERE seq IN (SELECT value FROM
json_each(?));

-- name: jobs_token
-- The sum of job_count.v, which moves with every change of jobs, queues or the pause of every
-- queue and not with the workers' heartbeats (schema.sql): what the console and wait watch,
-- read when data_version moved. One small table read.
SELECT total(v) FROM job_count;

-- name: heartbeat
-- A worker's heartbeat (its row is gone when it was presumed lost: no row changes).
UPDATE worker SET heartbeat_at = ? WHERE id = ?;
