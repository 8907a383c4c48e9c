"""Sample data for the console: a realistic queue in one call (demo, tests, screenshots, bench).

``seed`` writes a fixed history relative to ``now`` (successes, a retried success, failures
waiting out their backoff, dead jobs, scheduled and due jobs, optionally running ones), with
fixed ids and log files, so the same ``now`` always gives the same database. Every command is
a harmless ``echo``/``sleep`` snippet, because in the demo real workers run them (and the DLQ's
jobs when an operator retries them). ``seed_bulk`` inserts many plain rows for benchmarks.
``session`` is what ``queuectl-tui demo`` runs around the console: a throwaway database with
live workers, stopped and deleted when the console closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queuectl_tui import engine, procs, spec
from queuectl_tui.store import close_db, open_db, write_transaction
from queuectl_tui.store.models import (
    COMPLETED,
    DEAD,
    FAILED,
    PENDING,
    PROCESSING,
    Attempt,
    Environment,
    Job,
    Worker,
    database,
)

if TYPE_CHECKING:
    from queuectl_tui.run.monitor import JobTree, WorkerMonitor, WorkerStats

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

# (id, command, queue, priority, max_retries, created (s before now), runs, then)
# runs: (start, duration, exit code, outcome, error, output) with start in seconds before now.
# then: the job's state after its runs, and for failed ones the delay until the next try.
_RATES_LOG = (
    "GET https://rates.example.invalid/latest\n"
    "curl: (6) Could not resolve host: rates.example.invalid\n"
)
_CHARGE_LOG = (
    "charging card ending 7731 for order 7731 (49.90 EUR)\n"
    "gateway: 402 card declined (insufficient funds)\n"
)
HISTORY = [
    (
        "nightly-backup",
        'echo "dumping 14 tables"; sleep 2; echo "wrote backup-0412.tar.gz (182 MB)"',
        "default",
        0,
        3,
        1790,
        [
            (
                1785,
                42.31,
                0,
                "completed",
                None,
                "dumping 14 tables\nwrote backup-0412.tar.gz (182 MB)\n",
            )
        ],
        COMPLETED,
    ),
    (
        "build-frontend",
        'echo "vite v5.2 building for production..."; sleep 3; echo "142 modules transformed"',
        "default",
        5,
        3,
        1500,
        [
            (
                1498,
                18.72,
                0,
                "completed",
                None,
                "vite v5.2 building for production...\n142 modules transformed\n"
                "dist/index.html  0.46 kB\ndist/assets/index.js  143.20 kB\n",
            )
        ],
        COMPLETED,
    ),
    (
        "sync-crm-contacts",
        'echo "syncing contacts"; sleep 2; echo "synced 1204 contacts"',
        "default",
        0,
        3,
        1300,
        [
            (
                1295,
                3.05,
                1,
                "failed",
                "exit code 1",
                "syncing contacts\nHTTP 503 Service Unavailable, giving up\n",
            ),
            (1290, 11.4, 0, "completed", None, "syncing contacts\nsynced 1204 contacts\n"),
        ],
        COMPLETED,
    ),
    (
        "send-digest-emails",
        'echo "rendering 312 digests"; sleep 2; echo "queued 312 emails"',
        "mail",
        2,
        3,
        950,
        [(940, 27.9, 0, "completed", None, "rendering 312 digests\nqueued 312 emails\n")],
        COMPLETED,
    ),
    (
        "fetch-exchange-rates",
        "echo GET https://rates.example.invalid/latest; sleep 1; exit 6",
        "default",
        1,
        4,
        400,
        [
            (395, 1.02, 6, "failed", "exit code 6", _RATES_LOG),
            (392, 1.01, 6, "failed", "exit code 6", _RATES_LOG),
            (60, 1.03, 6, "failed", "exit code 6", _RATES_LOG),
        ],
        (FAILED, 95),
    ),
    (
        "import-orders-csv",
        'echo "importing orders.csv"; sleep 600',
        "default",
        0,
        3,
        200,
        [
            (
                150,
                30.0,
                -9,
                "timeout",
                "timed out after 30s",
                "importing orders.csv\nrow 1..5000 ok\nrow 5001..10000 ok\n",
            )
        ],
        (FAILED, 12),
    ),
    (
        "charge-card-7731",
        'echo "charging card ending 7731"; sleep 1; echo "card declined" >&2; exit 2',
        "payments",
        8,
        2,
        1200,
        [
            (1190, 1.2, 2, "failed", "exit code 2", _CHARGE_LOG),
            (1187, 1.1, 2, "failed", "exit code 2", _CHARGE_LOG),
            (1180, 1.2, 2, "failed", "exit code 2", _CHARGE_LOG),
        ],
        DEAD,
    ),
    (
        "legacy-report",
        "generate-legacy-report --month 2024-03",
        "reports",
        0,
        0,
        1100,
        [
            (
                1099,
                0.01,
                127,
                "failed",
                "command not found (exit code 127)",
                "/bin/sh: 1: generate-legacy-report: not found\n",
            )
        ],
        DEAD,
    ),
    (
        "webhook-deliver-42",
        'echo "POST https://hooks.example.invalid/42"; sleep 5',
        "default",
        0,
        0,
        700,
        [
            (
                690,
                36.0,
                None,
                "lost",
                "worker lost (worker 3, pid 48211 on build-01: no heartbeat for 31s)",
                "POST https://hooks.example.invalid/42\n",
            )
        ],
        DEAD,
    ),
    ("cleanup-tmp", "find /tmp/queuectl-demo -mtime +7 -print", "default", -1, 3, 600, [], DEAD),
    (
        "reindex-search",
        'for i in 1 2 3 4 5; do echo "indexed shard $i/5"; sleep 1; done',
        "default",
        0,
        3,
        40,
        [],
        PENDING,
    ),
    (
        "warm-cache",
        'echo "warming 48 pages"; sleep 2; echo "cache warm"',
        "default",
        3,
        3,
        25,
        [],
        PENDING,
    ),
    (
        "transcode-video-17",
        'echo "transcoding clip 17 (1080p)"; sleep 8; echo "wrote clip-17.mp4"',
        "media",
        1,
        3,
        20,
        [],
        PENDING,
    ),
    (
        "weekly-report",
        'echo "building the weekly report"; sleep 3; echo "report.pdf ready"',
        "reports",
        0,
        3,
        300,
        [],
        (PENDING, 5 * 3600),
    ),
    (
        "rotate-api-keys",
        'echo "rotating 3 keys"; sleep 1; echo "done"',
        "default",
        9,
        3,
        300,
        [],
        (PENDING, 86400),
    ),
]

#: Spec fields beyond the columns above.
EXTRA = {"import-orders-csv": {"timeout": 30}}

# Running jobs (tests and screenshots only: in the demo real workers make their own).
RUNNING = [
    (
        "transcode-video-11",
        'echo "transcoding clip 11 (4K)"; sleep 120',
        "media",
        1,
        84.0,
        "transcoding clip 11 (4K)\nframe  1200 fps 48 q=28.0 size 20480kB time=00:00:50\n",
    ),
    (
        "crawl-sitemap",
        'for p in $(seq 1 200); do echo "fetched page $p"; sleep 1; done',
        "default",
        0,
        12.0,
        "".join(f"fetched page {p}\n" for p in range(1, 13)),
    ),
]

# Live work for the demo: a long job, a job that keeps failing, and a trickle of short ones.
LIVE = [
    (
        "long-etl",
        'for i in $(seq 1 900); do echo "batch $i: 500 rows loaded"; sleep 1; done',
        0,
        0,
        3,
    ),
    (
        "flaky-api",
        'echo "calling https://api.example.invalid"; sleep 1; echo "HTTP 502" >&2; exit 1',
        0,
        3,
        3,
    ),
]


def _thumbs(now: float) -> list[tuple[Any, ...]]:
    """Short successful jobs spread over the last half hour: the throughput chart's shape."""
    rows = []
    for n in range(1, 41):
        start = 1780 - n * 43 - (n * 7919) % 37
        duration = 0.4 + (n * 31 % 17) / 10
        rows.append(
            (
                f"thumb-{n:03d}",
                f'echo "resizing image {n}"; sleep 1; echo "thumb-{n:03d}.webp"',
                "media",
                0,
                3,
                start + 5,
                [
                    (
                        start,
                        duration,
                        0,
                        "completed",
                        None,
                        f"resizing image {n}\nthumb-{n:03d}.webp\n",
                    )
                ],
                COMPLETED,
            )
        )
    return rows


