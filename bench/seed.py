"""Seed a big queue fast: plain SQL through the project's own schema (no ORM objects).

``open_db`` creates the tables and indexes; one recursive-CTE INSERT per table then writes the
rows inside SQLite, about 20x faster than ``demo.seed_bulk`` for a million jobs. States by
``seq % 10``: 0-1 pending (20%), 2-7 completed (60%), 8 dead (10%), 9 failed waiting out a
backoff (10%); one attempt per finished job, which waited 0 to 1.5 s after it was due.
Commands are ``echo item N`` like the demo's. Queue ``default``, or ``--queues N`` of them.

Run: python bench/seed.py DB [--jobs 1000000] [--queues 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from queuectl_tui.store import close_db, open_db

_JOBS = """
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < :count)
INSERT INTO job (seq, id, command, queue, state, priority, attempts, max_retries, backoff_base,
                 timeout, run_at, created_at, updated_at, started_at, finished_at, last_error,
                 exit_code, output_tail, cwd, env_digest, worker_id, cancel_requested)
SELECT n, printf('bulk-%07d', n), printf('echo item %d', n),
       CASE WHEN :queues = 1 THEN 'default' ELSE 'q' || (n / 7 % :queues) END,
       CASE WHEN n % 10 < 2 THEN 'pending' WHEN n % 10 < 8 THEN 'completed'
            WHEN n % 10 = 8 THEN 'dead' ELSE 'failed' END,
       0, CASE WHEN n % 10 < 2 THEN 0 ELSE 1 END, 3, 2.0, NULL,
       CASE WHEN n % 10 = 9 THEN :now + 3600 ELSE :start + n * :step END,
       :start + n * :step - 1, :start + n * :step,
       CASE WHEN n % 10 < 2 THEN NULL ELSE :start + n * :step END,
       CASE WHEN n % 10 < 2 THEN NULL ELSE :start + n * :step + 0.5 END,
       CASE WHEN n % 10 = 8 THEN 'exit code 2' WHEN n % 10 = 9 THEN 'exit code 1' END,
       CASE WHEN n % 10 < 2 THEN NULL WHEN n % 10 < 8 THEN 0 WHEN n % 10 = 8 THEN 2 ELSE 1 END,
       CASE WHEN n % 10 < 2 THEN NULL ELSE printf('item %d' || char(10), n) END,
       '/tmp', NULL, NULL, 0
FROM c
"""

_ATTEMPTS = """
INSERT INTO attempt (job_seq, number, worker_id, host, started_at, finished_at, exit_code,
                     duration, outcome, error, log_file, due_at, queue)
SELECT seq, 1, 1, 'bench', started_at, finished_at, exit_code, 0.5,
       CASE WHEN state = 'completed' THEN 'completed' ELSE 'failed' END, last_error, NULL,
       started_at - (seq % 7) * 0.25, queue
FROM job WHERE state != 'pending'
"""


def seed(db_path: Path, count: int, now: float | None = None, queues: int = 1) -> float:
    """Create ``db_path`` with ``count`` jobs; return the seconds it took."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    db = open_db(db_path)
    start = now - 7200
    with db.atomic():
        db.execute_sql(
            _JOBS.replace(":count", str(int(count)))
            .replace(":now", repr(now))
            .replace(":start", repr(start))
            .replace(":queues", str(int(queues)))
            .replace(":step", repr(7000.0 / max(count, 1)))
        )
        db.execute_sql(_ATTEMPTS)
    db.execute_sql("ANALYZE")
    close_db()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("db", type=Path)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--queues", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.jobs:,} jobs seeded in {seed(args.db, args.jobs, queues=args.queues):.1f} s")


if __name__ == "__main__":
    main()
