"""The worker loop: claim, run, record, heartbeat, recover, and stop cleanly on signals.

An idle worker notices new work without a fixed sleep: it polls SQLite's ``data_version``
(which changes whenever another connection commits) every few milliseconds, and otherwise
sleeps until the next scheduled job is due or ``poll_interval`` passes.

Signals: the first SIGTERM/SIGINT stops claiming and lets the running job finish; a second
one, or SIGUSR1 (``worker stop --force``), kills the running job's tree and hands the job
back to the queue as interrupted.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Callable

from peewee import DatabaseError

from queuectl_tui import engine, procs, runner, settings
from queuectl_tui.db import change_token
from queuectl_tui.models import Job

WAKE_POLL = 0.005
BURST_HORIZON = 60.0  # --burst waits for jobs due this soon (retries in backoff, near schedules)


def worker_settings() -> dict:
    """The settings as a worker applies them: it beats at least three times per lease, whatever
    heartbeat_interval says, so that a healthy worker is never presumed lost (which would have
    its running job killed and run again) when the lease is set shorter than the interval."""
    cfg = settings.load()
    cfg["heartbeat_interval"] = min(cfg["heartbeat_interval"], cfg["lease"] / 3)
    return cfg


class Worker:
    def __init__(self, queues: list[str] | None = None, *, burst: bool = False,
                 echo: Callable[[str], None] | None = None):
        self.queues = queues or None
        self.burst = burst
        self.echo = echo or (lambda line: None)
        self.stop_requests = 0
        self.force = False
        self.row = None
        self._last_beat = 0.0
        self._last_recovery = 0.0
        self._last_cancel_check = 0.0
        self._data_version = None

    # -- signals --------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_force)

    def _on_stop(self, signum, frame) -> None:
        self.stop_requests += 1
        if self.stop_requests > 1:
            self.force = True

    def _on_force(self, signum, frame) -> None:
        self.stop_requests += 1
        self.force = True

    @property
    def stopping(self) -> bool:
        return self.stop_requests > 0

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> int:
        self.row = engine.register_worker(self.queues)
        self.echo(f"worker {self.row.id} started (pid {self.row.pid})")
        errors = 0
        try:
            self._recover(force=True)
            while not self.stopping:
                try:
                    cfg = worker_settings()
                    self._changed()  # baseline first: a commit after this point wakes us
                    claimed = engine.claim(self.row)
                    if claimed:
                        self._run_job(*claimed, cfg)
                        errors = 0
                        continue
                    self._housekeeping(cfg)
                    if self.burst and not self._work_soon():
                        break
                    self._wait_for_work(cfg)
                    errors = 0
                except DatabaseError as exc:
                    # A lock held past the busy timeout, a full disk: wait and try again rather
                    # than die (a dead worker's job would have to wait for recovery).
                    errors += 1
                    self._complain(f"database error ({exc}); retrying")
                    self._pause(min(0.25 * 2 ** errors, 5.0))
        finally:
            try:
                engine.unregister_worker(self.row.id)
            except DatabaseError as exc:
                self._complain(f"could not unregister ({exc}); recovery will clean up")
            self.echo(f"worker {self.row.id} stopped")
        return 0

    def _complain(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} worker {self.row.id}: {message}", file=sys.stderr,
              flush=True)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.05)

    def _run_job(self, job: Job, attempt, cfg: dict) -> None:
        self.echo(f"start  {job.id}  attempt {attempt.number}")
        try:
            env = engine.job_environment(job)
            result = runner.run(
                job.command, cwd=job.cwd, env=env, log_path=engine.log_path(attempt),
                max_log_bytes=cfg["max_log_bytes"], timeout=job.timeout,
                on_start=lambda pid, started: engine.record_process(attempt, pid, started),
                tick=lambda: self._tick(job, cfg),
            )
        except DatabaseError as exc:
            # The command never ran (runner gates it on record_process): hand the job back
            # without using up a retry.
            result = runner.Result("interrupted", None, f"not started: database error: {exc}", "", 0.0)
        state = self._finish(job, attempt, result, cfg)
        code = "-" if result.exit_code is None else result.exit_code
        self.echo(f"finish {job.id}  attempt {attempt.number}  exit {code}  "
                  f"{result.duration:.2f}s  -> {state or 'taken back by recovery'}")
        if self.stopping and not self.force:
            engine.heartbeat(self.row.id, status="stopping", current_job=None)

    def _finish(self, job: Job, attempt, result, cfg: dict) -> str | None:
        """Record the outcome, retrying through transient database errors for up to a lease:
        past that, other workers' recovery takes the job back and this record is fenced out."""
        deadline = time.monotonic() + cfg["lease"]
        delay = 0.1
        while True:
            try:
                return engine.finish(job, attempt, outcome=result.outcome,
                                     exit_code=result.exit_code, error=result.error,
                                     tail=result.tail)
            except DatabaseError as exc:
                if time.monotonic() > deadline:
                    self._complain(f"could not record {job.id} ({exc}); leaving it to recovery")
                    return None
                self._complain(f"database error recording {job.id} ({exc}); retrying")
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _tick(self, job: Job, cfg: dict) -> str | None:
        """Called while a job runs: heartbeats, cancellation and forced stops. A database
        error here skips one tick; it never disturbs the running job."""
        if self.force:
            return "interrupt"
        try:
            return self._check_in(job, cfg)
        except DatabaseError:
            return None

    def _check_in(self, job: Job, cfg: dict) -> str | None:
        now = time.time()
        if now - self._last_beat >= cfg["heartbeat_interval"]:
            status = "stopping" if self.stopping else "busy"
            self._beat(now, status=status, current_job=job.id)
        if now - self._last_cancel_check >= 0.2:
            self._last_cancel_check = now
            if self._changed() and engine.cancel_requested(job):
                return "cancel"
        return None

    def _housekeeping(self, cfg: dict) -> None:
        now = time.time()
        if now - self._last_beat >= cfg["heartbeat_interval"]:
            self._beat(now, status="idle", current_job=None)
        self._recover(interval=max(2 * cfg["heartbeat_interval"], 1.0))

    def _beat(self, now: float, **values) -> None:
        self._last_beat = now
        if not engine.heartbeat(self.row.id, now=now, **values):
            # Our row was removed (we were presumed lost): come back under a new identity.
            self.row = engine.register_worker(self.queues)

    def _recover(self, *, interval: float = 0.0, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_recovery >= interval:
            self._last_recovery = now
            for job_id in engine.recover_lost(now=now):
                self.echo(f"recovered {job_id} from a lost worker")

    def _work_soon(self) -> bool:
        due = engine.next_due(self.queues)
        return due is not None and due <= time.time() + BURST_HORIZON

    def _changed(self) -> bool:
        """Has another connection committed since the last call? (Always "maybe" without a
        change signal, e.g. on PostgreSQL, where the cadence comes from poll_interval.)"""
        version = change_token()
        changed = version is None or version != self._data_version
        self._data_version = version
        return changed

    def _wait_for_work(self, cfg: dict) -> None:
        now = time.time()
        deadline = now + min(cfg["poll_interval"], cfg["heartbeat_interval"])
        due = engine.next_due(self.queues)
        if due is not None:
            deadline = min(deadline, max(due, now))
        signalled = self._data_version is not None
        while time.time() < deadline and not self.stopping:
            time.sleep(WAKE_POLL if signalled else 0.05)
            if signalled and self._changed():
                return


def run_worker(queues: list[str] | None = None, *, burst: bool = False, echo: bool = False) -> int:
    printer = (lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)) if echo else None
    worker = Worker(queues, burst=burst, echo=printer)
    worker.install_signals()
    procs.become_subreaper()  # orphans of our jobs come back to us, to be killed after each job
    try:
        return worker.run()
    except KeyboardInterrupt:
        return 130
    finally:
        procs.kill_leftovers()  # a worker leaves nothing of its jobs behind, however it ends
        sys.stdout.flush()