def seed(
    now: float | None = None,
    *,
    cwd: str | None = None,
    running_pid: int | None = None,
    live: bool = False,
) -> None:
    """Fill the open database with the sample history (ids are fixed: use it on an empty one).

    running_pid: also register three workers with this PID (two busy, one idle) holding the
    RUNNING jobs, so that they count as alive. live: add the demo's live jobs (a long one, a
    failing one, short ones due every 20 s for ten minutes).
    """
    now = time.time() if now is None else now
    cwd = cwd or os.getcwd()
    logs = engine.logs_dir()
    logs.mkdir(parents=True, exist_ok=True)
    entries = sorted(HISTORY + _thumbs(now), key=lambda e: -e[5])
    with write_transaction():
        if live:  # a batch scheduled half an hour ago, one chunk every 20 s from now on
            queued = now - 1800
            engine.enqueue(
                [
                    spec.normalize(
                        {
                            "id": f"report-chunk-{n:02d}",
                            "command": f'echo "chunk {n}"; sleep 2; echo "chunk {n} done"',
                            "queue": "reports",
                            "delay": now - queued + 20 * n,
                        },
                        now=queued,
                    )
                    for n in range(1, 31)
                ],
                cwd=cwd,
                env=ENV,
                now=queued,
            )
        for job_id, command, queue, priority, retries, created, runs, then in entries:
            job = engine.enqueue(
                [
                    spec.normalize(
                        {
                            "id": job_id,
                            "command": command,
                            "queue": queue,
                            "priority": priority,
                            "max_retries": retries,
                            "backoff_base": 2,
                            **EXTRA.get(job_id, {}),
                        }
                    )
                ],
                cwd=cwd,
                env=ENV,
                now=now - created,
            )[0]
            _write_history(job, runs, then, now, logs)
        if running_pid is not None:
            _running(now, cwd, running_pid, logs)
        if live:
            for job_id, command, priority, retries, delay in LIVE:
                engine.enqueue(
                    [
                        spec.normalize(
                            {
                                "id": job_id,
                                "command": command,
                                "priority": priority,
                                "max_retries": retries,
                                "backoff_base": 3,
                                "delay": delay,
                            },
                            now=now,
                        )
                    ],
                    cwd=cwd,
                    env=ENV,
                    now=now,
                )


