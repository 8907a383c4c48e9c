"""The per-job statements of the hot path, as fixed SQL, and how they are run (prepared
once per connection on PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from peewee import DatabaseError

from queuectl_tui.db import (
    is_sqlite,
)
from queuectl_tui.models import (
    CLAIMABLE_WHERE,
    database,
)
from queuectl_tui.pgsql import (
    OLDEST_DUE_QUEUES,
    OPEN_QUEUES,
)
from queuectl_tui.settings import VERSION_KEY

if TYPE_CHECKING:
    pass

# The claim, finish and process-record statements are the per-job hot path of every worker:
# on SQLite they are fixed SQL on the connection (the ORM built them inside the write lock,
# ~1.2 ms of CPU per job), and the claim names its partial index, which the planner would not
# pick on its own (a scan and sort of every pending row: 16 ms at 100k pending, 3.5 us here).
_JOB_COLUMNS = ("seq", "id", "command", "queue", "state", "priority", "attempts", "max_retries",
                "backoff_base", "timeout", "run_at", "created_at", "updated_at", "started_at",
                "cwd", "env_digest", "worker_id", "claim_token")
# The queues a worker may take from right now: those with waiting jobs (job_count, a few rows),
# not paused (a queue's own flag, else the "every queue" flag in meta), under their limit
# (their running jobs, also from job_count), and among the worker's queues (?2: a JSON list, or
# NULL for every queue). The claim and the idle sleep then probe each such queue's head in its
# own index: one step per queue, however many jobs a paused or full queue holds.
_OPEN_QUEUES = (
    "SELECT c.queue AS name FROM (SELECT DISTINCT queue FROM job_count "
    "WHERE state IN ('pending', 'failed') AND n > 0) c LEFT JOIN queue q ON q.name = c.queue "
    "WHERE NOT COALESCE(q.paused, (SELECT value = '1' FROM meta WHERE key = 'paused_all'), 0) "
    "AND (q.max_running IS NULL OR q.max_running > COALESCE((SELECT r.n FROM job_count r "
    "WHERE r.queue = c.queue AND r.state = 'processing'), 0)) "
    "AND (?2 IS NULL OR c.queue IN (SELECT value FROM json_each(?2)))")
# The claim and the idle look for work also return the settings' version (settings.py), read
# in the same statement: a worker reloads its settings when it changed, at no extra round trip.
_SETTINGS_VERSION = "(SELECT value FROM meta WHERE key = '" + VERSION_KEY + "')"
_CLAIM = ("UPDATE job SET state = 'processing', attempts = attempts + 1, worker_id = ?3, "
          "started_at = ?1, finished_at = NULL, updated_at = ?1, cancel_requested = 0, "
          "claim_token = ?4 WHERE seq = (SELECT seq FROM job WHERE seq IN (SELECT "
          "(SELECT seq FROM job INDEXED BY job_claim WHERE queue = o.name AND " + CLAIMABLE_WHERE
          + " AND run_at <= ?1 ORDER BY rank DESC, run_at, seq LIMIT 1) FROM (" + _OPEN_QUEUES
          + ") o) ORDER BY rank DESC, run_at, seq LIMIT 1) RETURNING " + ", ".join(_JOB_COLUMNS)
          + ", " + _SETTINGS_VERSION)
_NEXT_NUMBER = "SELECT COALESCE(MAX(number), 0) + 1 FROM attempt WHERE job_seq = ?"
_NEW_ATTEMPT = ("INSERT INTO attempt (job_seq, number, worker_id, host, started_at, log_file, "
                "claim_token, due_at, queue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq")
_FINISH_JOB = (
    "UPDATE job SET state = ?, run_at = COALESCE(?, run_at), attempts = attempts - ?, "
    "finished_at = ?, last_error = ?, exit_code = ?, output_tail = COALESCE(?, output_tail), "
    "updated_at = ?, started_at = ?, worker_id = NULL, cancel_requested = 0, claim_token = NULL "
    "WHERE seq = ? AND state = 'processing' AND claim_token IS ?"
)
_FINISH_ATTEMPT = ("UPDATE attempt SET finished_at = ?, exit_code = ?, outcome = ?, error = ?, "
                   "started_at = ?, duration = ?, pid = COALESCE(pid, ?), "
                   "pid_started = COALESCE(pid_started, ?), cpu_seconds = ?, peak_rss_bytes = ?, "
                   "processes = ? WHERE seq = ? AND outcome IS NULL")
_SET_WORKER = ("UPDATE worker SET status = CASE WHEN status = 'stopping' THEN status "
               "WHEN CAST(? AS TEXT) IS NULL THEN 'idle' ELSE 'busy' END, current_job = ?, "
               "heartbeat_at = ? WHERE id = ?")


def dialect_sql(text: str) -> str:
    """The hot-path statements are written for SQLite; other drivers take %s parameters (and
    PostgreSQL a boolean for a boolean column)."""
    if is_sqlite():
        return text
    return (text.replace(" IS ?", " IS NOT DISTINCT FROM ?").replace("?", "%s")
            .replace("cancel_requested = 0", "cancel_requested = false"))


def hot(text: str, params: Sequence | dict = ()):
    """Run one of the per-job statements (written for SQLite, see ``dialect_sql``). On
    PostgreSQL each is prepared once per connection and EXECUTEd after that: the server planned
    the claim anew each time, which cost as much as running it (0.3-0.4 ms). A statement the
    server cannot prepare runs as it is."""
    if is_sqlite():
        return database.execute_sql(text, params)
    sql = dialect_sql(text)
    connection = database.connection()
    known = _prepared.setdefault(connection, {})
    if sql not in known:
        known[sql] = _prepare(sql, len(known))
    found = known[sql]
    if found is None:
        return database.execute_sql(sql, params)
    name, keys = found
    values = [params[key] for key in keys] if keys else list(params)
    return database.execute_sql(_EXECUTE[len(values)].replace("NAME", name), values)


def _prepare(sql: str, number: int) -> tuple[str, list[str]] | None:
    """PREPARE ``sql`` as queuectl_hot_N: its %s or %(key)s markers become $1, $2...; returns
    the name and the keys in order (empty for positional markers), or None if refused. A
    prepared statement outlives the transaction it was made in, even a rolled-back one; a
    refusal is undone by a savepoint so that it never aborts the caller's transaction."""
    keys: list[str] = []
    positions = 0

    def marker(match: re.Match) -> str:
        nonlocal positions
        key = match.group(1)
        if key is None:
            positions += 1
            return f"${positions}"
        if key not in keys:
            keys.append(key)
        return f"${keys.index(key) + 1}"

    body = re.sub(r"%(?:\((\w+)\))?s", marker, sql)
    name = f"queuectl_hot_{number}"
    inside = database.in_transaction()
    try:
        if inside:
            database.execute_sql("SAVEPOINT queuectl_prepare")
        database.execute_sql(_PREPARE.replace("NAME", name) + body)
        if inside:
            database.execute_sql("RELEASE SAVEPOINT queuectl_prepare")
    except DatabaseError:
        if inside:
            database.execute_sql("ROLLBACK TO SAVEPOINT queuectl_prepare")
        return None
    return name, keys


