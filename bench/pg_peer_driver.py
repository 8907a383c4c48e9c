"""pgqueuer and procrastinate, driven the way their docs show, for bench/run.py's postgres group.

Runs inside the private venv bench/run.py makes (bench/out/peers/pgvenv: pgqueuer 1.6 on
asyncpg, procrastinate 3.10 on psycopg 3), never with queuectl on the path. bench/run.py does
the timing, the counting and the server's CPU; this file only sets up, enqueues and works.

Two tasks per peer: ``shell`` runs ``subprocess.run("true", shell=True)`` (procrastinate: a
sync task, which it runs in a thread; pgqueuer takes async entrypoints only, so
``asyncio.to_thread`` as its docs say), ``noop`` is an async task that does nothing.

  python pg_peer_driver.py install PEER --dsn URL
      installs the peer's schema in the (empty) database
  python pg_peer_driver.py enqueue PEER --dsn URL --jobs N --task shell|noop
      enqueues N jobs in one call (pgqueuer: ``Queries.enqueue`` of lists; procrastinate:
      ``batch_defer_async``); prints {"call_s": seconds of that call}
  python pg_peer_driver.py worker PEER --dsn URL
      one worker process that runs jobs until the queue is empty, then exits. procrastinate:
      ``run_worker_async(concurrency=1, wait=False)`` (the CLI's ``--one-shot``). pgqueuer:
      ``pgqueuer.run(…, mode=drain)`` with its defaults (a batch of 10 per dequeue, run at once;
      ends written back in batches) on one asyncpg connection, as its quick start has it. Its
      own ``pgq run`` of 1.6.0 fails at start-up (typer hands ``--log-level`` over as a string),
      and this is what that command does, through its supervisor API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import time
from contextlib import asynccontextmanager


def run_true() -> None:
    subprocess.run("true", shell=True)


# --- pgqueuer --------------------------------------------------------------------------------


async def pgqueuer_prepare(dsn: str, jobs: int, task: str) -> float:
    """Install the schema (``jobs`` = 0) or enqueue ``jobs``; seconds of that call."""
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        start = time.perf_counter()
        if jobs:
            await queries.enqueue([task] * jobs, [None] * jobs, [0] * jobs)
        else:
            await queries.install()
        return time.perf_counter() - start
    finally:
        await conn.close()


def pgqueuer_worker(dsn: str) -> None:
    import asyncpg
    import pgqueuer
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    @asynccontextmanager
    async def factory():
        conn = await asyncpg.connect(dsn)
        pgq = pgqueuer.PgQueuer(AsyncpgDriver(conn))

        @pgq.entrypoint("shell")
        async def shell(job: Job) -> None:
            await asyncio.to_thread(run_true)

        @pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            pass

        try:
            yield pgq
        finally:
            await conn.close()

    asyncio.run(pgqueuer.run(factory, mode=QueueExecutionMode.drain))


# --- procrastinate ---------------------------------------------------------------------------


def procrastinate_app(dsn: str):
    import procrastinate

    # Its warning that the app lives in the main module (a worker importing tasks by path
    # would not find it) does not apply: tasks are registered here, by name, on both sides.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="shell")
    def shell() -> None:
        run_true()

    @app.task(name="noop")
    async def noop() -> None:
        pass

    return app, {"shell": shell, "noop": noop}


async def procrastinate_prepare(dsn: str, jobs: int, task: str) -> float:
    """Install the schema (``jobs`` = 0) or enqueue ``jobs``; seconds of that call."""
    app, tasks = procrastinate_app(dsn)
    async with app.open_async():
        start = time.perf_counter()
        if jobs:
            await tasks[task].batch_defer_async(*({} for _ in range(jobs)))
        else:
            await app.schema_manager.apply_schema_async()
        return time.perf_counter() - start


def procrastinate_worker(dsn: str) -> None:
    app, _ = procrastinate_app(dsn)

    async def work() -> None:
        async with app.open_async():
            await app.run_worker_async(concurrency=1, wait=False, install_signal_handlers=False)

    asyncio.run(work())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["install", "enqueue", "worker"])
    parser.add_argument("peer", choices=["pgqueuer", "procrastinate"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--task", choices=["shell", "noop"], default="shell")
    args = parser.parse_args()
    if args.action in ("install", "enqueue"):
        if args.action == "enqueue" and args.jobs < 1:
            parser.error("enqueue needs --jobs N (N >= 1)")
        prepare = pgqueuer_prepare if args.peer == "pgqueuer" else procrastinate_prepare
        jobs = args.jobs if args.action == "enqueue" else 0
        print(json.dumps({"call_s": asyncio.run(prepare(args.dsn, jobs, args.task))}))
    else:
        (pgqueuer_worker if args.peer == "pgqueuer" else procrastinate_worker)(args.dsn)


if __name__ == "__main__":
    main()
