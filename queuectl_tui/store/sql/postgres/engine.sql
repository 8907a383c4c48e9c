-- PostgreSQL's forms of the engine's statements that differ from SQLite's (loaded by
-- store/sql/__init__.py). A claim token compares with IS NOT DISTINCT FROM: NULL-safe, as
-- SQLite's IS.

-- name: cancel_asked
-- Whether cancelling was asked of a held job, fenced on its claim token (no row: taken back).
SELECT cancel_requested FROM job WHERE seq = %s AND claim_token IS NOT DISTINCT FROM %s;

-- name: hand_back_job
-- A held job that never started goes back as it was before its claim: its charge undone and its
-- times those of its last real run; fenced on its claim token.
UPDATE job SET state = %s, attempts = attempts - 1, worker_id = NULL, claim_token = NULL,
  updated_at = %s,
  started_at = (SELECT MAX(started_at) FROM attempt WHERE job_seq = %s AND seq <> %s),
  finished_at = (SELECT MAX(finished_at) FROM attempt WHERE job_seq = %s AND seq <> %s)
WHERE seq = %s AND state = 'processing' AND claim_token IS NOT DISTINCT FROM %s;

-- name: record_process
-- The job's shell on its attempt, for recovery to find and kill its tree; fenced on the claim
-- (no row: the runner never starts the command).
UPDATE attempt SET pid = %s, pid_started = %s
WHERE seq = %s AND outcome IS NULL
  AND job_seq IN (SELECT seq FROM job WHERE seq = %s AND state = 'processing'
                  AND claim_token IS NOT DISTINCT FROM %s);
