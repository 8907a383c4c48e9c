"""Load and chaos test: do jobs get lost or run twice when many processes hammer the queue?

Starts ``--workers`` worker processes on a throwaway database, then ``--producers`` processes
that enqueue ``--jobs-per-producer`` jobs each, one transaction per job, while the workers
drain. Every job appends its own id to one shared file (``echo ID >> runs.txt``), so the file
says how many times each job actually ran. With ``--chaos`` a killer loop SIGKILLs a random
worker every ``--kill-interval`` seconds (jittered ±50%; with ``--kill-every-jobs N`` also only
after N more jobs ended) and starts a replacement, for as long as producers are still enqueueing
or due work is waiting.

At the end it waits until no job is pending, failed (backing off) or processing, stops the
workers gracefully and checks, for every job:

* lost: a job the producers enqueued that is not in the database, or is neither completed nor
  in the DLQ with a "worker lost" attempt, or is completed but never ran;
* duplicated: ran more than once. Split by whether an attempt of the job was interrupted by a
  worker's death ("lost" attempt: at-least-once applies) or not (must be zero: exactly once);
* overrun: ran more times than it has attempts (would mean two runs of one attempt);
* stuck: still pending/failed/processing at the deadline;
* status: ``queuectl-tui status --json`` agrees with the rows, and the total is what was
  enqueued;
* leftovers: no job process (anything mentioning the run directory) survives the run.

Exit status 0 when every check passes. Run: python bench/stress.py [--chaos] [--json]
(full size: --producers 4 --jobs-per-producer 2000 --workers 4).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


#: With --db-url: the PostgreSQL database of the run, and where its workers keep their logs.
DB_URL: str | None = None
HOME: Path | None = None


def _python_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if DB_URL:
        env["QUEUECTL_DB"], env["QUEUECTL_HOME"] = DB_URL, str(HOME)
    return env


# --- producer mode (a child process) ---------------------------------------------------------


def produce(db: Path | str, prefix: str, count: int, runs: Path, seconds: float = 0.0) -> int:
    """Enqueue ``count`` jobs, one transaction each; print how many were accepted. A job takes
    ``seconds`` before it says it ran (else it is over in a millisecond, and a kill seldom
    finds a worker running one)."""
    from queuectl_tui import engine, spec
    from queuectl_tui.store import open_db

    open_db(db)
    target = shlex.quote(str(runs))
    wait = f"sleep {seconds:g}; " if seconds else ""
    done = 0
    for n in range(count):
        job_id = f"{prefix}-{n}"
        command = f"{wait}echo {job_id} >> {target}"
        engine.enqueue([spec.normalize({"id": job_id, "command": command})])
        done += 1
    print(done, flush=True)
    return 0


# --- the driver ------------------------------------------------------------------------------


class Fleet:
    """The worker processes; the killer replaces one at random under a lock."""

    def __init__(self, db: Path | str, count: int, log: Path):
        self.db, self.log = db, log
        self.lock = threading.Lock()
        self.procs: list[subprocess.Popen] = []
        self.killed = 0
        self.log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for _ in range(count):
            self.procs.append(self._spawn())

    def _spawn(self) -> subprocess.Popen:
        from queuectl_tui.run.supervisor import worker_command

        return subprocess.Popen(
            worker_command(self.db, None, False),
            stdin=subprocess.DEVNULL,
            stdout=self.log_fd,
            stderr=self.log_fd,
            start_new_session=True,
            env=_python_env(),
        )

    def kill_one(self, rng: random.Random) -> None:
        with self.lock:
            index = rng.randrange(len(self.procs))
            victim = self.procs[index]
            try:
                victim.send_signal(signal.SIGKILL)  # the worker only: its job shell lives on
            except ProcessLookupError:
                pass
            victim.wait()
            self.killed += 1
            self.procs[index] = self._spawn()

    def stop(self, timeout: float = 30.0) -> None:
        with self.lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for proc in self.procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        os.close(self.log_fd)


def leftovers(marker: str) -> list[str]:
    """Live processes (not zombies) whose command line mentions ``marker``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            if marker in cmd and proc.pid != os.getpid():
                found.append(f"{proc.pid}: {cmd[:120]}")
        except psutil.Error:
            pass
    return found