def _write_history(
    job: Job, runs: list[tuple[Any, ...]], then: str | tuple[str, float], now: float, logs: Path
) -> None:
    state, wait = then if isinstance(then, tuple) else (then, None)
    values: dict[str, Any] = {"state": state, "attempts": len(runs)}
    due = job.run_at  # the first run was due at enqueue; each retry after its backoff
    for number, (start, duration, code, outcome, error, output) in enumerate(runs, 1):
        log_file = engine.log_name(job.id, job.seq, number)
        (logs / log_file).write_text(output)
        measured = outcome != "lost"  # a lost worker recorded nothing of what its job cost
        Attempt.create(
            job=job.seq,
            number=number,
            worker_id=1 + (job.seq + number) % 3,
            host="demo",
            pid=None,
            started_at=now - start,
            finished_at=now - start + duration,
            exit_code=code,
            duration=duration,
            outcome=outcome,
            error=error,
            log_file=log_file,
            cpu_seconds=round(duration * 0.4, 2) if measured else None,
            peak_rss_bytes=(6 + (job.seq * 37 + number * 11) % 180) * 1024 * 1024
            if measured
            else None,
            processes=1 + (job.seq + number) % 4 if measured else None,
            due_at=min(due, now - start),
            queue=job.queue,
        )
        due = now - start + duration + 2**number
        values.update(
            started_at=now - start,
            finished_at=now - start + duration,
            exit_code=code,
            last_error=error,
            output_tail=output,
            updated_at=now - start + duration,
        )
    if state == PENDING:
        values.update(started_at=None, finished_at=None)
        if wait:
            values["run_at"] = now + wait
    elif state == FAILED:
        assert wait is not None  # a failed job's entry gives the delay until its next try
        values["run_at"] = now + wait
    elif state == DEAD and not runs:
        values.update(last_error="cancelled", finished_at=now - 590, updated_at=now - 590)
    Job.update(**values).where(Job.seq == job.seq).execute()


