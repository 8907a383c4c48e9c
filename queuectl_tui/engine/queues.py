"""Queues: pause and resume, running limits, their rows for the faces, and priority aging."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from peewee import chunked, fn

from queuectl_tui.engine.chains import _dependency_rows
from queuectl_tui.engine.common import IN_CHUNK
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store import (
    write_transaction,
)
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import (
    CLAIMABLE,
    COMPLETED,
    PROCESSING,
    STATES,
    Job,
    JobCount,
    Meta,
    Queue,
    Worker,
)

#: meta key: "1" when ``pause`` was given no queue. A queue's own ``paused`` (set by ``pause`` or
#: ``resume`` naming it) wins over it; queues never named follow it, new ones included.
PAUSED_ALL = "paused_all"


def pause(queues: list[str] | None = None) -> None:
    """Workers claim nothing more from these queues (every queue if None); running jobs finish."""
    _set_paused(queues, True)


def resume(queues: list[str] | None = None) -> None:
    _set_paused(queues, False)


def _set_paused(queues: list[str] | None, paused: bool) -> None:
    with write_transaction():
        if queues is None:
            flag = "1" if paused else "0"
            Meta.insert(key=PAUSED_ALL, value=flag).on_conflict(
                conflict_target=[Meta.key], update={Meta.value: flag}
            ).execute()
            Queue.update(paused=None).execute()
        else:
            for name in queues:
                Queue.insert(name=name, paused=paused).on_conflict(
                    conflict_target=[Queue.name], update={Queue.paused: paused}
                ).execute()


def any_paused(queues: Iterable[str]) -> bool:
    """Is any of these queues paused now? (A worker asks before it starts a job it holds.)"""
    flags = dict(dialect().run("pause_flags").fetchall())
    every = flags.pop(None, "0")
    return any(flags.get(name, every) == "1" for name in queues)


def set_limit(queue: str, limit: int | None) -> None:
    """At most ``limit`` jobs of ``queue`` run at once across all workers (None: no limit);
    checked inside every claim."""
    if limit is not None and limit < 0:
        raise InvalidInput(
            f"bad limit {limit!r}: expected a whole number >= 0 or 'none'", field="limit"
        )
    with write_transaction():
        Queue.insert(name=queue, max_running=limit).on_conflict(
            conflict_target=[Queue.name], update={Queue.max_running: limit}
        ).execute()


def queue_known(name: str) -> bool:
    """Whether a job is in the queue or a worker takes from it by name (a worker of every
    queue does not count: it would take from any name, typos included)."""
    if JobCount.select().where(JobCount.queue == name, JobCount.n > 0).exists():
        return True
    return any(
        name in (row.queues or "").split(",")
        for row in Worker.select(Worker.queues).where(Worker.queues.is_null(False))
    )


def paused_all() -> bool:
    """Whether ``pause`` without a queue is in force (for queues not named since)."""
    return (Meta.get_or_none(Meta.key == PAUSED_ALL) or Meta(value="0")).value == "1"


def queue_rows() -> list[dict[str, Any]]:
    """Every queue that has jobs or settings: name, jobs per state, paused, limit."""
    paused_all_ = paused_all()
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        return rows.setdefault(
            name,
            {
                "name": name,
                "jobs": {state: 0 for state in STATES},
                "paused": paused_all_,
                "limit": None,
            },
        )

    for name, state, n in (
        JobCount.select(JobCount.queue, JobCount.state, fn.SUM(JobCount.n))
        .group_by(JobCount.queue, JobCount.state)
        .tuples()
        .execute()
    ):
        if n:  # summed: PostgreSQL keeps a row per writing session (store/pgsql.py)
            row(name)["jobs"][state] = int(n)
    for queue in Queue.select():
        entry = row(queue.name)
        entry["paused"] = paused_all_ if queue.paused is None else bool(queue.paused)
        entry["limit"] = queue.max_running
    return sorted(rows.values(), key=lambda r: r["name"])


def queue_state(name: str) -> dict[str, Any]:
    """One queue's paused flag, limit and running jobs (what its waiting jobs are held by)."""
    row = Queue.get_or_none(Queue.name == name)
    running = int(
        JobCount.select(fn.SUM(JobCount.n))
        .where(JobCount.queue == name, JobCount.state == PROCESSING)
        .scalar()
        or 0
    )
    return {
        "name": name,
        "paused": paused_all() if row is None or row.paused is None else bool(row.paused),
        "limit": None if row is None else row.max_running,
        "running": running,
    }


class Hold(NamedTuple):
    """What holds a waiting job back besides time and workers (``holds``)."""

    after: tuple[tuple[str, str | None], ...]  # dependencies not completed: (id, state)
    paused: bool  # its queue is paused
    running: int  # its queue's running jobs
    limit: int | None  # its queue's running limit (None: no limit)

    @property
    def at_limit(self) -> bool:
        return self.limit is not None and self.running >= self.limit


def holds(jobs: Sequence[Job]) -> dict[int, Hold]:
    """Job seq -> what holds it back, for the waiting (pending or failed) jobs among ``jobs``
    (a page of a list or of the console): a few reads for the whole page, none per row."""
    waiting = [job for job in jobs if job.state in CLAIMABLE]
    if not waiting:
        return {}
    after: dict[int, list[tuple[str, str | None]]] = {}
    chained = [job.seq for job in waiting if job.waiting_on]
    for chunk in chunked(chained, IN_CHUNK):
        for job_seq, dep_id, dep_state in _dependency_rows(chunk):
            if dep_state != COMPLETED:
                after.setdefault(job_seq, []).append((dep_id, dep_state))
    every = paused_all()  # queues and their running counts: a row per queue, read whole
    queues = {row.name: row for row in Queue.select()}
    running: dict[str, int] = dict(
        JobCount.select(JobCount.queue, JobCount.n)
        .where(JobCount.state == PROCESSING)
        .tuples()
        .execute()
    )
    result = {}
    for job in waiting:
        row = queues.get(job.queue)
        paused = every if row is None or row.paused is None else bool(row.paused)
        result[job.seq] = Hold(
            tuple(after.get(job.seq, ())),
            paused,
            int(running.get(job.queue) or 0),
            None if row is None else row.max_running,
        )
    return result


def aging_rate() -> float:
    """``priority_aging`` as the claim reads it (points of priority per minute waited)."""
    return dialect().execute("aging_rate").fetchone()[0]


def effective_priority(job: Job, *, now: float | None = None, rate: float | None = None) -> float:
    now = time.time() if now is None else now
    rate = aging_rate() if rate is None else rate
    return job.priority + rate * max(0.0, now - job.run_at) / 60.0
