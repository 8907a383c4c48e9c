-- PostgreSQL's statements of the bulk enqueue (engine/enqueueing.py's enqueue_stream), by name
-- (loaded by store/sql/__init__.py). The input is first checked and written, in COPY's text
-- form, to a spool of this process (no lock, no server work); then one COPY moves it into
-- job under the write lock. Only when that fails (an id taken or repeated), or when some line
-- names jobs to wait for, is the spool loaded into a stage, a TEMP table of this session
-- (pg_temp), whose serial rowid keeps the input's order, and checked there.

-- name: copy_job
-- The spool's lines straight into job, in order (its serial seq follows the input). COPY's
-- text form: 100,000 rows of execute_values' 1,000-row INSERTs cost the client as much
-- Python as the whole parse, and the server a parse per page.
COPY job (id, command, queue, priority, max_retries, backoff_base, timeout, run_at, rank,
label, state, attempts, created_at, updated_at, cwd, env_digest, cancel_requested) FROM STDIN;

-- name: stage_drop
-- The stage of this session, if an earlier enqueue left it.
DROP TABLE IF EXISTS pg_temp.enqueue_stage;

-- name: stage_create
-- The stage: the spool's columns (the job's, then where the line was, whether its id was
-- drawn here, its after as JSON) after a serial rowid.
CREATE TEMP TABLE enqueue_stage (rowid BIGSERIAL, id TEXT NOT NULL, command TEXT NOT NULL,
queue TEXT NOT NULL, priority INTEGER NOT NULL, max_retries INTEGER NOT NULL, backoff_base
DOUBLE PRECISION NOT NULL, timeout DOUBLE PRECISION, run_at DOUBLE PRECISION NOT NULL, rank
DOUBLE PRECISION NOT NULL, label TEXT, src TEXT NOT NULL, generated BOOLEAN NOT NULL, after
TEXT);

-- name: stage_copy
-- The spool into the stage.
COPY pg_temp.enqueue_stage (id, command, queue, priority, max_retries, backoff_base, timeout,
run_at, rank, label, src, generated, after) FROM STDIN;

-- name: stage_any_index
-- After a repeat: an index that allows it, to find and draw again the repeats.
CREATE INDEX enqueue_stage_any_id ON pg_temp.enqueue_stage (id);

-- name: stage_any_index_drop
-- That index, once no id repeats.
DROP INDEX pg_temp.enqueue_stage_any_id;

-- name: redraw_repeated
-- Generated ids that repeat one another drawn again (the shape of engine.common._new_id:
-- 12 hex digits), until none does.
UPDATE pg_temp.enqueue_stage SET id = substr(md5(random()::text || clock_timestamp()::text), 1,
12) WHERE generated AND id IN (SELECT id FROM pg_temp.enqueue_stage GROUP BY id HAVING
count(*) > 1);

-- name: first_repeat
-- The first line whose id an earlier line has: (its place, the id, the earlier line's place).
SELECT s.src, s.id, f.src FROM (SELECT src, id, rowid, min(rowid) OVER (PARTITION BY id) AS
first FROM pg_temp.enqueue_stage) s JOIN pg_temp.enqueue_stage f ON f.rowid = s.first WHERE
s.rowid > s.first ORDER BY s.rowid LIMIT 1;

-- name: stage_index
-- The stage's ids, each once: the index is the check (it fails on a repeat).
CREATE UNIQUE INDEX enqueue_stage_id ON pg_temp.enqueue_stage (id);

-- name: move
-- The stage into job, in input order, its rank at the aging rate of this transaction.
INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, backoff_base,
timeout, run_at, created_at, updated_at, cwd, env_digest, cancel_requested, rank, label) SELECT
id, command, queue, %(state)s, priority, 0, max_retries, backoff_base, timeout, run_at,
%(now)s, %(now)s, %(cwd)s, %(digest)s, false, priority - %(rate)s * run_at / 60.0, label FROM
pg_temp.enqueue_stage ORDER BY rowid;

-- name: first_taken
-- The first line that gives an id a stored job has: (its place, the id).
SELECT s.src, s.id FROM pg_temp.enqueue_stage s JOIN job j ON j.id = s.id WHERE NOT
s.generated ORDER BY s.rowid LIMIT 1;

-- name: taken_generated
-- How many generated ids a stored job has.
SELECT count(*) FROM pg_temp.enqueue_stage WHERE generated AND id IN (SELECT id FROM job);

-- name: redraw_taken
-- Generated ids that a stored job has, drawn again.
UPDATE pg_temp.enqueue_stage SET id = substr(md5(random()::text || clock_timestamp()::text), 1,
12) WHERE generated AND id IN (SELECT id FROM job);

-- name: unknown_dependency
-- The first line whose after names a job neither stored before this input nor on an earlier
-- line: (its place, that id).
SELECT s.src, a.value FROM pg_temp.enqueue_stage s, json_array_elements_text(s.after::json)
a(value) WHERE s.after IS NOT NULL AND NOT EXISTS (SELECT 1 FROM job d WHERE d.id = a.value AND
NOT EXISTS (SELECT 1 FROM pg_temp.enqueue_stage l WHERE l.id = d.id AND l.rowid >= s.rowid))
ORDER BY s.rowid LIMIT 1;

-- name: add_dependencies
-- The dependency rows of the staged lines that name jobs to wait for.
INSERT INTO job_dep (job_seq, dep_seq, dep_id) SELECT j.seq, d.seq, d.id FROM
pg_temp.enqueue_stage s JOIN job j ON j.id = s.id CROSS JOIN
json_array_elements_text(s.after::json) a(value) JOIN job d ON d.id = a.value WHERE s.after IS
NOT NULL ORDER BY s.rowid;

-- name: chained_seqs
-- The jobs of the staged lines that wait for others, in input order.
SELECT j.seq FROM pg_temp.enqueue_stage s JOIN job j ON j.id = s.id WHERE s.after IS NOT NULL
ORDER BY s.rowid;

-- name: staged_ids
-- The staged ids in input order.
SELECT id FROM pg_temp.enqueue_stage ORDER BY rowid;

-- name: staged_jobs
-- The staged jobs in input order.
SELECT job.* FROM pg_temp.enqueue_stage s JOIN job ON job.id = s.id ORDER BY s.rowid;

-- name: staged_dead
-- (id, error) of the staged jobs that went straight to the DLQ: a dependency was dead.
SELECT j.id, j.last_error FROM pg_temp.enqueue_stage s JOIN job j ON j.id = s.id WHERE s.after
IS NOT NULL AND j.state = 'dead' ORDER BY s.rowid;

-- name: analyze_job
-- After a large enqueue: the server's statistics of a table that just grew this much are
-- stale until autovacuum's next pass, and with them a claim could pick a partial index over
-- the primary key and read every waiting job (5 ms a claim at 200,000 waiting, 0.2 ms once
-- analysed). A table this queue does not own is skipped with a warning. The columns a claim
-- reads (the row count is renewed whatever the columns): 0.35 s instead of 0.75 for 100,000
-- jobs; autovacuum's pass analyses the rest.
ANALYZE job (queue, state, waiting_on, run_at, rank, seq, priority);

-- name: environment_and_settings
-- One enqueue's environment, unless a job already stored it, and the stored settings, in one
-- round trip under the write lock: one round trip less before the commit whose NOTIFY wakes
-- an idle worker (engine.enqueue).
WITH added AS (INSERT INTO environment (digest, data) VALUES (%(digest)s, %(data)s) ON CONFLICT
DO NOTHING) SELECT key, value FROM setting;
