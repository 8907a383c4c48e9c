"""Workers: registration, heartbeats, and whether a worker is alive or busy."""

from __future__ import annotations

import os
import time
from typing import Any

from peewee import fn

from queuectl_tui import procs, settings
from queuectl_tui.errors import QueueError
from queuectl_tui.store import (
    LAST_WORKER_ID,
    fold,
    write_transaction,
)
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import (
    Meta,
    Worker,
    WorkerStatus,
)


class Fenced(QueueError):
    """The job is no longer held by this claim (recovered, maybe claimed again meanwhile)."""


class Unregistered(Fenced):
    """The worker's row is gone: it was presumed lost and its jobs taken back. It may claim
    nothing more under that id (a job claimed so would look abandoned to every recovery, and
    run twice); it registers again under a new one."""


def register_worker(
    queues: list[str] | None = None, *, pid: int | None = None, now: float | None = None
) -> Worker:
    """A new worker row under an id no worker ever had (taken from a counter in ``meta``): a
    worker presumed lost whose row was deleted can then never update, nor be mistaken for, a
    newer one, and every job and attempt names exactly one worker process. (It changes no
    count, so it does not fold them: the heartbeats do.)"""
    now = time.time() if now is None else now
    pid = pid or os.getpid()
    with write_transaction(fold_after=False):
        row = Meta.get_or_none(Meta.key == LAST_WORKER_ID)
        last = int(row.value) if row else (Worker.select(fn.MAX(Worker.id)).scalar() or 0)
        last = max(last, Worker.select(fn.MAX(Worker.id)).scalar() or 0) + 1
        Meta.insert(key=LAST_WORKER_ID, value=str(last)).on_conflict(
            conflict_target=[Meta.key], update={Meta.value: str(last)}
        ).execute()
        return Worker.create(
            id=last,
            host=procs.hostname(),
            pid=pid,
            proc_started=procs.start_time(pid) or now,
            started_at=now,
            heartbeat_at=now,
            status=WorkerStatus.IDLE,
            queues=",".join(queues) if queues else None,
        )


def heartbeat(
    worker_id: int,
    *,
    status: str | None = None,
    current_job: str | None = None,
    now: float | None = None,
) -> bool:
    """Record that the worker is alive; False when its row is gone (it was presumed lost: the
    worker must register again, under a new id, since ids are never reused)."""
    now = time.time() if now is None else now
    if status is None:  # one statement (on PostgreSQL it also folds, as below)
        return dialect().run("heartbeat", (now, worker_id)).rowcount == 1
    values: dict[str, Any] = {"heartbeat_at": now, "status": status, "current_job": current_job}
    alive = Worker.update(**values).where(Worker.id == worker_id).execute() == 1
    fold()  # PostgreSQL: the sessions' count rows into one per key (a try-lock; else nothing)
    return alive


def unregister_worker(worker_id: int) -> None:
    Worker.delete().where(Worker.id == worker_id).execute()


#: Process states of a worker that cannot be working: frozen (SIGSTOP, Ctrl+Z, a debugger) or
#: exited. Any other state (running, sleeping, waiting on disk) is a worker at work.
STOPPED_STATUSES = ("stopped", "tracing-stop", "zombie", "dead")  # psutil.STATUS_* names


def worker_alive(worker: Worker, *, now: float | None = None, lease: float | None = None) -> bool:
    """Is this worker alive (so its job must be left alone)?

    On this host: lost when its process (PID and start time) is gone; alive while that process
    runs normally, even if its heartbeat is older than the lease (on the same host a late
    heartbeat means a write lock held by someone else or CPU starvation, not a dead worker:
    killing its job would be wrong); lost when the heartbeat is older than the lease AND the
    process is not running normally (stopped by SIGSTOP/Ctrl+Z, a zombie).
    On another host, where its process cannot be seen: alive = heartbeat within the lease.
    """
    now = time.time() if now is None else now
    lease = settings.get("lease") if lease is None else lease
    late = now - worker.heartbeat_at > lease
    if worker.host != procs.hostname():
        return not late
    status = procs.process_status(worker.pid, worker.proc_started)
    if status is None:
        return False
    return not late or status not in STOPPED_STATUSES


def busy(worker: Worker) -> bool:
    """Running a job: busy, or stopping (after a normal stop) while it finishes its job."""
    return worker.status == WorkerStatus.BUSY or (
        worker.status == WorkerStatus.STOPPING and worker.current_job is not None
    )


def live_workers(now: float | None = None) -> list[Worker]:
    lease = settings.get("lease")
    return [w for w in Worker.select().order_by(Worker.id) if worker_alive(w, now=now, lease=lease)]