def _running(now: float, cwd: str, pid: int, logs: Path) -> None:
    started = procs.start_time(pid) or now
    workers = [
        Worker.create(
            host=procs.hostname(),
            pid=pid,
            proc_started=started,
            started_at=now - age,
            heartbeat_at=now - 0.4,
            status="idle",
        )
        for age in (3725.0, 3720.0, 610.0)
    ]
    for worker, running in zip(workers, RUNNING, strict=False):
        job_id, command, queue, priority, age, output = running
        job = engine.enqueue(
            [
                spec.normalize(
                    {"id": job_id, "command": command, "queue": queue, "priority": priority}
                )
            ],
            cwd=cwd,
            env=ENV,
            now=now - age - 1,
        )[0]
        log_file = engine.log_name(job.id, job.seq, 1)
        (logs / log_file).write_text(output)
        Attempt.create(
            job=job.seq,
            number=1,
            worker_id=worker.id,
            host=worker.host,
            pid=pid,
            pid_started=started,
            started_at=now - age,
            log_file=log_file,
            queue=queue,
        )
        Job.update(
            state=PROCESSING,
            attempts=1,
            worker_id=worker.id,
            started_at=now - age,
            updated_at=now - age,
        ).where(Job.seq == job.seq).execute()
        Worker.update(status="busy", current_job=job_id).where(Worker.id == worker.id).execute()


def seed_bulk(count: int, now: float | None = None, *, chunk: int = 2000) -> None:
    """Insert ``count`` plain jobs (60% completed, 25% pending, 5% failed, 10% dead) with one
    attempt each for the finished ones, spread over the last two hours. For benchmarks."""
    now = time.time() if now is None else now
    states = [COMPLETED] * 12 + [PENDING] * 5 + [FAILED] + [DEAD] * 2
    env_digest = engine.environment_row(ENV)[0]
    base = Job.select(Job.seq).order_by(Job.seq.desc()).limit(1).scalar() or 0
    with database.atomic():
        Environment.insert(
            digest=env_digest, data=json.dumps(ENV, sort_keys=True)
        ).on_conflict_ignore().execute()
        for first in range(0, count, chunk):
            jobs, attempts = [], []
            for n in range(first, min(first + chunk, count)):
                seq = base + n + 1
                state = states[n % len(states)]
                finished = now - 7200 + (n * 7200.0 / count)
                ran = state != PENDING
                error = {FAILED: "exit code 1", DEAD: "exit code 2"}.get(state)
                jobs.append(
                    {
                        "seq": seq,
                        "id": f"bulk-{n:06d}",
                        "command": f"echo item {n}; sleep 1",
                        "queue": "default",
                        "state": state,
                        "priority": n % 5,
                        "attempts": int(ran),
                        "max_retries": 0 if state == DEAD else 3,
                        "backoff_base": 2.0,
                        "timeout": None,
                        "run_at": now + 60 if state == FAILED else finished - 1,
                        "created_at": finished - 2,
                        "updated_at": finished,
                        "started_at": finished - 1 if ran else None,
                        "finished_at": finished if ran else None,
                        "last_error": error,
                        "exit_code": {COMPLETED: 0, FAILED: 1, DEAD: 2}.get(state),
                        "output_tail": f"item {n}\n" if ran else None,
                        "cwd": "/tmp",
                        "env_digest": env_digest,
                        "worker_id": None,
                        "cancel_requested": False,
                    }
                )
                if ran:
                    attempts.append(
                        {
                            "job": seq,
                            "number": 1,
                            "worker_id": 1,
                            "host": "bench",
                            "started_at": finished - 1,
                            "finished_at": finished,
                            "exit_code": jobs[-1]["exit_code"],
                            "duration": 1.0,
                            "outcome": "completed" if state == COMPLETED else "failed",
                            "error": error,
                            "log_file": None,
                            "queue": "default",
                        }
                    )
            Job.insert_many(jobs).execute()
            if attempts:
                Attempt.insert_many(attempts).execute()


