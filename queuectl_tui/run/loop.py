"""The worker loop: claim, run, record, heartbeat, recover, and stop cleanly on signals.

An idle worker notices new work without a fixed sleep: it looks at SQLite's ``data_version``
(which changes whenever another connection commits) each time ``wake.sleep`` returns (at once
after a write to the ``-wal`` file, else within a quarter second), and otherwise
sleeps until the next scheduled job is due or ``poll_interval`` passes. On PostgreSQL it
LISTENs instead and sleeps in ``select`` until a NOTIFY (sent by triggers on every change to
jobs, queues and settings) arrives, with the same deadlines as a safety net. Idle means idle:
a wake-up costs one read (is a job due? which settings' version?), and only a due job is worth
a claim; an empty claim writes nothing, so it wakes no one (see ``engine.settle``).

Settings apply to every job claimed after the change that set them: the claim returns the
settings' version, and the worker reloads them when it differs from the one it holds.
Heartbeats come from a thread of their own with its own database connection, so that a long
job loop step, CPU starvation or a write lock held by someone else never silences them; that
thread checks the settings' version too, so a lease changed while a job runs applies at once.

The lease binds the worker too. On PostgreSQL, where workers on other hosts take a job back
once its worker has sent no heartbeat for a lease, a worker whose heartbeats have failed for
longer than the lease kills its running job itself: by then it may be running elsewhere. A
worker that learns its job was taken back (its row is gone: it was presumed lost; or the job's
process can no longer be recorded) kills it at once. Neither starts a job in that state. Its
connections give up a silent network within a sixth of the lease (``db.keep_alive``), so a
short outage delays a heartbeat by about its own length, not by TCP's backed-off resends.

Signals: SIGTERM (``worker stop``) or a first SIGINT stops claiming and lets the running job
finish; repeating SIGTERM changes nothing. Only SIGUSR1 (``worker stop --force``) or a second
SIGINT (Ctrl+C twice on a foreground worker) kills the running job's tree and hands the job back
to the queue as interrupted.

Recurring schedules need no process of their own (schedules.py): an idle worker's sleep ends
at the earliest due time as well, and it makes the due jobs before it claims; a busy worker's
heartbeat thread makes them. Nothing due costs one read, never a write.

The worker's own output (``--foreground`` echo, complaints on stderr) never stops it: when its
reader goes away (``worker start --foreground | head -1``) it stops printing and goes on.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from peewee import DatabaseError

from queuectl_tui import engine, hooks, procs, retention, schedules, settings, wake
from queuectl_tui.run import usage
from queuectl_tui.run.batch import Batch
from queuectl_tui.run.echo import WorkersLog, print_line, to_devnull, write_line
from queuectl_tui.run.heartbeat import Heartbeat, worker_settings
from queuectl_tui.run.launch import CANCEL, INTERRUPT, Launcher, Result, Stop
from queuectl_tui.run.launch.host import JobHost
from queuectl_tui.store import (
    SCHEMA_VERSION,
    change_token,
    control_token,
    dialect,
    keep_alive,
    listen_for_work,
    schema_version,
    wait_change,
)
from queuectl_tui.store.models import COMPLETED, DEAD, Job, Outcome, Worker, WorkerStatus
from queuectl_tui.visible import visible

if TYPE_CHECKING:
    from types import FrameType

RECHECK = 0.1  # a job seen due right after a claim found none is looked at again this late
BURST_HORIZON = 60.0  # --burst waits for jobs due this soon (retries in backoff, near schedules)
# Pruning old jobs (retention.py): a look (a read) this long after the start and then every
# PRUNE_EVERY seconds while nothing is due; while a pass goes on, a step's time is followed by
# PRUNE_BUSY_GAP times as long between steps when jobs run (about 5 % of one worker's time and
# of the write lock), by as long when idle.
PRUNE_FIRST = 1.0
PRUNE_EVERY = 60.0
PRUNE_BUSY_GAP = 19


class WorkerLoop:
    """A worker process's main loop: claim, run, record; heartbeats and signals beside it
    (``models.Worker`` is its row in the database)."""

    def __init__(
        self,
        queues: list[str] | None = None,
        *,
        burst: bool = False,
        echo: Callable[[str], None] | None = None,
        launcher: Launcher | None = None,
    ):
        self.queues = queues or None
        self.burst = burst
        self.echo = echo or (lambda line: None)
        self.stop_requests = 0
        self.interrupts = 0
        self.force = False
        self.row: Worker | None = None  # registered by run()
        self._said_stopping = False
        self._last_recovery = 0.0
        self._last_cancel_check = 0.0
        self._data_version: int | None = None
        self._environments: dict[str | None, dict[str, str]] = {}
        #: the running attempt, until its process is in the database
        self._unrecorded: engine.Attempt | None = None
        self.batch = Batch()  # held jobs and ended ones not recorded yet
        self._running: Job | None = None
        self.journal: engine.ProcessJournal | None = None
        #: Runs each job: by default one long-lived shell that forks each job (see launch.host).
        self.launcher: Launcher = launcher or JobHost()
        self.sampler = usage.Sampler()  # reads a running job's tree (started at the first need)
        self._meter: usage.Meter | None = None  # the running job's, once its shell exists
        self._sampled = False  # the sampler watches the running job
        self._job_paused = False  # the running job is recorded as paused (see _pause_seen)
        self.cfg: settings.Settings = settings.DEFAULTS  # the main loop's (the heartbeat
        self.cfg_version: str | None = None  # thread keeps its own): of the version seen
        self._look = True  # a claim may find something (else: wait until a job is due)
        self._fruitless = False  # the last claim found nothing, and no wait came since
        self.outdated: int | None = None  # the newer schema version found (see _check_schema)
        self.beats = Heartbeat(self)  # started by run()
        self._attempt: engine.Attempt | None = None  # the running one (the heartbeat reads it)
        self._revoked: tuple[engine.Attempt, str] | None = None  # taken back while it ran
        self._rejoining = threading.Lock()
        #: the lease this thread's connection is tuned for (keep_alive)
        self._tuned: float | None = None
        #: In ``_wait_for_work``: due schedules are the main loop's (its sleep ends at the next
        #: due time); otherwise the heartbeat thread's (a busy worker makes them too).
        self.waiting = False
        self._prune_at = time.monotonic() + PRUNE_FIRST  # the next pruning look (monotonic)
        #: (control token, ``schedules.next_run()``) as last read: see ``_next_schedule``
        self._schedule_seen: tuple[int, float | None] | None = None
        self.hooks = hooks.Hooks(self._hook_failed)  # on_completed / on_dead still running

    # -- signals --------------------------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_force)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        """A normal stop: finish the running job. Only a second Ctrl+C (SIGINT) forces; a
        repeated SIGTERM (``worker stop`` twice, or from the console) must not kill a job."""
        self.stop_requests += 1
        if signum == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts > 1:
                self.force = True
            elif self._running is not None:  # else it stops at once, and says so
                self._tell(f"stopping after {self._running.id} ends; Ctrl+C again kills it")

    def _tell(self, message: str) -> None:
        """A line on stderr from a signal handler: one os.write, no buffered stream (the
        main thread may be inside print on the same stream)."""
        worker = f"worker {self.row.id}: " if self.row is not None else ""
        try:
            os.write(
                2,
                f"{time.strftime('%H:%M:%S')} {worker}{visible(message)}\n".encode(
                    "utf-8", "replace"
                ),
            )
        except OSError:
            pass

    def _on_force(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requests += 1
        self.force = True

    @property
    def stopping(self) -> bool:
        return self.stop_requests > 0

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> int:
        """Claim, run, record, in batches while jobs are short (see ``batch``): held jobs are
        handed back when a job reaches its first tick (``launch.TICK``), when the worker stops,
        and before they could outlive half a lease (the time within which nobody may take them
        back)."""
        listen_for_work()  # other workers' claims and ends are no news to this one
        self.cfg_version, self.cfg = worker_settings()
        self._keep_alive()
        beats = self.beats
        beats.lease = self.cfg.lease
        beats.renewed_at = time.monotonic()
        engine.free_locks(engine.lost_workers())  # a frozen lost worker's: registering writes
        self.row = engine.register_worker(self.queues)
        self._say(f"worker {self.row.id} started (pid {self.row.pid})")
        errors = 0
        beats.start()
        try:
            self._recover(force=True)
            while not self.stopping:
                try:
                    self.hooks.reap()
                    if time.monotonic() >= self._prune_at:
                        self._prune()
                    if not self.batch.held and self._look:
                        self._changed()  # baseline first: a commit after this point wakes us
                        self._settle(claim=self.batch.size)
                    if self.batch.held:
                        self._run_next()
                        errors = 0
                        continue
                    self.batch.size = 1  # what comes after a pause may not be short
                    self._housekeeping(self.cfg)
                    if self.burst and not self._work_soon():
                        break
                    self._wait_for_work()
                    errors = 0
                except DatabaseError as exc:
                    # A lock held past the busy timeout, a full disk: wait and try again rather
                    # than die (a dead worker's job would have to wait for recovery). A schema
                    # upgraded under us fails statements for good: then stop (see _check_schema).
                    if self._check_schema():
                        break
                    errors += 1
                    self._look = True
                    self._complain(f"database error ({exc}); retrying")
                    self._recover_while_blocked()
                    self._pause(min(0.25 * 2**errors, 5.0))
        finally:
            try:  # what ran is recorded, what is held goes back (else recovery does both)
                self._settle(hand_back=True, persist=not self.force and self.outdated is None)
            except DatabaseError as exc:
                self._complain(f"could not record the last jobs ({exc}); leaving them to recovery")
            self.launcher.close()
            self.hooks.close()  # the last ends' hooks get their time, then go
            if self.journal is not None:
                self.journal.close()
            beats.stop.set()
            beats.join()
            try:
                retention.release(str(self.row.id))
                engine.unregister_worker(self.row.id)
            except DatabaseError as exc:
                self._complain(f"could not unregister ({exc}); recovery will clean up")
            self._say(f"worker {self.row.id} stopped")
        return 0 if self.outdated is None else 1

    def _check_schema(self) -> bool:
        """Has the database been upgraded past what this worker knows? Then its statements
        may fail or mean something else ("no query solution" for a changed index): it stops
        as on SIGTERM (the running job finishes and is recorded, held jobs go back, claims
        end) and exits saying why. Read by the heartbeat thread every second and after a
        failed statement: one row of ``meta``."""
        if self.outdated is None:
            try:
                version = schema_version()
            except (DatabaseError, ValueError):
                return False
            if version <= SCHEMA_VERSION:
                return False
            self.outdated = version
            self.stop_requests = max(self.stop_requests, 1)
            self._complain(
                f"the database was upgraded to schema version {version}, newer than "
                f"this queuectl-tui knows ({SCHEMA_VERSION}): stopping (its running "
                "job finishes; start workers of the new version)"
            )
        return True

    def _settle(self, *, claim: int = 0, hand_back: bool = False, persist: bool = True) -> None:
        """Record the ended jobs, hand back the held ones (``hand_back``) and claim up to
        ``claim`` more, in one transaction (``engine.settle``). With something to record it
        retries through database errors for as long as this worker lives (a live worker's job is
        never taken back by recovery, so its result is ours to record) unless not ``persist``."""
        batch = self.batch
        ended, given = batch.to_record(), list(batch.held) if hand_back else []
        if not ended and not given and not claim:
            return
        batch.resize(handing_back=bool(given))
        following = self._running or (batch.next_job() if not given else None)
        delay = 0.1
        while True:
            try:
                self._changed()  # baseline for the wait, should nothing be claimed
                before = self._data_version
                assert self.row is not None  # registered by run()
                states, claimed = engine.settle(
                    self.row,
                    ended,
                    claim=claim,
                    hand_back=given,
                    next_job=following.id if following else None,
                    max_backoff=self.cfg.max_backoff,
                )
                break
            except engine.Unregistered:  # presumed lost meanwhile: undone, claimed anew
                self._rejoin(self.row)
            except DatabaseError as exc:
                if not ended or not persist or self.force:
                    raise
                if self._check_schema():
                    if not claim:
                        raise  # the newer schema refuses even the record: recovery's to do
                    claim = 0  # what it fails on may be the claim: record alone, then stop
                    continue
                self._complain(f"database error recording {ended[0].job.id} ({exc}); retrying")
                self._recover_while_blocked()
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        for done, result, start, state in batch.recorded(states):
            if start:
                self._say(start)
            code = "-" if result.exit_code is None else result.exit_code
            self._say(
                f"finish {done.job.id}  attempt {done.attempt.number}  exit {code}  "
                f"{result.duration:.2f}s  -> {state or 'taken back by recovery'}"
            )
            if state in (COMPLETED, DEAD):
                self._hook(
                    hooks.JobEnd(
                        done.job.id,
                        state,
                        done.exit_code,
                        None if state == COMPLETED else done.error,
                        done.job.queue,
                        done.attempt.number,
                    )
                )
        start = batch.take_start_line()
        if start:
            self._say(start)
        if claim:  # found nothing: wait until a job is due before the next claim
            self._look, self._fruitless = bool(claimed), not claimed
        if given:
            batch.handed_back()
            self._look = True  # they are due: claim afresh
        if claimed:
            batch.hold(claimed, control_token(before), self.row.id)
            self._settings_seen(claimed[0][1].settings_version)

    def _run_next(self) -> None:
        """Run the first held job (unless the hold is too old to trust, or was claimed under an
        id this worker lost), then record it now or with the next claim."""
        if self._tuned != self.cfg.lease:
            self._keep_alive()
        batch = self.batch
        assert self.row is not None  # registered by run()
        if batch.untrusted(self.cfg.lease, self.row.id):
            self._settle(hand_back=True)  # frozen or starved that long: claim afresh
            return
        if self._paused():
            self._settle(hand_back=True)  # the next claim takes what is still open
            return
        job, attempt = batch.take()
        result = self._run_job(job, attempt)
        batch.end(
            engine.Ended(
                job,
                attempt,
                result.outcome,
                result.exit_code,
                result.error,
                result.tail,
                result.cost,
                time.time(),
            ),
            result,
        )
        if self.stopping:
            self._settle(hand_back=True, persist=not self.force)
            if not self.force:
                engine.heartbeat(self.row.id, status=WorkerStatus.STOPPING, current_job=None)
        elif not batch.held:
            self._settle(claim=batch.size)
        elif batch.record_due():
            self._settle()

    def _paused(self) -> bool:
        """Was a queue of the held jobs paused since their claim? Then none of them may start:
        ``pause`` has returned. Read only when another connection committed a change to
        queues or settings since the claim (the control token: a pause is one; on SQLite any
        commit), so a draining worker reads nothing here while others claim and finish."""
        token = control_token()
        if token is not None and token == self.batch.held_token:
            return False
        self.batch.held_token = token
        return engine.any_paused({job.queue for job, _ in self.batch.held})

    def _say(self, line: str) -> None:
        """Echo a line; a reader that went away silences the echo, never the worker."""
        try:
            self.echo(line)
        except (OSError, ValueError):
            self.echo = lambda line: None

    def _complain(self, message: str) -> None:
        assert self.row is not None  # registered by run()
        try:
            write_line(sys.stderr, f"{time.strftime('%H:%M:%S')} worker {self.row.id}: {message}")
        except (OSError, ValueError):
            to_devnull(sys.stderr)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.05)

    def _run_job(self, job: Job, attempt: engine.Attempt) -> Result:
        """Run one attempt to its end."""
        cfg = self.cfg
        attempt.started_at = time.time()  # a held job starts now, not at its claim
        self._running, self._attempt = job, attempt
        self._job_paused = False
        line = self.batch.starting(f"start  {job.id}  attempt {attempt.number}")
        if line:  # else said after the "finish" lines of the jobs before it, in order
            self._say(line)
        try:
            log_path = engine.log_path(attempt)
            assert log_path is not None  # a claimed attempt names its log file
            result = self.launcher.run(
                job.command,
                cwd=job.cwd,
                env=self._environment(job),
                log_path=log_path,
                max_log_bytes=cfg.max_log_bytes,
                timeout=job.timeout,
                on_start=lambda pid, started: self._started(attempt, pid, started),
                tick=lambda: self._tick(job, attempt, cfg),
                on_pause=lambda paused: self._pause_seen(job, attempt, paused),
                then=self._next_launch(),
            )
        except DatabaseError as exc:
            # The command never ran (it waits until its process is noted): hand the job back
            # without using up a retry.
            result = Result(
                Outcome.INTERRUPTED, None, f"not started: database error: {exc}", "", 0.0
            )
        except engine.Fenced as exc:  # taken back before it started: nothing ran
            why = str(exc) if isinstance(exc, _Stale) else "taken back by recovery"
            result = Result(Outcome.INTERRUPTED, None, f"not started: {why}", "", 0.0)
        except OSError as exc:  # the process could not be noted: the command never ran
            result = Result(Outcome.INTERRUPTED, None, f"not started: {exc}", "", 0.0)
        finally:
            self._running = self._attempt = None
            self._unrecorded = None
            if self._sampled:
                self.sampler.unwatch()
            meter, self._meter, self._sampled = self._meter, None, False
        if result.cost is not None:
            result.cost.merge(meter)
        return result

    def _next_launch(self) -> tuple[str, str, dict[str, str]] | None:
        """The held job that will run next, for the host to fork as soon as this one ends."""
        job = self.batch.next_job()
        if job is None or self.stopping:
            return None
        return job.command, job.cwd, self._environment(job)

    def _started(self, attempt: engine.Attempt, pid: int, started: float | None) -> None:
        """The job's shell exists and waits for our word: note it where recovery looks before
        the command may run; the heartbeat thread copies it into the database."""
        attempt.pid, attempt.pid_started = pid, started
        self._meter = usage.Meter(
            pid,
            started,
            host=self.launcher.pid,
            worker=os.getpid() if procs.is_subreaper() else None,
        )
        try:
            if self.journal is None:
                self.journal = engine.ProcessJournal()
            self.journal.note(attempt, pid, started)
        except OSError:  # no journal here: the database it is, before the command runs
            engine.record_process(attempt, pid, started)
        else:
            self._unrecorded = attempt
        # Checked after the note: a recovery that missed the note (it read the journal before)
        # found this worker presumed lost, which this check sees too; the gate then stays shut.
        stale = self._stale(attempt, starting=True)
        if stale is not None:
            raise _Stale(stale)

    def _stale(self, attempt: engine.Attempt, *, starting: bool = False) -> str | None:
        """Why ``attempt`` may run elsewhere by now, so that this worker must not start it, or
        must kill it: it was taken back, or this worker's lease has passed without a heartbeat.
        A running job is killed for a lapsed lease only where another host may take it back
        (PostgreSQL): on this host a live worker's job is never taken back for a late heartbeat,
        but one that was stopped past its lease may have been, so a job's start checks it."""
        revoked = self._revoked
        if revoked is not None and revoked[0] is attempt:
            return revoked[1]
        silent, lease = time.monotonic() - self.beats.renewed_at, self.beats.lease
        if silent > lease and (starting or dialect().many_hosts):
            return f"its worker lost its lease (no heartbeat for {silent:.1f}s, lease {lease:g}s)"
        return None

    def _environment(self, job: Job) -> dict[str, str]:
        """Jobs of one enqueuer share an environment: read it once per worker."""
        env = self._environments.get(job.env_digest)
        if env is None:
            if len(self._environments) > 16:
                self._environments.clear()
            env = self._environments[job.env_digest] = engine.job_environment(job)
        return env

    def _pause_seen(self, job: Job, attempt: engine.Attempt, paused: bool) -> None:
        """At every tick: is the running job stopped (SIGSTOP, ``pause JOB_ID``)? A stopped job
        is paused, not ended: the worker keeps waiting for it (its timeout keeps counting) and
        records the change on the job (after a database error, at the next tick)."""
        if paused == self._job_paused:
            return
        try:
            engine.set_paused(attempt, paused)
        except DatabaseError:
            return
        self._job_paused = paused
        self._say(f"{'paused ' if paused else 'resumed'} {job.id}  attempt {attempt.number}")

    def _tick(self, job: Job, attempt: engine.Attempt, cfg: settings.Settings) -> Stop | None:
        """Called while a job runs: cancellation, stops and forced stops, and a job taken back
        or a lease lapsed (``_stale``). A database error here skips one tick; it never disturbs
        the running job; nor is the database tried while heartbeats fail (the check above
        must come every tick)."""
        if self.force:
            return INTERRUPT
        self.hooks.reap()  # a long job: the hooks of the ends before it still end on time
        stale = self._stale(attempt)
        if stale is not None:
            return Stop(Outcome.LOST, f"{stale}; killed by its worker")
        if not self._sampled and self._meter is not None:
            self._sampled = True  # past its first tick: worth sampling (a short job never is)
            self.sampler.watch(self._meter)
        if self.beats.failing:
            return None
        if self.batch.busy:  # not a short job: others wait for nothing behind it
            try:
                self._settle(hand_back=True, persist=False)
            except DatabaseError:
                pass  # the next tick tries again
        try:
            return self._check_in(job, cfg)
        except DatabaseError:
            return None

    def _check_in(self, job: Job, cfg: settings.Settings) -> Stop | None:
        now = time.time()
        if self.stopping and not self._said_stopping:
            assert self.row is not None  # registered by run()
            engine.heartbeat(self.row.id, status=WorkerStatus.STOPPING, current_job=job.id)
            self._said_stopping = True
        if now - self._last_cancel_check >= 0.2:
            self._last_cancel_check = now
            if self._changed() and engine.cancel_requested(job):
                return CANCEL
        return None

    def _housekeeping(self, cfg: settings.Settings) -> None:
        self._recover(interval=max(2 * cfg.heartbeat_interval, 1.0))

    def _hook(self, end: hooks.JobEnd) -> None:
        """Run the hook of this end, if one is set (its end is committed already)."""
        name = "on_completed" if end.state == COMPLETED else "on_dead"
        command = getattr(self.cfg, name)
        if command:
            self.hooks.fire(name, command, end)

    def _hook_failed(self, name: str, end: hooks.JobEnd, why: str) -> None:
        self._complain(f"hook {name} for {end.job_id} failed: {why}")
        try:
            hooks.record_failure(name, end, why, worker=self.row.id if self.row else None)
        except DatabaseError:
            pass  # the line above says it

    def _next_housework(self) -> float:
        """When (time.time) the idle wait must end for pruning or a running hook."""
        until = self._prune_at - time.monotonic()
        if self.hooks.running:
            until = min(until, 0.1)  # reaped promptly: no zombie waits for the poll
        return time.time() + max(0.0, until)

    def _prune(self) -> None:
        """One step of pruning old jobs, if any are due and no other worker prunes (a look that
        finds nothing is a read: it writes nothing and wakes no one)."""
        busy = self.batch.busy
        started = time.monotonic()
        assert self.row is not None  # registered by run()
        try:
            went = retention.prune_step(self.cfg, holder=str(self.row.id))
            if went == 0:  # nothing to prune, and nobody else prunes: the logs' cap
                dropped = retention.cap_logs(self.cfg.max_logs_total)
                if dropped:
                    self._say(
                        f"dropped {dropped} old log file(s): the logs directory was past "
                        f"max_logs_total ({self.cfg.max_logs_total} bytes)"
                    )
        except DatabaseError as exc:
            self._complain(f"pruning old jobs failed ({exc}); trying again later")
            went = 0
        now = time.monotonic()
        if went:
            self._prune_at = now + max(0.005, (now - started) * (PRUNE_BUSY_GAP if busy else 1))
        else:  # nothing due, or another worker prunes (then: when its lease would lapse)
            self._prune_at = now + (PRUNE_EVERY if went == 0 else retention.LEASE_SECONDS)

    def beat(self) -> None:
        """One heartbeat (from the heartbeat thread). The lease counts as renewed from the
        moment the heartbeat was sent, as others see it."""
        attempt = self._unrecorded
        if attempt is not None:  # the console and `ps` find a running job's tree by its PID
            assert attempt.pid is not None  # _started() set it before noting the attempt
            try:
                engine.record_process(attempt, attempt.pid, attempt.pid_started)
            except engine.Fenced:
                self._revoke(attempt, "its claim was taken back")
            if self._unrecorded is attempt:
                self._unrecorded = None
        row, sent = self.row, time.monotonic()
        assert row is not None  # registered by run() before the heartbeat thread starts
        if not engine.heartbeat(row.id):
            # Our row was removed (we were presumed lost): our jobs were taken back, or will be
            # (a claim under a missing row looks abandoned). Kill the running one; come back
            # under a new identity.
            self._revoke(self._attempt, f"worker {row.id} was presumed lost")
            self._rejoin(row)
        self.beats.renewed_at = max(self.beats.renewed_at, sent)

    def _revoke(self, attempt: engine.Attempt | None, why: str) -> None:
        """``attempt`` is no longer this worker's to run: the next tick kills it."""
        if attempt is not None:
            self._revoked = (attempt, why)

    def _rejoin(self, row: Worker | None) -> None:
        """Register again under a new id, once (both threads may find the row gone)."""
        with self._rejoining:
            if self.row is row:
                sent = time.monotonic()
                self.row = engine.register_worker(self.queues)  # a fresh lease
                self.beats.renewed_at = max(self.beats.renewed_at, sent)
                self._complain(f"was presumed lost; registered again as worker {self.row.id}")

    def _keep_alive(self) -> None:
        """This thread's connection gives up a silent network within the lease's bound."""
        self._tuned = self.cfg.lease
        keep_alive(self._tuned)

    def _recover(self, *, interval: float = 0.0, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_recovery >= interval:
            self._last_recovery = now
            for job_id in engine.recover_lost(now=now):
                self._say(f"recovered {job_id} from a lost worker")
                if self.cfg.on_dead:  # sent to the DLQ by this recovery: its hook runs here
                    job = Job.get_or_none(Job.id == job_id)
                    if job is not None and job.state == DEAD:
                        self._hook(
                            hooks.JobEnd(
                                job.id,
                                DEAD,
                                job.exit_code,
                                job.last_error,
                                job.queue,
                                engine.attempts_run(job),
                            )
                        )

    def _recover_while_blocked(self) -> None:
        """Between retries of a write that failed: a worker frozen inside its transaction holds
        the locks every write waits for, and once it is presumed lost recovery frees them
        (``engine.free_locks``); a busy or blocked worker must not wait for an idle one to."""
        try:
            self._recover(interval=max(2 * self.cfg.heartbeat_interval, 1.0))
        except DatabaseError:
            pass  # still blocked: the next retry tries again

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

    def _settings_seen(self, version: str | None) -> None:
        """A claim or a look for work saw this version of the settings: reload on a change."""
        if version != self.cfg_version:
            self.cfg_version, self.cfg = worker_settings()

    def _wait_for_work(self) -> None:
        """Sleep until a job is due (then ``_look`` is set) or ``poll_interval`` passes, or
        until a schedule is due: then make its jobs (``schedules.enqueue_due``) and look. Every
        commit of another session wakes the sleep (heartbeats too); each wake-up costs one
        read, ``engine.look_for_work`` (and ``schedules.next_run`` when schedules may have
        changed: ``_next_schedule``), never a write."""
        deadline = min(time.time() + self.cfg.poll_interval, self._next_housework())
        fruitless, self._fruitless = self._fruitless, False
        self.waiting = True
        try:
            while not self.stopping:
                changed = self._changed()  # baseline first: a commit after this point wakes us
                due, version = engine.look_for_work(self.queues)
                slot = self._next_schedule()
                if version != self.cfg_version:
                    self._settings_seen(version)
                    deadline = min(deadline, time.time() + self.cfg.poll_interval)
                now = time.time()
                if slot is not None and slot <= now:
                    self.make_scheduled(now)
                    self._look = True
                    return
                if due is not None and due <= now:
                    if changed or not fruitless:
                        self._look = True
                        return
                    # Due, yet the claim just before found nothing and nothing changed since (a
                    # row another session holds): look again after a change or in a moment.
                    until = min(deadline, now + RECHECK)
                elif now >= deadline:
                    return
                else:
                    until = deadline if due is None else min(deadline, due)
                if slot is not None:
                    until = min(until, slot)
                fruitless = False
                self._sleep_until_change(until)
        finally:
            self.waiting = False

    def _next_schedule(self) -> float | None:
        """``schedules.next_run()``, read again only when it may have changed: another session
        changed a schedule (on PostgreSQL its NOTIFY moves the control token, which a new job
        or another worker's heartbeat does not; on SQLite every commit moves it), or this
        worker made scheduled jobs. A wake-up by a new job goes from its NOTIFY to the claim
        with one read less."""
        token = control_token(self._data_version)  # baseline first, then the read
        seen = self._schedule_seen
        if token is not None and seen is not None and seen[0] == token:
            return seen[1]
        slot = schedules.next_run()
        self._schedule_seen = None if token is None else (token, slot)
        return slot

    def make_scheduled(self, now: float | None = None) -> None:
        """Make the jobs of the schedules that are due (nothing due: one read, no write), and
        say what was skipped in this worker's log."""
        self._schedule_seen = None  # this session's own writes move no token: read it again
        for note in schedules.enqueue_due(now=now, grace=self.cfg.lease).notes:
            self._say(note)

    def _sleep_until_change(self, until: float) -> None:
        """Sleep until ``until`` (time.time) or another session's commit, whichever first."""
        signalled = self._data_version is not None
        listening = signalled and dialect().listens  # PostgreSQL: NOTIFY wakes the wait
        while time.time() < until and not self.stopping:
            if listening:  # slices short enough to notice a stop signal
                wait_change(min(0.25, until - time.time()))
            elif signalled:  # SQLite: woken by a write to the -wal file (see wake)
                wake.sleep(until - time.time())
            else:
                time.sleep(0.05)
            if signalled and self._changed():
                wake.noticed()
                return


class _Stale(engine.Fenced):
    """The job must not start: this worker may have been presumed lost (see ``_stale``)."""


def run_worker(
    queues: list[str] | None = None,
    *,
    burst: bool = False,
    echo: bool = False,
    log: str | None = None,
) -> int:
    """``echo``: one line per job on stdout; ``log``: stdout is that shared, rotated log."""
    worker = WorkerLoop(
        queues, burst=burst, echo=WorkersLog(log) if log else print_line if echo else None
    )
    worker.install_signals()
    procs.become_subreaper()  # orphans of our jobs come back to us, to be killed after each job
    try:
        return worker.run()
    except KeyboardInterrupt:
        return 130
    finally:
        procs.kill_leftovers()  # a worker leaves nothing of its jobs behind, however it ends
        sys.stdout.flush()
