"""Dependencies between jobs: recording them, settling who may run, and failing the
dependents of a job that will not complete (in bounded steps)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from peewee import JOIN, chunked

from queuectl_tui.engine.common import IN_CHUNK
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store import (
    after_commit,
    write_transaction,
)
from queuectl_tui.store.models import (
    CLAIMABLE,
    COMPLETED,
    DEAD,
    Dependency,
    Job,
    Meta,
)


def _add_dependencies(job_seq: int, after: list[str], where: str = "") -> None:
    """Record that the job waits for the jobs named in ``after``: jobs that exist (enqueued
    before it, in this input or earlier). The caller holds the write transaction."""
    # execute(): the rows as they are; peewee's stubs type a model query's rows as models.
    found: dict[str, int] = dict(
        Job.select(Job.id, Job.seq).where(Job.id.in_(after)).tuples().execute()
    )
    missing = [job_id for job_id in after if found.get(job_id, job_seq) == job_seq]
    if missing:
        raise InvalidInput(
            f"{where + ': ' if where else ''}after: no job with id "
            f"{', '.join(map(repr, missing))}; nothing enqueued",
            field="after",
        )
    Dependency.insert_many(
        [(job_seq, found[job_id], job_id) for job_id in after],
        fields=[Dependency.job, Dependency.dep_seq, Dependency.dep_id],
    ).execute()


def _settle(seqs: list[int], *, now: float) -> None:
    """Set ``waiting_on`` of these waiting jobs from their dependencies as they are now; one
    whose dependency is dead or deleted goes to the DLQ ("dependency ID failed"), and so do
    the jobs waiting on it. For every path that puts a job (back) in the queue. The caller
    holds the write transaction."""
    failed: list[int] = []
    for chunk in chunked(seqs, IN_CHUNK):
        waiting: dict[int, int] = {}
        broken: dict[int, str] = {}
        for job_seq, dep_id, dep_state in _dependency_rows(chunk):
            waiting.setdefault(job_seq, 0)
            if dep_state is None or dep_state == DEAD:
                broken.setdefault(job_seq, dep_id)
            elif dep_state != COMPLETED:
                waiting[job_seq] += 1
        for job_seq, count in waiting.items():
            query = (
                Job.update(
                    state=DEAD,
                    last_error=f"dependency {broken[job_seq]} failed",
                    finished_at=now,
                    updated_at=now,
                    waiting_on=0,
                )
                if job_seq in broken
                else Job.update(waiting_on=count)
            )
            if (
                query.where(Job.seq == job_seq, Job.state.in_(CLAIMABLE)).execute()
                and job_seq in broken
            ):
                failed.append(job_seq)
    if failed:
        fail_dependents(failed, now=now)


def _dependency_rows(job_seqs: list[int]) -> Iterable[tuple[int, str, str | None]]:
    """(job seq, dependency id, its state or None if deleted), in dependency order. A
    dependency is matched by seq and id: a deleted job's seq may be given to a new job."""
    return (
        Dependency.select(Dependency.job, Dependency.dep_id, Job.state)
        .join(
            Job,
            JOIN.LEFT_OUTER,
            on=((Job.seq == Dependency.dep_seq) & (Job.id == Dependency.dep_id)),
        )
        .where(Dependency.job.in_(job_seqs))
        .order_by(Dependency.job, Dependency.dep_seq)
        .tuples()
        .execute()
    )


def dependencies(job: Job) -> list[tuple[str, str | None]]:
    """The jobs this one waits for (``--after``): (id, state, or None if deleted)."""
    return [(dep_id, dep_state) for _, dep_id, dep_state in _dependency_rows([job.seq])]


#: Jobs sent to the DLQ per write transaction when a job others wait on dies or is deleted: a
#: chain of 10,000 behind one job held the write lock 5-15 s in one transaction; in steps of at
#: most this many jobs and CASCADE_SECONDS (on a loaded machine a job costs milliseconds: its
#: counts and rollups change with it), every other writer gets in between, and each step
#: leaves the queue whole.
CASCADE_STEP = 64
CASCADE_SECONDS = 0.05
#: meta key, "1" while a cascade that needed more than one step may not be finished: set in
#: its first step, removed by the step that finds nothing left; recovery finishes one left by
#: a crash (``finish_cascades``).
CASCADE_PENDING = "cascade_pending"


