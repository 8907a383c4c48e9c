-- SQLite's forms of the engine's statements that differ from PostgreSQL's (loaded by
-- store/sql/__init__.py). A claim token compares with IS: NULL-safe, as PostgreSQL's IS NOT
-- DISTINCT FROM.

-- name: cancel_asked
-- Whether cancelling was asked of a held job, fenced on its claim token (no row: taken back).
SELECT cancel_requested FROM job WHERE seq = ? AND claim_token IS ?;

-- name: hand_back_job
-- A held job that never started goes back as it was before its claim: its charge undone and its
-- times those of its last real run; fenced on its claim token.
UPDATE job SET state = ?, attempts = attempts - 1, worker_id = NULL, claim_token = NULL,
  updated_at = ?,
  started_at = (SELECT MAX(started_at) FROM attempt WHERE job_seq = ? AND seq <> ?),
  finished_at = (SELECT MAX(finished_at) FROM attempt WHERE job_seq = ? AND seq <> ?)
WHERE seq = ? AND state = 'processing' AND claim_token IS ?;

-- name: record_process
-- The job's shell on its attempt, for recovery to find and kill its tree; fenced on the claim
-- (no row: the runner never starts the command).
UPDATE attempt SET pid = ?, pid_started = ?
WHERE seq = ? AND outcome IS NULL
  AND job_seq IN (SELECT seq FROM job WHERE seq = ? AND state = 'processing'
                  AND claim_token IS ?);