_prepared: WeakKeyDictionary = WeakKeyDictionary()  # connection -> {statement: (name, keys)}
_PREPARE = "PREPARE NAME AS "
_EXECUTE = ["EXECUTE NAME"] + ["EXECUTE NAME (" + ", ".join(["%s"] * n) + ")"
                               for n in range(1, 20)]


# PostgreSQL's claim (pgsql.py): claimers run side by side; the head of each open queue is
# locked with SKIP LOCKED, so that a row another claimer holds is passed over rather than
# waited for; a limited queue is open only to the claimer holding its lock.
_PG_NEXT_DUE = ("SELECT MIN((SELECT run_at FROM job WHERE queue = o.name AND " + CLAIMABLE_WHERE
                + " ORDER BY run_at LIMIT 1)), " + _SETTINGS_VERSION + " FROM ("
                + OPEN_QUEUES + ") o")


# Per queue with pending jobs, the first pending entry of its job_due index (PostgreSQL has no
# INDEXED BY: its planner takes job_due, whose condition the query repeats).
_OLDEST_DUE_TAIL = (" WHERE queue = c.queue AND " + CLAIMABLE_WHERE + " AND state = 'pending' "
                    "ORDER BY run_at LIMIT 1)) FROM ")
_OLDEST_DUE = ("SELECT MIN((SELECT run_at FROM job INDEXED BY job_due" + _OLDEST_DUE_TAIL
               + "(SELECT DISTINCT queue FROM job_count WHERE state = 'pending' AND n > 0) c")
_OLDEST_DUE_PG = ("SELECT MIN((SELECT run_at FROM job" + _OLDEST_DUE_TAIL + "("
                  + OLDEST_DUE_QUEUES + ") c")


_NEXT_DUE = (
    "SELECT MIN((SELECT run_at FROM job INDEXED BY job_due WHERE queue = o.name AND "
    + CLAIMABLE_WHERE
    + " ORDER BY run_at LIMIT 1)), " + _SETTINGS_VERSION + " FROM ("
    + _OPEN_QUEUES
    + ") o"
)  # ?1 unused
