"""The heartbeat thread: a worker's lease, renewed beside whatever its main loop does.

Heartbeats come from a thread of their own with its own database connection, so that a long
job loop step, CPU starvation or a write lock held by someone else never silences them; that
thread checks the settings' version too, so a lease changed while a job runs applies at once.
What a beat does (record the running job's process, renew the row, rejoin when presumed lost)
is the worker's (``WorkerLoop.beat``); this thread decides when.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from peewee import DatabaseError

from queuectl_tui import settings
from queuectl_tui.store import keep_alive
from queuectl_tui.store.models import database

if TYPE_CHECKING:
    from queuectl_tui.run.loop import WorkerLoop

SETTINGS_REFRESH = 1.0  # how often the heartbeat thread checks the settings' version, seconds
BEAT_RETRY = 0.25  # after a failed heartbeat, the next try comes this soon (or sooner), seconds


def worker_settings() -> tuple[str | None, settings.Settings]:
    """(version, settings) as a worker applies them: it beats at least three times per lease,
    whatever heartbeat_interval says, so that a healthy worker is never presumed lost (which
    would have its running job killed and run again) when the lease is set shorter than the
    interval."""
    version, cfg = settings.load_versioned()
    return version, cfg._replace(heartbeat_interval=min(cfg.heartbeat_interval, cfg.lease / 3))


class Heartbeat(threading.Thread):
    """Beats every min(heartbeat_interval, lease / 3), checking the settings' version at least
    every SETTINGS_REFRESH seconds (its own copy of the settings: the main loop's changes only
    in the main loop), on this thread's own connection (peewee keeps one per thread), whose
    statements may take no longer than ``db.unanswered_limit(lease)``. A failed beat is tried
    again within BEAT_RETRY seconds, on a new connection if the old one is gone. While the main
    loop is not waiting for work, it also makes the jobs of due schedules."""

    def __init__(self, worker: WorkerLoop):
        super().__init__(daemon=True, name="queuectl-heartbeat")
        self.worker = worker
        self.stop = threading.Event()
        self.renewed_at = time.monotonic()  # when the last heartbeat that got through was sent
        self.failing = False  # the last one failed: the database is out of reach
        self.lease = worker.cfg.lease  # the lease as this thread last read it (others use it)
        self.schedules_failing = False

    def run(self) -> None:
        worker = self.worker
        # Its first round is one period away: the worker has just read the schema and the
        # settings and registered with a fresh heartbeat, and a worker whose burst is over by
        # then never opens this thread's connection (a session and a server process).
        started = time.monotonic()
        read_at, beat_at, slots_at, version = started, started, started, worker.cfg_version
        interval, lease = worker.cfg.heartbeat_interval, worker.cfg.lease
        self.lease = lease
        keep_alive(lease, bound_statements=True)  # before this thread's first connection
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                try:
                    if not self.failing and (read_at is None or now - read_at >= SETTINGS_REFRESH):
                        read_at = now
                        worker._check_schema()  # first: a newer schema may fail the rest
                        if settings.version() != version:
                            version, cfg = worker_settings()
                            interval = cfg.heartbeat_interval
                            if cfg.lease != lease:
                                lease = self.lease = cfg.lease  # the stale check reads it
                                keep_alive(lease, bound_statements=True)
                    if self.failing or beat_at is None or now - beat_at >= interval:
                        beat_at = now
                        worker.beat()
                        if self.failing:
                            self.failing = False
                            worker._complain("heartbeat renewed after the failure")
                    if (
                        not self.failing
                        and not worker.waiting
                        and (slots_at is None or now - slots_at >= SETTINGS_REFRESH)
                    ):
                        slots_at = now
                        self.make_scheduled()
                except DatabaseError as exc:  # out of reach, or a lock held too long: again
                    if not self.failing:
                        worker._complain(f"heartbeat failed ({exc}); retrying")
                    self.failing = True
                self.stop.wait(
                    min(interval, BEAT_RETRY) if self.failing else min(interval, SETTINGS_REFRESH)
                )
        finally:
            if database.obj is not None:
                database.close()  # this thread's connection only

    def make_scheduled(self) -> None:
        """A busy worker makes due schedules' jobs from here (the idle one's sleep ends at
        them): within a second of their due time. A database error here is not a failed
        heartbeat: said once, tried again at the next turn."""
        try:
            self.worker.make_scheduled()
            self.schedules_failing = False
        except DatabaseError as exc:
            if not self.schedules_failing:
                self.worker._complain(f"could not make scheduled jobs ({exc}); retrying")
            self.schedules_failing = True
