"""Bulk enqueue speed and memory: the real CLI, ``enqueue -f FILE`` of N JSON Lines.

Each run writes N lines (varied specs: ids, priorities, queues, delays, one in ten without an
id; with --simple just an id and a command) to a temporary directory, creates a fresh database,
then times ``python -m queuectl_tui enqueue -f`` (Python start-up included) and reads the
child's CPU time and peak RSS from wait4(); on a busy machine the CPU time is the steadier
figure. With --lock-probe a thread writes to the database every millisecond and reports the
longest any write waited: how long the enqueue kept other writers (worker heartbeats, claims)
out. With --pg URL (or QUEUECTL_BENCH_PG) each run gets a fresh schema of that PostgreSQL
database instead of an SQLite file.

Run: python bench/bulk_enqueue.py [--lines 100000] [--repeat 5] [--simple] [--lock-probe] [--json]
                                  [--pg postgresql://user:password@host:port/db]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pgschema  # bench/, beside this script


def write_jobs(path: Path, lines: int, simple: bool = False) -> None:
    queues = ("default", "emails", "reports")
    with path.open("w") as out:
        for n in range(lines):
            if simple:
                out.write(json.dumps({"id": f"job-{n}", "command": f"echo {n}"}) + "\n")
                continue
            job = {
                "command": f"echo job {n} >> /dev/null",
                "priority": n % 7,
                "queue": queues[n % 3],
            }
            if n % 10:  # one in ten gets a generated id
                job["id"] = f"bulk-{n}"
            if n % 5 == 0:
                job["delay"] = 3600
            out.write(json.dumps(job) + "\n")


class LockProbe(threading.Thread):
    """Writes an empty transaction every millisecond; remembers the longest wait for the lock."""

    def __init__(self, db: Path):
        super().__init__(daemon=True)
        self.db, self.longest, self.stop = db, 0.0, threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.db, timeout=60, isolation_level=None)
        while not self.stop.is_set():
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("COMMIT")
            self.longest = max(self.longest, time.perf_counter() - start)
            time.sleep(0.001)
        conn.close()


def one_run(tmp: Path, jobs: Path, run: int, probe: bool, pg: str | None = None) -> dict:
    home = tmp / f"home{run}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["QUEUECTL_HOME"] = str(home)
    if pg:
        schema, env["QUEUECTL_DB"] = pgschema.fresh(pg, f"bench_bulk_{run}")
    cmd = [sys.executable, "-m", "queuectl_tui"]
    subprocess.run(cmd + ["status"], env=env, check=True, capture_output=True)  # a fresh database
    prober = LockProbe(home / "queuectl.db") if probe and not pg else None
    if prober:
        prober.start()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd + ["enqueue", "-f", str(jobs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if prober:
        prober.stop.set()
        prober.join()
    if proc.returncode != 0:
        raise SystemExit(f"enqueue failed ({proc.returncode}): {err.strip()}")
    if pg:
        count = pgschema.count(pg, schema)
        pgschema.drop(pg, schema)
    else:
        count = (
            sqlite3.connect(home / "queuectl.db").execute("SELECT count(*) FROM job").fetchone()[0]
        )
    result = {
        "seconds": round(wall, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "jobs": count,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }
    if prober:
        result["longest_write_wait_s"] = round(prober.longest, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lock-probe", action="store_true", help="measure how long writers wait")
    parser.add_argument("--simple", action="store_true", help='lines of just {"id", "command"}')
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--pg",
        default=os.environ.get("QUEUECTL_BENCH_PG"),
        help="a PostgreSQL URL: each run in a fresh schema of it",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jobs = tmp / "jobs.jsonl"
        write_jobs(jobs, args.lines, args.simple)
        runs = [one_run(tmp, jobs, n, args.lock_probe, args.pg) for n in range(args.repeat)]
    assert all(r["jobs"] == args.lines for r in runs), runs
    median = statistics.median(r["seconds"] for r in runs)
    summary = {
        "lines": args.lines,
        "simple": args.simple,
        "runs": runs,
        "median_seconds": median,
        "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "jobs_per_second": round(args.lines / median),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }
    if args.lock_probe:
        summary["longest_write_wait_s"] = max(r["longest_write_wait_s"] for r in runs)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{args.lines:,} lines, {args.repeat} runs: median {median:.2f} s = "
            f"{summary['jobs_per_second']:,} jobs/s (CPU {summary['median_cpu_seconds']:.2f} s), peak RSS {summary['peak_rss_mb']} MB"
            + (
                f", longest write wait {summary['longest_write_wait_s']} s"
                if args.lock_probe
                else ""
            )
        )


if __name__ == "__main__":
    main()