def drive(args: argparse.Namespace, workdir: Path) -> dict:
    from queuectl_tui import engine, settings
    from queuectl_tui.store import open_db
    from queuectl_tui.store.models import CLAIMABLE, COMPLETED, DEAD, PROCESSING, Attempt, Job

    global HOME
    HOME = workdir / "home"
    if DB_URL:
        os.environ["QUEUECTL_HOME"] = str(HOME)  # this process's logs directory too
    db = DB_URL or workdir / "queuectl.db"
    runs = workdir / "runs.txt"
    runs.touch()
    open_db(db)
    settings.set_value("backoff_base", args.backoff_base)
    settings.set_value("max_retries", args.max_retries)
    settings.set_value("heartbeat_interval", 0.5)
    expected = {f"p{k}-{n}" for k in range(args.producers) for n in range(args.jobs_per_producer)}

    started = time.monotonic()
    fleet = Fleet(db, args.workers, workdir / "workers.log")
    producers = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--produce",
                f"p{k}",
                "--db",
                str(db),
                "--jobs-per-producer",
                str(args.jobs_per_producer),
                "--runs",
                str(runs),
                "--job-seconds",
                str(args.job_seconds),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_python_env(),
        )
        for k in range(args.producers)
    ]

    stop_chaos = threading.Event()
    seed = args.seed if args.seed is not None else random.randrange(2**32)

    def due_work_left() -> bool:
        now = time.time()
        return Job.select().where(Job.state.in_(CLAIMABLE), Job.run_at <= now).exists()

    def ended() -> int:
        return Job.select().where(Job.state.in_((COMPLETED, DEAD))).count()

    def killer() -> None:
        rng = random.Random(seed)
        mark = 0
        while not stop_chaos.is_set():
            # The pause between kills is the fault injection's rhythm, not a wait for a state.
            if stop_chaos.wait(args.kill_interval * rng.uniform(0.5, 1.5)):
                return
            # Paced by progress too: a slow (loaded) machine gets as many kills per job as a
            # fast one, instead of more kills, each costing a new worker's start, the slower it is.
            while args.kill_every_jobs and ended() < mark + args.kill_every_jobs:
                if stop_chaos.wait(0.05):
                    return
            fleet.kill_one(rng)
            mark = ended() if args.kill_every_jobs else 0

    chaos = threading.Thread(target=killer, daemon=True) if args.chaos else None
    if chaos:
        chaos.start()

    producer_errors = []
    accepted = 0
    for proc in producers:
        out, err = proc.communicate()
        if proc.returncode != 0:
            producer_errors.append(
                err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
            )
        else:
            accepted += int(out.strip() or 0)
    enqueued_at = time.monotonic() - started

    deadline = time.monotonic() + args.deadline
    if chaos:
        # Keep killing while due work is waiting (the load), then let the survivors finish.
        while due_work_left() and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_chaos.set()
        chaos.join()
    open_states = (*CLAIMABLE, PROCESSING)
    while Job.select().where(Job.state.in_(open_states)).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    drained_at = time.monotonic() - started
    fleet.stop()

    # --- the checks ---
    rows = {job.id: job for job in Job.select()}
    attempts: dict[int, list] = collections.defaultdict(list)
    for attempt in Attempt.select():
        attempts[attempt.job_seq].append(attempt)
    ran = collections.Counter(
        line.strip() for line in runs.read_text().splitlines() if line.strip()
    )

    missing = sorted(expected - set(rows))
    unexpected = sorted(set(rows) - expected)
    stuck = sorted(j for j, row in rows.items() if row.state not in (COMPLETED, DEAD))
    lost, dup_interrupted, dup_clean, overrun, dead_lost, interrupted = [], [], [], [], [], 0
    for job_id, row in rows.items():
        tries = attempts[row.seq]
        was_lost = any(a.outcome == "lost" for a in tries)
        interrupted += was_lost
        times = ran[job_id]
        if row.state == COMPLETED and times == 0:
            lost.append(job_id)
        if row.state == DEAD:
            if was_lost and "worker lost" in (row.last_error or ""):
                dead_lost.append(job_id)
            else:
                lost.append(job_id)
        if times > 1:
            (dup_interrupted if was_lost else dup_clean).append(job_id)
        if times > len(tries):
            overrun.append(job_id)
    lost = sorted(set(lost) | set(missing))

    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "queuectl_tui", "--db", str(db), "status", "--json"],
            capture_output=True,
            text=True,
            check=True,
            env=_python_env(),
        ).stdout
    )
    by_state = engine.counts()
    status_ok = status["jobs"] == by_state and status["total"] == len(expected) == sum(
        by_state.values()
    )
    left = leftovers(str(workdir))
    # A worker writes nothing there unless it dies of an error (a one-line "error: ..." or a
    # traceback): any line at all is a worker that crashed.
    worker_errors = [
        line
        for line in (workdir / "workers.log").read_text(errors="replace").splitlines()
        if line.strip()
    ]

    ok = not (
        lost
        or dup_clean
        or overrun
        or stuck
        or unexpected
        or producer_errors
        or not status_ok
        or left
        or worker_errors
        or accepted != len(expected)
    )
    return {
        "ok": ok,
        "producers": args.producers,
        "jobs_per_producer": args.jobs_per_producer,
        "workers": args.workers,
        "chaos": args.chaos,
        "kill_interval": args.kill_interval if args.chaos else None,
        "seed": seed if args.chaos else None,
        "max_retries": args.max_retries,
        "jobs": len(expected),
        "accepted": accepted,
        "producer_errors": producer_errors,
        "workers_killed": fleet.killed,
        "jobs_interrupted": interrupted,
        "completed": by_state[COMPLETED],
        "dead": by_state[DEAD],
        "dead_worker_lost": len(dead_lost),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "duplicated": len(dup_interrupted) + len(dup_clean),
        "duplicated_interrupted": len(dup_interrupted),
        "duplicated_uninterrupted": len(dup_clean),
        "duplicated_uninterrupted_ids": dup_clean[:20],
        # How each such job's attempts ended, to tell where a second run came from.
        "duplicated_uninterrupted_attempts": {
            job_id: [
                (a.number, a.outcome, a.error, a.pid, a.worker_id)
                for a in sorted(attempts[rows[job_id].seq], key=lambda a: a.number)
            ]
            for job_id in dup_clean[:5]
        },
        "overrun": len(overrun),
        "overrun_ids": overrun[:20],
        "stuck": len(stuck),
        "stuck_ids": stuck[:20],
        "runs_recorded": sum(ran.values()),
        "status_matches": status_ok,
        "status": status["jobs"],
        "leftover_processes": left[:20],
        "worker_errors": len(worker_errors),
        "worker_error_lines": sorted(set(worker_errors))[:10],
        "enqueue_seconds": round(enqueued_at, 1),
        "drain_seconds": round(drained_at, 1),
        "jobs_per_second": round(len(expected) / drained_at, 1) if drained_at else None,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--jobs-per-producer", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--chaos", action="store_true", help="SIGKILL a random worker repeatedly")
    parser.add_argument(
        "--kill-interval",
        type=float,
        default=0.3,
        help="mean seconds between kills with --chaos (jittered ±50%%)",
    )
    parser.add_argument(
        "--kill-every-jobs",
        type=int,
        default=0,
        help="with --chaos, also wait for this many more jobs to end between kills (0: time only)",
    )
    parser.add_argument(
        "--backoff-base",
        type=float,
        default=1.0,
        help="backoff_base setting for the run (a job lost by a killed worker "
        "waits backoff_base ** attempts seconds)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=3,
        help="max_retries setting for the run (0: a job whose worker dies goes "
        "straight to the DLQ with a 'worker lost' attempt)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=1800.0,
        help="give up waiting for the queue to drain after this many seconds",
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=0.0,
        help="each job sleeps this long before it writes its id (with --chaos: kills then "
        "find workers running jobs, whose interruption the run checks)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the killer's choices")
    parser.add_argument(
        "--dir", type=Path, help="keep the run here (default: a temporary directory)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--produce", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument(
        "--db-url",
        help="run on this PostgreSQL database (postgresql://…, an "
        "empty database or schema) instead of an SQLite file",
    )
    parser.add_argument("--runs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.produce:
        return produce(args.db, args.produce, args.jobs_per_producer, args.runs, args.job_seconds)
    global DB_URL
    DB_URL = args.db_url

    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        result = drive(args, args.dir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="queuectl-stress-") as tmp:
            result = drive(args, Path(tmp))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{'PASS' if result['ok'] else 'FAIL'}: {result['jobs']} jobs "
            f"({result['producers']}x{result['jobs_per_producer']}), {result['workers']} workers"
            + (f", {result['workers_killed']} workers SIGKILLed" if result["chaos"] else "")
        )
        for key in (
            "lost",
            "duplicated",
            "duplicated_interrupted",
            "duplicated_uninterrupted",
            "overrun",
            "stuck",
            "jobs_interrupted",
            "completed",
            "dead",
            "status_matches",
            "leftover_processes",
            "worker_errors",
            "drain_seconds",
            "jobs_per_second",
        ):
            print(f"  {key}: {result[key]}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
