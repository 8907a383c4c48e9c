"""Operator actions on jobs: retry, cancel, delete, clear, restart, edit, and the dead-letter
queue's retry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from peewee import chunked

from queuectl_tui.engine.chains import _settle, fail_dependents, unchain
from queuectl_tui.engine.common import IN_CHUNK, NOT_RUNNING
from queuectl_tui.engine.reads import logs_dir
from queuectl_tui.engine.recovery import recover_lost
from queuectl_tui.errors import InvalidInput, NotFound, QueueError
from queuectl_tui.spec import normalize
from queuectl_tui.store import (
    write_transaction,
)
from queuectl_tui.store.models import (
    CLAIMABLE,
    COMPLETED,
    DEAD,
    FAILED,
    PENDING,
    PROCESSING,
    Attempt,
    Dependency,
    Environment,
    Job,
)


def get_job(job_id: str) -> Job:
    job = Job.get_or_none(Job.id == job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}")
    return job


def retry(job_id: str, *, now: float | None = None) -> Job:
    """Run a failed job now, or bring a dead one back from the DLQ."""
    job = get_job(job_id)
    if job.state == DEAD:
        return dlq_retry([job_id], now=now)[0]
    if job.state != FAILED:
        raise QueueError(f"job {job_id!r} is {job.state}; only failed or dead jobs can be retried")
    now = time.time() if now is None else now
    with write_transaction():
        Job.update(run_at=now, updated_at=now).where(
            Job.seq == job.seq, Job.state == FAILED
        ).execute()
        _settle([job.seq], now=now)  # its dependencies are checked again
    return get_job(job_id)


def dlq_retry(
    job_ids: list[str] | None = None,
    *,
    all_dead: bool = False,
    timeout: float | None = None,
    max_retries: int | None = None,
    now: float | None = None,
    no_timeout: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Job]:
    """Move dead jobs back to pending with their attempts reset (``timeout``: a new time
    limit; ``no_timeout``: none at all; ``progress`` hears how many moved, chunk by chunk)."""
    now = time.time() if now is None else now
    values: dict[str, Any] = {
        "state": PENDING,
        "attempts": 0,
        "run_at": now,
        "updated_at": now,
        "finished_at": None,
        "last_error": None,
        "exit_code": None,
        "cancel_requested": False,
    }
    if timeout is not None or no_timeout:
        values["timeout"] = timeout
    if max_retries is not None:
        values["max_retries"] = max_retries
    with write_transaction():
        if all_dead:
            seqs = [j.seq for j in Job.select(Job.seq).where(Job.state == DEAD)]
        else:
            seqs = []
            for job_id in job_ids or []:
                job = get_job(job_id)
                if job.state != DEAD:
                    raise QueueError(f"job {job_id!r} is {job.state}, not in the DLQ")
                seqs.append(job.seq)
        for chunk in chunked(seqs, IN_CHUNK):
            Job.update(**values).where(Job.seq.in_(chunk)).execute()
            if progress is not None:
                progress(len(chunk))
        _settle(seqs, now=now)  # their dependencies are checked again
    return [
        job for chunk in chunked(seqs, IN_CHUNK) for job in Job.select().where(Job.seq.in_(chunk))
    ]


def cancel(job_id: str, *, now: float | None = None) -> Job:
    """Pending or failed: straight to the DLQ as "cancelled". Running: its worker is asked to
    kill the process tree, and records the cancellation itself."""
    now = time.time() if now is None else now
    job = get_job(job_id)
    if job.state in (PENDING, FAILED):
        with write_transaction():
            if (
                Job.update(state=DEAD, last_error="cancelled", finished_at=now, updated_at=now)
                .where(Job.seq == job.seq, Job.state.in_(CLAIMABLE))
                .execute()
            ):
                fail_dependents([job.seq], now=now)
    elif job.state == PROCESSING:
        Job.update(cancel_requested=True, updated_at=now).where(
            Job.seq == job.seq, Job.state == PROCESSING
        ).execute()
    else:
        raise QueueError(f"job {job_id!r} is already {job.state}")
    return get_job(job_id)


def retry_many(job_ids: list[str], *, now: float | None = None) -> list[Job]:
    """``retry`` for several jobs in one transaction: every one of them, or none on an error."""
    with write_transaction():
        return [retry(job_id, now=now) for job_id in job_ids]


def cancel_many(job_ids: list[str], *, now: float | None = None) -> list[Job]:
    """``cancel`` for several jobs in one transaction: every one of them, or none on an error."""
    with write_transaction():
        jobs = [cancel(job_id, now=now) for job_id in job_ids]
    if any(job.state == PROCESSING for job in jobs):
        # A running job whose worker is already gone has nobody to carry the cancel out: recovery
        # does it now (it kills the job's tree and records it cancelled) instead of at next start.
        recover_lost(now=now)
        jobs = [get_job(job.id) for job in jobs]
    return jobs


def delete(job_ids: list[str]) -> int:
    """Delete jobs (not running ones), their attempts and their log files."""
    with write_transaction():
        jobs = [get_job(job_id) for job_id in job_ids]
        for job in jobs:
            if job.state == PROCESSING:
                raise QueueError(f"job {job.id!r} is running; cancel it first")
        return _delete_seqs([j.seq for j in jobs])


def clear(states: list[str] | None = None, *, progress: Callable[[int], None] | None = None) -> int:
    """Delete every job in the given states (default: all but running ones); ``progress``
    hears how many went, chunk by chunk."""
    states = [s for s in (states or NOT_RUNNING) if s != PROCESSING]
    with write_transaction():
        seqs = [j.seq for j in Job.select(Job.seq).where(Job.state.in_(states))]
        return _delete_seqs(seqs, progress)


def dlq_clear(*, progress: Callable[[int], None] | None = None) -> int:
    return clear([DEAD], progress=progress)


def _delete_seqs(seqs: list[int], progress: Callable[[int], None] | None = None) -> int:
    logs = logs_dir()
    chained = Dependency.select().exists()
    for chunk in chunked(seqs, IN_CHUNK):
        if chained:
            unchain(chunk, now=time.time())
        for (name,) in (
            Attempt.select(Attempt.log_file).where(Attempt.job.in_(chunk)).tuples().execute()
        ):
            if name:
                try:
                    (logs / name).unlink()
                except OSError:
                    pass
        Attempt.delete().where(Attempt.job.in_(chunk)).execute()
        Job.delete().where(Job.seq.in_(chunk)).execute()
        if progress is not None:
            progress(len(chunk))
    # An environment holds the enqueuer's variables, secrets included: it goes with the last
    # job that refers to it (callers hold the write transaction, so no enqueue slips between).
    used = Job.select(Job.env_digest).where(Job.env_digest.is_null(False))
    Environment.delete().where(Environment.digest.not_in(used)).execute()
    return len(seqs)


def restart(job_ids: list[str], *, now: float | None = None) -> list[Job]:
    """Completed or dead jobs back to pending with a fresh retry budget, all or none. Their
    attempts stay (numbering continues); their dependencies are checked again; the jobs still
    waiting on a restarted completed job wait for it again."""
    now = time.time() if now is None else now
    with write_transaction():
        jobs = [get_job(job_id) for job_id in job_ids]
        for job in jobs:
            if job.state not in (COMPLETED, DEAD):
                raise QueueError(
                    f"job {job.id!r} is {job.state}; only completed or dead jobs can be restarted"
                )
        seqs = list(dict.fromkeys(job.seq for job in jobs))
        done = [job.seq for job in jobs if job.state == COMPLETED]
        waiting = [
            seq
            for (seq,) in Dependency.select(Dependency.job)
            .join(Job, on=(Job.seq == Dependency.job))
            .where(Dependency.dep_seq.in_(done), Job.state.in_(CLAIMABLE))
            .distinct()
            .tuples()
            .execute()
        ]
        for chunk in chunked(seqs, IN_CHUNK):
            Job.update(
                state=PENDING,
                attempts=0,
                run_at=now,
                updated_at=now,
                finished_at=None,
                last_error=None,
                exit_code=None,
                cancel_requested=False,
                waiting_on=0,
            ).where(Job.seq.in_(chunk), Job.state.in_((COMPLETED, DEAD))).execute()
        _settle(seqs + waiting, now=now)
    return [get_job(job.id) for job in jobs]


#: What ``edit`` may change (``delay`` sets run_at from now).
EDITABLE = ("command", "priority", "run_at", "delay", "max_retries", "timeout", "queue", "label")


def edit(job_id: str, changes: dict[str, Any], *, now: float | None = None) -> Job:
    """Change a waiting (pending or failed) job, validated as at enqueue; a job in any other
    state is refused and nothing changes."""
    now = time.time() if now is None else now
    unknown = [key for key in changes if key not in EDITABLE]
    if unknown:
        raise InvalidInput(
            f"cannot edit {', '.join(map(repr, unknown))} (editable: {', '.join(EDITABLE)})",
            field=unknown[0],
        )
    checked = normalize(changes, now=now, partial=True)
    if not checked:
        raise InvalidInput("nothing to change")
    with write_transaction():  # the state is checked under the write lock: no claim slips in
        job = get_job(job_id)
        if job.state not in CLAIMABLE:
            raise QueueError(
                f"job {job_id!r} is {job.state}; only pending or failed jobs can be edited"
            )
        Job.update(**checked, updated_at=now).where(Job.seq == job.seq).execute()
    return get_job(job_id)