def fail_dependents(seqs: list[int], *, now: float) -> list[str]:
    """Jobs waiting on any of ``seqs`` (which ended dead or are being deleted) go to the DLQ,
    and so do the jobs waiting on those, and so on. The caller holds the write transaction;
    this takes up to CASCADE_STEP jobs in it, and if more wait, the rest follows in steps of
    their own once it has committed (before the caller returns: no job is left waiting on a
    dead one). Returns the ids sent to the DLQ in the caller's transaction."""
    sent, frontier = _fail_step(seqs, now=now, budget=CASCADE_STEP)
    if frontier:
        Meta.insert(key=CASCADE_PENDING, value="1").on_conflict(
            conflict_target=[Meta.key], update={Meta.value: "1"}
        ).execute()
        after_commit(lambda: finish_cascades(frontier))
    return sent


def finish_cascades(frontier: list[int] | None = None) -> int:
    """Send to the DLQ, CASCADE_STEP at a time (a write transaction each), every job still
    waiting on a dead or deleted job: the dependents of ``frontier`` (the jobs a step left),
    then any others a scan finds (a cascade cut short by a crash). The step that finds none
    left clears CASCADE_PENDING. Returns how many were sent."""
    total, first = 0, True
    while True:
        if not first:
            time.sleep(0.002)  # the writers that queued meanwhile go first (the lock is free)
        first = False
        with write_transaction():
            now = time.time()
            sent, frontier = _fail_step(frontier, now=now, budget=CASCADE_STEP, broken=True)
            if not sent and not frontier:
                sent, frontier = _fail_step(None, now=now, budget=CASCADE_STEP, broken=True)
            total += len(sent)
            if not sent and not frontier:
                Meta.delete().where(Meta.key == CASCADE_PENDING).execute()
                return total


def cascade_pending() -> bool:
    return Meta.select().where(Meta.key == CASCADE_PENDING).exists()


def _fail_step(
    seqs: list[int] | None, *, now: float, budget: int, broken: bool = False
) -> tuple[list[str], list[int]]:
    """Up to ``budget`` jobs that wait on one of ``seqs``, then on those, … go to the DLQ.
    Returns their ids and the seqs whose waiting dependents are not all handled yet (empty
    when done). ``broken``: only dependencies that are dead or deleted now, matched by seq and
    id (a later step: a job may have been retried meanwhile, and a deleted job's seq given to
    a new one); ``seqs`` None then means every such dependency (a scan)."""
    sent: list[str] = []
    frontier = list(seqs) if seqs is not None else None
    until = time.monotonic() + CASCADE_SECONDS
    while frontier is None or frontier:
        room = budget - len(sent)
        if room <= 0 or (sent and time.monotonic() >= until):
            return sent, frontier or []
        query = (
            Dependency.select(Dependency.job, Dependency.dep_id, Job.id)
            .join(Job, on=(Job.seq == Dependency.job))
            .where(Job.state.in_(CLAIMABLE))
        )
        if frontier is not None:
            query = query.where(Dependency.dep_seq.in_(frontier))
        if broken:
            dep = Job.alias("dep")
            query = query.join_from(
                Dependency,
                dep,
                JOIN.LEFT_OUTER,
                on=((dep.seq == Dependency.dep_seq) & (dep.id == Dependency.dep_id)),
            ).where(dep.seq.is_null() | (dep.state == DEAD))
        first: dict[int, tuple[str, str]] = {}
        more = False
        for job_seq, dep_id, job_id in query.tuples().execute():
            if job_seq not in first and len(first) == room:
                more = True
                break
            first.setdefault(job_seq, (dep_id, job_id))
        for job_seq, (dep_id, job_id) in first.items():
            if (
                Job.update(
                    state=DEAD,
                    last_error=f"dependency {dep_id} failed",
                    finished_at=now,
                    updated_at=now,
                )
                .where(Job.seq == job_seq, Job.state.in_(CLAIMABLE))
                .execute()
            ):
                sent.append(job_id)
        if more:
            return sent, (frontier or []) + list(first)
        frontier = list(first)
    return sent, []


def unchain(seqs: list[int], *, now: float) -> None:
    """Before these jobs are deleted: the jobs waiting on one that had not completed go to the
    DLQ; the records of completed ones are dropped (they were met: a later retry of a job that
    waited on one must not find it missing and call it failed)."""
    done = [
        seq
        for (seq,) in Job.select(Job.seq)
        .where(Job.seq.in_(seqs), Job.state == COMPLETED)
        .tuples()
        .execute()
    ]
    if done:
        Dependency.delete().where(Dependency.dep_seq.in_(done)).execute()
    open_ = sorted(set(seqs) - set(done))
    if open_:
        fail_dependents(open_, now=now)