#: The "now" of the snapshot tests and the README screenshots: 2026-05-28 20:26:40 UTC.
FIXED_NOW = 1_780_000_000.0


def pinned_monitor() -> WorkerMonitor:
    """A worker monitor whose volatile figures (PID, CPU, memory) are fixed, so that pictures
    of the workers pane come out the same every time (tests, screenshots)."""
    from queuectl_tui.run.monitor import Usage, WorkerMonitor

    class Pinned(WorkerMonitor):
        def sample(self, now: float | None = None) -> list[WorkerStats]:
            rows = super().sample(now)
            for index, row in enumerate(rows):
                row.pid = 4100 + index
                row.process = Usage(1.5 + index, (28 + index) * 1024 * 1024) if row.alive else None
                if row.current_job is not None and row.alive:
                    row.job_tree = Usage(42.0 + index, (96 + 10 * index) * 1024 * 1024, 3)
            return rows

        def job_tree(
            self, job: Job, attempt: Attempt, now: float
        ) -> tuple[JobTree, list[tuple[float, float, int]]]:
            """A fixed tree under the job's shell and a fixed series over the attempt's life."""
            from queuectl_tui.run.monitor import JobTree
            from queuectl_tui.run.usage import ProcInfo

            tree = JobTree(
                job.id,
                attempt.worker_id,
                attempt.host,
                attempt.number,
                attempt.started_at,
                4200,
                True,
            )
            mb = 1024 * 1024
            tree.processes = [
                ProcInfo(
                    4200,
                    4100,
                    0,
                    attempt.started_at,
                    "sleeping",
                    0.0,
                    2 * mb,
                    2 * mb,
                    "/bin/sh -s",
                    0.0,
                ),
                ProcInfo(
                    4201,
                    4200,
                    1,
                    attempt.started_at,
                    "sleeping",
                    0.1,
                    3 * mb,
                    3 * mb,
                    "python3 pipeline.py --input batch.csv",
                    1.5,
                ),
                ProcInfo(
                    4202,
                    4201,
                    2,
                    attempt.started_at,
                    "running",
                    40.0,
                    88 * mb,
                    120 * mb,
                    "ffmpeg -i clip.mov -c:v libx264 out.mp4",
                    97.0,
                ),
                ProcInfo(
                    4203,
                    4201,
                    2,
                    attempt.started_at,
                    "sleeping",
                    0.2,
                    5 * mb,
                    5 * mb,
                    "tee \x1b]0;title\x07 progress.log",
                    0.0,
                ),
            ]
            span = max(1.0, now - attempt.started_at)
            history = [
                (
                    attempt.started_at + span * i / 39,
                    20.0 + 80.0 * ((i * 7) % 10) / 9,
                    (20 + 2 * i) * mb,
                )
                for i in range(40)
            ]
            return tree, history

    return Pinned()


@contextlib.contextmanager
def session(*, workers: int = 2, keep: bool = False, now: float | None = None) -> Iterator[Path]:
    """A throwaway database seeded with the sample history and live jobs, with ``workers``
    detached workers on it. On exit (unless ``keep``) every worker of that database is stopped
    (SIGUSR1: running jobs are killed) and the directory is deleted."""
    from queuectl_tui.run import supervisor

    directory = Path(tempfile.mkdtemp(prefix="queuectl-demo-"))
    db_path = directory / "queuectl.db"
    open_db(db_path)
    try:
        seed(now, cwd=str(directory), live=True)
        if workers:
            supervisor.start(db_path, workers)
        yield db_path
    finally:
        if not keep:
            try:
                open_db(db_path)
                supervisor.stop(force=True, wait=5)
            finally:
                close_db()
                shutil.rmtree(directory, ignore_errors=True)
