"""The named statements, per backend (``store/sql``: ``dialect().queries``), those of the bulk
enqueue (``sql/<backend>/enqueue.sql``: ``dialect().bulk``), and the columns a claim returns."""

from __future__ import annotations

from queuectl_tui.store.sql import load

#: What a claim returns of each job, in this order (then the settings' version).
JOB_COLUMNS = (
    "seq",
    "id",
    "command",
    "queue",
    "state",
    "priority",
    "attempts",
    "max_retries",
    "backoff_base",
    "timeout",
    "run_at",
    "created_at",
    "updated_at",
    "started_at",
    "cwd",
    "env_digest",
    "worker_id",
    "claim_token",
)
#: meta key of the settings' version, which the claim and next_due return: settings.VERSION_KEY
#: (the store does not import settings; tests/engine/test_store.py holds the two equal).
VERSION_KEY = "settings_version"

SQLITE_QUERIES = load("sqlite")
POSTGRES_QUERIES = load("postgres")
#: The bulk enqueue's statements (``sql/<backend>/enqueue.sql``: ``dialect().bulk``).
SQLITE_BULK = load("sqlite", "enqueue")
POSTGRES_BULK = load("postgres", "enqueue")
#: Statements one backend has and the other does not: SQLite claims one job per statement
#: and counts changes in job_count.v (PostgreSQL notifies them); PostgreSQL ends and claims
#: batches in one call of a server function (``cycle``).
OWN = {"sqlite": frozenset({"claim", "jobs_token"}), "postgres": frozenset({"cycle"})}
