-- SQLite's statements of the bulk enqueue (engine/enqueueing.py's enqueue_stream), by name
-- (loaded by store/sql/__init__.py). Rows are staged in temp.enqueue_stage, a TEMP table of
-- this connection (no lock on the main database; it lives in a temporary file, so memory does
-- not grow with the input), checked there, then moved into job by one INSERT ... SELECT in a
-- short IMMEDIATE transaction. A generated id is lower(hex(randomblob(6))), the shape of
-- engine.common._new_id.

-- name: stage_drop
-- The stage of this connection, if an earlier enqueue left it.
DROP TABLE IF EXISTS temp.enqueue_stage;

-- name: stage_create
-- The stage: the job's columns, where the line was (src), whether its id was drawn here and
-- its after as JSON; its rowid keeps the input's order.
CREATE TEMP TABLE enqueue_stage (id TEXT NOT NULL, generated INTEGER NOT NULL, command TEXT NOT
NULL, queue TEXT NOT NULL, priority INTEGER NOT NULL, max_retries INTEGER NOT NULL,
backoff_base REAL NOT NULL, timeout REAL, run_at REAL NOT NULL, src TEXT NOT NULL, after TEXT,
label TEXT);

-- name: stage_insert
-- One line into the stage (executemany over pages of lines); ?1 NULL: an id drawn here.
INSERT INTO temp.enqueue_stage VALUES (coalesce(?1, lower(hex(randomblob(6)))), ?1 IS NULL, ?2,
?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11);

-- name: stage_index
-- The stage's ids, each once: the index is the check (it fails on a repeat).
CREATE UNIQUE INDEX temp.enqueue_stage_id ON enqueue_stage (id);

-- name: stage_any_index
-- After a repeat: an index that allows it, to find and draw again the repeats.
CREATE INDEX temp.enqueue_stage_any_id ON enqueue_stage (id);

-- name: stage_any_index_drop
-- That index, once no id repeats.
DROP INDEX temp.enqueue_stage_any_id;

-- name: redraw_repeated
-- Generated ids that repeat one another drawn again, until none does.
UPDATE temp.enqueue_stage SET id = lower(hex(randomblob(6))) WHERE generated AND id IN (SELECT
id FROM temp.enqueue_stage GROUP BY id HAVING count(*) > 1);

-- name: first_repeat
-- The first line whose id an earlier line has: (its place, the id, the earlier line's place).
SELECT s.src, s.id, (SELECT f.src FROM temp.enqueue_stage f WHERE f.id = s.id ORDER BY f.rowid
LIMIT 1) FROM temp.enqueue_stage s WHERE s.rowid > (SELECT min(f.rowid) FROM temp.enqueue_stage
f WHERE f.id = s.id) ORDER BY s.rowid LIMIT 1;

-- name: move
-- The stage into job, in input order, its rank at the aging rate of this transaction.
INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, backoff_base,
timeout, run_at, created_at, updated_at, cwd, env_digest, cancel_requested, rank, label) SELECT
id, command, queue, :state, priority, 0, max_retries, backoff_base, timeout, run_at, :now, :now,
:cwd, :digest, 0, priority - :rate * run_at / 60.0, label FROM temp.enqueue_stage ORDER BY
rowid;

-- name: first_taken
-- The first line that gives an id a stored job has: (its place, the id).
SELECT s.src, s.id FROM temp.enqueue_stage s JOIN main.job j ON j.id = s.id WHERE NOT
s.generated ORDER BY s.rowid LIMIT 1;

-- name: taken_generated
-- How many generated ids a stored job has.
SELECT count(*) FROM temp.enqueue_stage WHERE generated AND id IN (SELECT id FROM main.job);

-- name: redraw_taken
-- Generated ids that a stored job has, drawn again (OR IGNORE: a draw that repeats another
-- staged id keeps the old one, drawn again on the next round).
UPDATE OR IGNORE temp.enqueue_stage SET id = lower(hex(randomblob(6))) WHERE generated AND id
IN (SELECT id FROM main.job);

-- name: unknown_dependency
-- The first line whose after names a job neither stored before this input nor on an earlier
-- line: (its place, that id).
SELECT s.src, a.value FROM temp.enqueue_stage s, json_each(s.after) a WHERE s.after IS NOT NULL
AND NOT EXISTS (SELECT 1 FROM main.job d WHERE d.id = a.value AND NOT EXISTS (SELECT 1 FROM
temp.enqueue_stage l WHERE l.id = d.id AND l.rowid >= s.rowid)) ORDER BY s.rowid LIMIT 1;

-- name: add_dependencies
-- The dependency rows of the staged lines that name jobs to wait for.
INSERT INTO job_dep (job_seq, dep_seq, dep_id) SELECT j.seq, d.seq, d.id FROM
temp.enqueue_stage s JOIN main.job j ON j.id = s.id, json_each(s.after) a JOIN main.job d ON
d.id = a.value WHERE s.after IS NOT NULL ORDER BY s.rowid;

-- name: chained_seqs
-- The jobs of the staged lines that wait for others, in input order.
SELECT j.seq FROM temp.enqueue_stage s JOIN main.job j ON j.id = s.id WHERE s.after IS NOT NULL
ORDER BY s.rowid;

-- name: staged_ids
-- The staged ids in input order.
SELECT id FROM temp.enqueue_stage ORDER BY rowid;

-- name: staged_jobs
-- The staged jobs in input order.
SELECT job.* FROM temp.enqueue_stage s JOIN job ON job.id = s.id ORDER BY s.rowid;

-- name: staged_dead
-- (id, error) of the staged jobs that went straight to the DLQ: a dependency was dead.
SELECT j.id, j.last_error FROM temp.enqueue_stage s JOIN job j ON j.id = s.id WHERE s.after IS
NOT NULL AND j.state = 'dead' ORDER BY s.rowid;

-- name: environment_insert
-- One enqueue's environment, unless a job already stored it (engine.enqueue).
INSERT OR IGNORE INTO environment (digest, data) VALUES (:digest, :data);

-- name: settings_rows
-- The stored settings, read under the enqueue's write lock.
SELECT key, value FROM setting;
