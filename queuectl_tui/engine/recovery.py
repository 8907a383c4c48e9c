"""Recovery of lost workers' jobs, and the process journal that lets it find their processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from queuectl_tui import procs, settings
from queuectl_tui.paths import create_private_file
from queuectl_tui.store import (
    lock_holders,
)
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import (
    PENDING,
    PROCESSING,
    Attempt,
    Job,
    Outcome,
    Worker,
)

if TYPE_CHECKING:
    from pathlib import Path
from queuectl_tui.engine.chains import cascade_pending, finish_cascades
from queuectl_tui.engine.claims import finish
from queuectl_tui.engine.reads import logs_dir
from queuectl_tui.engine.workers import worker_alive


class ProcessJournal:
    """Where a worker notes each job's shell before the command may run: one small file per
    worker process beside the logs, a ring of fixed-size records written in place (one
    ``pwrite`` per job), rather than a database commit on the worker's hot path (that commit,
    with its wait for the write lock, halved the drain rate of two workers). Recovery on this
    host reads it back (``noted_process``); the database gets the PID from the heartbeat
    thread (``record_process``) and, at the latest, with the attempt's end. The ring is longer
    than the attempts a worker may have ended but not yet recorded (its batch) plus the one it
    runs, so no note is overwritten before the database has the attempt's end."""

    def __init__(self) -> None:
        me, started = os.getpid(), procs.start_time(os.getpid())
        # Named by PID and start time: a PID reused later never takes over a journal that
        # recovery may still need.
        self.path = logs_dir() / f"worker{me}-{int((started or 0) * 100)}.pids"
        self.owner = f"{me} {started!r}"
        self.fd = create_private_file(self.path)
        self.notes = 0

    def note(self, attempt: Attempt, pid: int, started: float | None) -> None:
        # By claim token as well as attempt seq: seqs (and numbers) are given again after
        # ``clear``/``delete``, so a note of an old attempt, still in a live worker's ring, could
        # otherwise be taken for a new attempt's and send recovery to a long-gone process.
        record = f"{attempt.seq} {attempt.claim_token} {pid} {started!r} {self.owner}\n"
        slot = self.notes % JOURNAL_SLOTS
        os.pwrite(self.fd, record.ljust(_JOURNAL_RECORD).encode(), slot * _JOURNAL_RECORD)
        self.notes += 1

    def close(self) -> None:
        os.close(self.fd)
        try:
            self.path.unlink()
        except OSError:
            pass


_JOURNAL_RECORD = 128
JOURNAL_SLOTS = 64  # > worker.BATCH_MAX + 1


#: How much earlier than its attempt's claim a noted process may seem to have started: process
#: start times are the boot time (whole seconds) plus clock ticks, claim times the wall clock.
_START_SLACK = 2.0


def noted_process(attempt: Attempt) -> tuple[int, float | None] | None:
    """The process a worker of this host noted for this attempt (this claim: its token), or
    None if it never noted one (the command never ran). A process that started before the
    attempt was claimed cannot be its job, whatever the note says (a note of the previous
    format, which has no token, is only trusted that far)."""
    for _path, notes, _owner in _journals():
        found = notes.get((attempt.seq, attempt.claim_token)) or notes.get((attempt.seq, None))
        if found is None:
            continue
        pid, started = found
        if (
            started is not None
            and attempt.started_at is not None
            and started < attempt.started_at - _START_SLACK
        ):
            continue  # an older run's process (its attempt seq given again since)
        return found
    return None


def drop_dead_journals() -> None:
    """Remove the journals of worker processes that are gone once their last attempt has been
    recovered (a SIGKILLed worker cannot remove its own). The notes that decide it are read
    after the owner was found gone: read before, they could miss one the owner wrote just
    before it died, and its job, which ran, would then be recovered as never started."""
    for path, _notes, (owner, owner_started) in _journals():
        if procs.same_process(owner, owner_started) is not None:
            continue
        read = _read_journal(path)
        if read is None:
            continue
        notes = read[0]
        tokens = [token for _, token in notes if token is not None]
        seqs = [seq for seq, token in notes if token is None]
        if (
            Attempt.select()
            .where(Attempt.claim_token.in_(tokens or [None]), Attempt.outcome.is_null())
            .exists()
            or Attempt.select()
            .where(Attempt.seq.in_(seqs or [None]), Attempt.outcome.is_null())
            .exists()
        ):
            continue
        try:
            path.unlink()
        except OSError:
            pass


def _journals() -> Iterator[
    tuple[Path, dict[tuple[int, int | None], tuple[int, float | None]], tuple[int, float | None]]
]:
    """(path, {(attempt seq, claim token): (job pid, its start time)}, (worker pid, its start
    time)) of each worker journal here that can be read. A record without a token (written by
    the previous version) has None for it."""
    for path in logs_dir().glob("worker*.pids"):
        read = _read_journal(path)
        if read is not None:
            yield path, *read


def _read_journal(
    path: Path,
) -> tuple[dict[tuple[int, int | None], tuple[int, float | None]], tuple[int, float | None]] | None:
    """A journal's notes and owner, or None if it cannot be read or holds no note."""

    def when(text: str) -> float | None:
        return None if text == "None" else float(text)

    try:
        data = path.read_bytes()
    except OSError:
        return None
    notes, owner = {}, None
    for at in range(0, len(data), _JOURNAL_RECORD):
        try:
            fields = data[at : at + _JOURNAL_RECORD].split()
            if len(fields) == 5:  # seq pid started worker worker_started: no token
                fields.insert(1, b"None")
            seq, token, pid, started, worker, worker_started = fields
            notes[(int(seq), None if token == b"None" else int(token))] = (
                int(pid),
                when(started.decode()),
            )
            owner = (int(worker), when(worker_started.decode()))
        except ValueError:
            continue  # a slot never written (zeros) or torn
    return None if owner is None else (notes, owner)


