-- Retention's statements, written once for both backends (loaded by store/sql/__init__.py:
-- psycopg2's markers, made SQLite's at load). Fixed SQL: built by the ORM they cost ~20 ms of
-- CPU per 25 jobs, most of it inside the write lock (bench: retention). A list of jobs is 50
-- markers (retention.CHUNK), padded with values no row has, so that the text stays one; a job's
-- age counts from its end, or its enqueue; a job others still wait on is kept.

-- name: prune_find
-- Up to %s jobs of a state due to go, a read without the lock: among the state's first %s jobs
-- past a seq (a bounded read however many are kept), those older than its cutoff.
SELECT seq FROM job
WHERE seq IN (SELECT seq FROM job WHERE state = %s AND seq > %s ORDER BY seq LIMIT %s)
  AND state = %s AND COALESCE(finished_at, created_at) < %s
  AND NOT EXISTS (SELECT 1 FROM job_dep d JOIN job w ON w.seq = d.job_seq
                  WHERE d.dep_seq = job.seq AND w.state NOT IN ('completed', 'dead'))
ORDER BY seq LIMIT %s;

-- name: prune_lease
-- Who prunes now: 'HOLDER UNTIL' (meta key retention.LEASE_KEY).
SELECT value FROM meta WHERE key = 'pruner';

-- name: prune_take_lease
-- Take or renew the pruning lease, in the step's own write transaction (an idle look writes
-- nothing).
INSERT INTO meta (key, value) VALUES ('pruner', %s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: prune_mark
-- The marker (meta key store.PRUNING) under which the rollups' delete triggers keep what this
-- transaction deletes: past windows' counts do not change.
INSERT INTO meta (key, value) VALUES ('pruning', '1') ON CONFLICT (key) DO NOTHING;

-- name: prune_unmark
-- The marker off, before the step's transaction commits.
DELETE FROM meta WHERE key = 'pruning';

-- name: prune_select
-- Those of a list of jobs still due to go, checked again under the lock: up to four (state,
-- cutoff) pairs, padded with ('', -1).
SELECT seq, env_digest, state FROM job
WHERE seq IN (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
  AND ((state = %s AND COALESCE(finished_at, created_at) < %s)
    OR (state = %s AND COALESCE(finished_at, created_at) < %s)
    OR (state = %s AND COALESCE(finished_at, created_at) < %s)
    OR (state = %s AND COALESCE(finished_at, created_at) < %s))
  AND NOT EXISTS (SELECT 1 FROM job_dep d JOIN job w ON w.seq = d.job_seq
                  WHERE d.dep_seq = job.seq AND w.state NOT IN ('completed', 'dead'));

-- name: prune_drop_met
-- The dependency rows on the completed jobs going: their dependents have what they waited for.
DELETE FROM job_dep WHERE dep_seq IN (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: prune_log_files
-- The log files of the jobs going (unlinked after the commit).
SELECT log_file FROM attempt WHERE job_seq IN (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: prune_drop_attempts
-- The attempts of the jobs going.
DELETE FROM attempt WHERE job_seq IN (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: prune_drop_deps
-- The dependency rows of the jobs going.
DELETE FROM job_dep WHERE job_seq IN (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: prune_drop_jobs
-- The jobs going.
DELETE FROM job WHERE seq IN (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: prune_drop_environments
-- An environment holds the enqueuer's variables, secrets included: it goes with the last job
-- that refers to it (only those of this step's jobs are looked at).
DELETE FROM environment WHERE digest IN (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
  AND NOT EXISTS (SELECT 1 FROM job WHERE job.env_digest = environment.digest);

-- name: prune_count_due
-- How many jobs `clear --older-than` would look at (its progress bar): up to four (state,
-- cutoff) pairs.
SELECT count(*) FROM job
WHERE ((state = %s AND COALESCE(finished_at, created_at) < %s)
    OR (state = %s AND COALESCE(finished_at, created_at) < %s)
    OR (state = %s AND COALESCE(finished_at, created_at) < %s)
    OR (state = %s AND COALESCE(finished_at, created_at) < %s));
