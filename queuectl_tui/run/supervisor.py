"""Starting, finding and stopping worker processes on this host.

Detached workers are ordinary ``python -m queuectl_tui worker run`` processes in their own
session, so they outlive the shell or console that started them. They are found through their
rows in the database and signalled only when PID and process start time both still match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from queuectl_tui import engine, paths, procs
from queuectl_tui.errors import QueueError
from queuectl_tui.paths import logs_dir, open_private_append
from queuectl_tui.store import close_db, open_db
from queuectl_tui.store import preload as preload_backend
from queuectl_tui.store.models import Job, Worker

if TYPE_CHECKING:
    from types import FrameType


def worker_command(
    db_path: Path | str, queues: list[str] | None, burst: bool, log: Path | None = None
) -> list[str]:
    """A database URL (and its password) goes to the worker in its environment (see
    ``worker_env``), never on a command line that ``ps`` shows to every user."""
    where = [] if paths.is_url(db_path) else ["--db", str(db_path)]
    cmd = [sys.executable, "-m", "queuectl_tui", *where, "worker", "run"]
    if log is not None:
        cmd += ["--log", str(log)]
    for queue in queues or []:
        cmd += ["--queue", queue]
    if burst:
        cmd.append("--burst")
    return cmd


def worker_env(db_path: Path | str) -> dict[str, str] | None:
    if not paths.is_url(db_path):
        return None
    return {**os.environ, "QUEUECTL_DB": str(db_path)}


def start(
    db_path: Path | str,
    count: int = 1,
    *,
    queues: list[str] | None = None,
    burst: bool = False,
    wait: float = 10.0,
) -> list[Worker]:
    """Spawn detached workers and return their rows once each has registered."""
    log = logs_dir(db_path) / "workers.log"
    try:  # not through a planted symlink or into someone else's file (see paths)
        fd = open_private_append(log)
    except OSError as exc:
        raise QueueError(f"cannot open the workers' log {log}: {exc.strerror or exc}") from None
    pids = []
    try:
        for _ in range(count):
            proc = subprocess.Popen(
                worker_command(db_path, queues, burst, log),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
                env=worker_env(db_path),
            )
            pids.append(proc.pid)
            _reap_when_done(proc)
    finally:
        os.close(fd)
    deadline = time.monotonic() + wait
    while True:
        rows = list(Worker.select().where(Worker.pid.in_(pids), Worker.host == procs.hostname()))
        if len(rows) == len(pids):
            return rows
        dead = [pid for pid in pids if _gone(pid)]
        if burst and dead:
            return rows  # a burst worker may find nothing to do and exit at once
        if dead or time.monotonic() > deadline:
            raise QueueError(f"worker(s) {dead or pids} did not start{_last_error(log)}; see {log}")
        time.sleep(0.02)


def _reap_when_done(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a started worker in a thread of its own, so that a process that starts workers
    and lives on (the console's '+') does not keep each one that stops as a zombie until it
    quits. A blocking wait for that one child: no SIGCHLD handler, which would also take the
    exit status of children that others wait for."""
    threading.Thread(target=proc.wait, name=f"reap worker {proc.pid}", daemon=True).start()


#: What a worker imports at its first claim, recovery and look for work (the engine loads its
#: parts at first use; the subreaper and the claim tokens load ctypes and secrets).
FIRST_USE = (
    "ctypes",
    "secrets",
    "queuectl_tui.engine.chains",
    "queuectl_tui.engine.claims",
    "queuectl_tui.engine.reads",
    "queuectl_tui.engine.recovery",
)


def preload() -> None:
    """Import what each worker would at its start (``FIRST_USE``, and the backend's), before
    workers are forked from this process: else every child imports them again (and compiles
    them, where no bytecode is cached: ~20 ms of CPU each)."""
    import importlib

    for name in FIRST_USE:
        importlib.import_module(name)
    preload_backend()


def run_forked(db_path: Path | str, count: int, work: Callable[[], int]) -> int:
    """Run ``work`` (a worker) in ``count`` children forked from this process, and wait for
    them (``worker start --foreground --count N``). Forked rather than started anew: the
    modules are imported already, so the workers start at once (a fresh interpreter each took
    about 0.1 s of CPU, a tenth of a second before a burst could begin). Each child opens its
    own database connection: none is carried across the fork. SIGTERM is passed on to them;
    Ctrl+C reaches them from the terminal. Returns the highest exit status."""
    preload()
    close_db()
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                open_db(db_path)
                code = work()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:  # one line, then leave without running the parent's exit
                from queuectl_tui.run.echo import write_line  # one write: siblings share stderr

                write_line(sys.stderr, f"error: worker could not run: {exc}")
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        children.append(pid)

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, lambda s, f: None)  # Ctrl+C already reaches the children
    codes = []
    for child in children:
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        codes.append(os.waitstatus_to_exitcode(status))
    return max(codes)


def _gone(pid: int) -> bool:
    """Exited or a zombie; a process may exit between the two looks, which is gone too."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _last_error(log: Path) -> str:
    """The last line in the workers' log (a worker that cannot start says why there)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    if not lines:
        return ""
    last = lines[-1].strip()
    return ": " + (last[len("error: ") :] if last.startswith("error: ") else last)


