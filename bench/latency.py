"""Enqueue-to-start latency of an idle worker (the bar: median under 50 ms).

Starts one detached worker on a throwaway database, lets it go idle, then enqueues jobs one at a
time, each writing the moment its shell started; latency = that moment minus the enqueue's
commit. With --pg URL (or QUEUECTL_BENCH_PG) the database is a fresh schema of that PostgreSQL
database, where the idle worker is woken by LISTEN/NOTIFY.
Run: python bench/latency.py [--jobs 100] [--json] [--pg postgresql://user:password@host/db]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pgschema  # bench/, beside this script

from queuectl_tui import engine, spec
from queuectl_tui.run import supervisor
from queuectl_tui.store import close_db, open_db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument(
        "--idle", type=float, default=0.3, help="seconds of idleness before each job"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--pg",
        default=os.environ.get("QUEUECTL_BENCH_PG"),
        help="a PostgreSQL URL: the queue in a fresh schema of it",
    )
    args = parser.parse_args()
    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "queuectl.db"
        if args.pg:
            os.environ["QUEUECTL_HOME"] = tmp  # this host's logs, the worker's too
            schema, db_path = pgschema.fresh(args.pg, "bench_latency")
        open_db(db_path)
        worker = supervisor.start(db_path, 1)[0]
        out = Path(tmp) / "starts"
        out.mkdir()
        latencies, claims, calls = [], [], []
        try:
            for n in range(args.jobs):
                time.sleep(args.idle)  # let the worker fall idle: we measure the wake-up path
                stamp = out / f"{n}"
                t0 = time.time()
                job = engine.enqueue(
                    [spec.normalize({"command": f"date +%s.%N > {stamp}"})], now=t0
                )[0]
                calls.append(
                    time.time() - t0
                )  # the enqueuer's own transaction, its commit included
                deadline = time.monotonic() + 10
                while not (stamp.exists() and stamp.stat().st_size) and time.monotonic() < deadline:
                    time.sleep(0.001)
                latencies.append(float(stamp.read_text()) - t0)
                claims.append(engine.attempts_of(job)[0].started_at - t0)
        finally:
            supervisor.stop(wait=5)
            if schema:
                close_db()
                pgschema.drop(args.pg, schema)
    ms = sorted(x * 1000 for x in latencies)
    result = {
        "jobs": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[max(0, int(len(ms) * 0.9) - 1)], 2),
        "p99_ms": round(ms[max(0, int(len(ms) * 0.99) - 1)], 2),
        "max_ms": round(ms[-1], 2),
        "claim_median_ms": round(statistics.median(claims) * 1000, 2),
        "enqueue_call_median_ms": round(statistics.median(calls) * 1000, 2),
        "python": sys.version.split()[0],
        "worker_pid": worker.pid,
        "backend": "postgresql" if args.pg else "sqlite",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"enqueue -> job shell started, {result['jobs']} jobs: median {result['median_ms']} ms, "
            f"p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
            f"(enqueue -> claimed: median {result['claim_median_ms']} ms; the enqueue call itself, "
            f"its commit included: median {result['enqueue_call_median_ms']} ms)"
        )


if __name__ == "__main__":
    main()