def recover_lost(*, now: float | None = None) -> list[str]:
    """Take back every job held by a worker that is gone; kill its process tree if it is here.

    A worker is gone when its row is missing or ``worker_alive`` says so. Each such job whose
    command started gets a failed attempt "worker lost" and follows the normal retry/DLQ path;
    one whose command never started goes back to pending as "interrupted", without using a
    retry. "Never started" is known only of a worker of this host whose process has exited:
    its job's shell runs the command only once the worker has noted the process (in its
    journal or the database), and a worker that has exited notes nothing more, so a journal
    read after that without the note is final. A worker presumed lost whose process still
    exists (stopped, or whose row is gone) or that runs on another host might still let its job
    start: its job is charged "worker lost" like one that ran (at least once).
    """
    now = time.time() if now is None else now
    lease = settings.get("lease")
    # keyed by id, looked up by a job's worker_id (None: no worker)
    lost: dict[int | None, Worker] = {w.id: w for w in lost_workers(now=now, lease=lease)}
    if lost:
        free_locks(lost.values())  # before the first write here, which would wait for them
    here = procs.hostname()  # checked before any journal is read (see above)
    exited = {
        w.id
        for w in lost.values()
        if w.host == here and procs.process_status(w.pid, w.proc_started) is None
    }
    # Read the candidates to the end first: a SELECT left open across the loop pins an old
    # snapshot, and finish()'s BEGIN IMMEDIATE on it fails at once with "database is locked"
    # (SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out) whenever anyone committed.
    candidates = list(Job.select().where(Job.state == PROCESSING))
    recovered = []
    for job in candidates:
        if job.worker_id not in lost and Worker.select().where(Worker.id == job.worker_id).exists():
            continue
        # The attempt of the claim we read, not merely the latest: while this loop kills earlier
        # trees the job may have been recovered elsewhere and claimed again by a live worker,
        # whose run must be neither killed nor marked lost (finish is fenced on the token).
        attempt = (
            Attempt.select()
            .where(Attempt.job == job.seq, Attempt.claim_token == job.claim_token)
            .order_by(Attempt.number.desc())
            .first()
        )
        if attempt is None:  # claimed by a worker that died before its attempt row existed
            Job.update(
                state=PENDING,
                worker_id=None,
                attempts=Job.attempts - 1,  # claim's +1
                claim_token=None,
                updated_at=now,
            ).where(
                Job.seq == job.seq, Job.state == PROCESSING, Job.claim_token == job.claim_token
            ).execute()
            continue
        local = attempt.host == procs.hostname()
        if attempt.pid is None and local:
            noted = noted_process(attempt)
            if noted is not None:
                attempt.pid, attempt.pid_started = noted
        if attempt.pid is None and local and job.worker_id in exited:
            # The command never started (the runner waits for its process to be noted):
            # nothing ran, nothing to kill, no retry used.
            outcome = Outcome.CANCELLED if job.cancel_requested else Outcome.INTERRUPTED
            why = (
                "cancelled"
                if job.cancel_requested
                else "not started: worker lost before starting it"
            )
            if finish(job, attempt, outcome=outcome, error=why, now=now) is not None:
                recovered.append(job.id)
            continue
        if local:
            procs.kill_tree(attempt.pid, attempt.pid_started)
        worker = lost.get(job.worker_id)
        why = "worker lost"
        if worker is not None:
            silent = now - worker.heartbeat_at
            why += f" (worker {worker.id}, pid {worker.pid} on {worker.host}: " + (
                f"no heartbeat for {silent:.0f}s)" if silent > lease else "process gone)"
            )
        if attempt.pid is None and local:
            why += " before its job's process was noted; it may have started"
        # A cancel asked of a worker that was gone already: recovery carries it out.
        outcome, why = (
            (Outcome.CANCELLED, "cancelled") if job.cancel_requested else (Outcome.LOST, why)
        )
        if finish(job, attempt, outcome=outcome, error=why, now=now) is not None:
            recovered.append(job.id)
    if lost:
        Worker.delete().where(Worker.id.in_(list(lost))).execute()
        drop_dead_journals()
    if cascade_pending():  # a cascade cut short (its process died between two steps)
        finish_cascades()
    return recovered


def lost_workers(*, now: float | None = None, lease: float | None = None) -> list[Worker]:
    """The worker rows ``worker_alive`` says are lost (a read: no write lock needed)."""
    lease = settings.get("lease") if lease is None else lease
    return [w for w in Worker.select() if not worker_alive(w, now=now, lease=lease)]


def free_locks(workers: Iterable[Worker]) -> list[int]:
    """Kill the processes of these lost workers that run on this host and still hold a write
    lock of the SQLite database (SQLite's own, or the writers' lock): a worker frozen (SIGSTOP,
    Ctrl+Z) inside its write transaction keeps both, and every writer, recovery's own writes
    included, would wait for it in vain. Such a worker is lost already (frozen past the lease),
    is known by PID and start time (no other process is ever signalled), and dies with its
    locks; one frozen outside a transaction holds none and is left to resume (it is fenced
    out). Returns the PIDs killed. PostgreSQL ends a session idle in a transaction itself."""
    here = [w for w in workers if w.host == procs.hostname()]
    if not here or not dialect().frees_frozen_writers:
        return []
    holders = lock_holders()
    killed = []
    for worker in here:
        if worker.pid in holders and procs.process_status(worker.pid, worker.proc_started):
            procs.kill_tree(worker.pid, worker.proc_started, search=False)
            killed.append(worker.pid)
    return killed