def local_workers() -> list[tuple[Worker, psutil.Process | None]]:
    """Rows of this host's workers, each with its live process (None if gone or PID reused)."""
    rows = Worker.select().where(Worker.host == procs.hostname()).order_by(Worker.id)
    return [(row, procs.same_process(row.pid, row.proc_started)) for row in rows]


def stop(
    *,
    force: bool = False,
    wait: float = 10.0,
    worker_ids: list[int] | None = None,
    waiting: Callable[[list[tuple[int, str | None]]], None] | None = None,
) -> dict[str, list[int]]:
    """Signal our live workers (SIGTERM, or SIGUSR1 with force) and wait up to ``wait`` s.
    ``waiting`` hears which workers still run and their jobs, (worker id, job id or None),
    once the wait outlasts a moment and whenever that changes.

    Returns worker ids by what happened: stopped, still_running (finishing a job), gone
    (row left by a dead process: never signalled, its job recovered).
    """
    sig = signal.SIGUSR1 if force else signal.SIGTERM
    workers = local_workers()
    if worker_ids is not None:
        # Refuse before signalling anything: one unknown id stops no worker at all.
        unknown = set(worker_ids) - {row.id for row, _ in workers}
        if unknown:
            raise QueueError(
                f"no worker with id {', '.join(map(str, sorted(unknown)))} on this host"
            )
    targets, gone = [], []
    for row, proc in workers:
        if worker_ids is not None and row.id not in worker_ids:
            continue
        if proc is None:
            gone.append(row.id)
            continue
        try:
            proc.send_signal(sig)
            targets.append((row, proc))
        except psutil.NoSuchProcess:
            gone.append(row.id)
    told: list[int] = []

    def still(alive: set[int]) -> None:  # what the waiting caller is told, when it changes
        ids = sorted(row.id for row, proc in targets if proc.pid in alive)
        assert waiting is not None  # still is passed on only with waiting
        if ids != told:
            told[:] = ids
            # execute(): the rows as they are; peewee's stubs type a model query's rows as models
            jobs: dict[int, str | None] = (
                dict(
                    Worker.select(Worker.id, Worker.current_job)
                    .where(Worker.id.in_(ids))
                    .tuples()
                    .execute()
                )
                if ids
                else {}
            )
            waiting([(worker_id, jobs.get(worker_id)) for worker_id in ids])

    alive_pids = _wait_exit([p for _, p in targets], wait, still if waiting else None)
    if gone:
        engine.recover_lost()
    return {
        "stopped": [r.id for r, p in targets if p.pid not in alive_pids],
        "still_running": [r.id for r, p in targets if p.pid in alive_pids],
        "gone": gone,
    }


def pause_jobs(job_ids: list[str], *, resume: bool = False, wait: float = 5.0) -> list[Job]:
    """Pause (SIGSTOP) or resume (SIGCONT) running jobs of this host: each one's process group
    and the descendants of its shell, once the PID and start time recorded for it are still
    its process's. Every job is checked before any is signalled (one that cannot be leaves
    all alone). Its worker sees the stop at its next tick and marks the job paused (or no
    longer); returns the jobs once that is recorded, or after ``wait`` seconds."""
    targets = []
    for job_id in dict.fromkeys(job_ids):
        job = engine.get_job(job_id)
        targets.append((job, *_running_process(job)))
    for _job, pid, started in targets:
        procs.kill_tree(
            pid, started, sig=signal.SIGCONT if resume else signal.SIGSTOP, wait=0, search=False
        )
    deadline = time.monotonic() + wait
    while True:
        jobs = [engine.get_job(job.id) for job, _, _ in targets]
        if time.monotonic() >= deadline or all(
            j.paused != resume or j.state != "processing" for j in jobs
        ):
            return jobs
        time.sleep(0.02)


def _running_process(job: Job) -> tuple[int, float | None]:
    """The PID and start time of a running job's shell on this host, or why not (QueueError)."""
    attempt = engine.current_attempt(job)
    if attempt is None:
        raise QueueError(f"job {job.id!r} is not running ({job.state})")
    if attempt.host and attempt.host != procs.hostname():
        raise QueueError(f"job {job.id!r} runs on host {attempt.host}: pause or resume it there")
    noted = (attempt.pid, attempt.pid_started) if attempt.pid else engine.noted_process(attempt)
    if noted is None or procs.same_process(*noted) is None:
        raise QueueError(f"job {job.id!r} has no process to signal (starting or ending): try again")
    return noted


#: How long ``stop`` waits quietly: workers that were idle are gone by then.
QUIET_WAIT = 0.5


def _wait_exit(
    processes: list[psutil.Process],
    timeout: float,
    waiting: Callable[[set[int]], None] | None = None,
) -> set[int]:
    """PIDs of those still running after up to ``timeout`` s (``waiting`` hears them after
    QUIET_WAIT s, at each look). A zombie has exited: only its reaping is left, to whichever
    process inherited it (psutil.wait_procs would wait for that, which a slow or non-reaping
    init never does)."""
    start = time.monotonic()
    deadline = start + timeout
    alive = list(processes)
    while True:
        alive = [p for p in alive if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return {p.pid for p in alive}
        if waiting is not None and time.monotonic() - start >= QUIET_WAIT:
            waiting({p.pid for p in alive})
        time.sleep(0.02)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
