"""Reads for the faces: counts, stats, lists, logs, and the console's pages and charts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from peewee import ColumnBase, Field, ModelSelect, fn

from queuectl_tui import procs
from queuectl_tui.errors import NotFound
from queuectl_tui.store import logs_dir as _logs_dir
from queuectl_tui.store.models import (
    FAILED_OUTCOMES,
    PROCESSING,
    STATES,
    Attempt,
    Job,
    JobCount,
    Outcome,
    database,
)

if TYPE_CHECKING:
    from pathlib import Path
from queuectl_tui.engine.workers import busy, live_workers
from queuectl_tui.store.dialects import dialect


def logs_dir() -> Path:
    return _logs_dir()


def attempts_of(job: Job) -> list[Attempt]:
    return list(Attempt.select().where(Attempt.job == job.seq).order_by(Attempt.number))


def log_elsewhere(job: Job, attempt: Attempt, *, last: bool) -> tuple[str, str | None] | None:
    """For an attempt run on another host (whose log file stays there): where its log is, and
    the tail of its output kept in the database (``last``: no later attempt has ended; the job
    keeps the output of the attempt that ended last). None for an attempt of this host, or
    whose log can be read here all the same (shared storage, a database moved with its logs)."""
    if not attempt.host or attempt.host == procs.hostname():
        return None
    path = log_path(attempt)
    if path is not None and path.exists():
        return None
    where = (
        f"the log of attempt {attempt.number} is on host {attempt.host} "
        f"({attempt.log_file} in the logs directory of the worker there)"
    )
    tail = job.output_tail if last and attempt.finished_at is not None else None
    return where, tail


def kept_output(job: Job, attempt: Attempt) -> tuple[bool, str | None]:
    """(ended, output kept in the database) of an attempt, read afresh: the job's last output
    once the attempt has ended, until a later attempt ends (its end replaces it)."""
    # In this order: the attempt, then the job (whose tail is then at least that end's: both
    # are written in one transaction), then later ends (one after the job was read says None).
    now = Attempt.get_or_none(Attempt.seq == attempt.seq)
    if now is None:
        raise NotFound(f"job {job.id!r} was deleted")
    if now.finished_at is None:
        return False, None
    current = Job.get_or_none(Job.seq == job.seq)
    if current is None:
        raise NotFound(f"job {job.id!r} was deleted")
    replaced = (
        Attempt.select()
        .where(
            Attempt.job == job.seq, Attempt.number > now.number, Attempt.finished_at.is_null(False)
        )
        .exists()
    )
    return True, None if replaced else current.output_tail


def attempts_run(job: Job) -> int:
    """How many times the job has run in all: its latest attempt's number (numbers continue
    after dlq retry and restart, which reset only ``job.attempts``, the retry budget's count)."""
    return Attempt.select(fn.MAX(Attempt.number)).where(Attempt.job == job.seq).scalar() or 0


def log_path(attempt: Attempt) -> Path | None:
    return logs_dir() / attempt.log_file if attempt.log_file else None


def counts() -> dict[str, int]:
    """Jobs per state, from ``job_count`` (kept by triggers): a few rows whatever the size."""
    result = {state: 0 for state in STATES}
    for state, count in (
        JobCount.select(JobCount.state, fn.SUM(JobCount.n))
        .group_by(JobCount.state)
        .tuples()
        .execute()
    ):
        if count or state in result:
            result[state] = int(count)  # PostgreSQL's SUM of a bigint is a numeric
    return result


def stats(*, now: float | None = None) -> dict[str, Any]:
    """Counts, workers, and ``oldest_pending_age``: how long the longest-waiting pending job
    has been due (scheduled jobs not yet due and jobs waiting on others are not waiting for a
    worker, so they do not count)."""
    now = time.time() if now is None else now
    workers = live_workers(now)
    due = database.execute_sql(dialect().queries["oldest_due"]).fetchone()[0]
    by_state = counts()
    return {
        "jobs": by_state,
        "total": sum(by_state.values()),
        "workers": {"alive": len(workers), "busy": sum(1 for w in workers if busy(w))},
        "oldest_pending_age": None if due is None or due > now else now - due,
    }


def _filtered(
    query: ModelSelect[Any],
    *,
    state: str | Iterable[str] | None = None,
    queue: str | Iterable[str] | None = None,
    search: str | None = None,
) -> ModelSelect[Any]:
    """Filters on jobs (or on job_count): a state or queue is one name or several (any of them)."""
    model = query.model
    if state:
        query = query.where(
            model.state == state if isinstance(state, str) else model.state.in_(list(state))
        )
    if queue:
        query = query.where(
            model.queue == queue if isinstance(queue, str) else model.queue.in_(list(queue))
        )
    if search:  # contains() escapes LIKE's wildcards: "_" and "%" are searched for as text
        query = query.where(
            Job.id.contains(search)
            | Job.command.contains(search)
            | Job.last_error.contains(search)
            | Job.label.contains(search)
        )
    return query


def list_jobs(
    *,
    state: str | Iterable[str] | None = None,
    queue: str | Iterable[str] | None = None,
    limit: int | None = 50,
    search: str | None = None,
    newest_first: bool = False,
    after_seq: int | None = None,
) -> list[Job]:
    query = _filtered(Job.select(), state=state, queue=queue, search=search)
    if after_seq is not None:
        query = query.where(Job.seq < after_seq if newest_first else Job.seq > after_seq)
    query = query.order_by(Job.seq.desc() if newest_first else Job.seq)
    if limit:
        query = query.limit(limit)
    return list(query)


def next_due(queues: list[str] | None = None) -> float | None:
    """When the earliest waiting job becomes due (None if nothing waits): the first entry of
    the partial index job_due, named on SQLite, whose planner skips partial indexes when the
    states are bound as parameters (a scan of every waiting row: 136 ms at 1M jobs)."""
    return look_for_work(queues)[0]


def look_for_work(queues: list[str] | None = None) -> tuple[float | None, str | None]:
    """(``next_due``, the settings' version) in one read: what an idle worker does when
    another session commits, a heartbeat included; a claim (a write transaction) only follows
    when a job is due."""
    found = dialect()
    row = database.execute_sql(found.queries["next_due"], found.next_due_params(queues)).fetchone()
    return (row[0], row[1]) if row else (None, None)


#: Orders a page of jobs can take; every one is completed by seq, so a row's place is unique.
SORT_KEYS: dict[str, Field[Any]] = {
    "seq": Job.seq,
    "priority": Job.priority,
    "run_at": Job.run_at,
    "updated_at": Job.updated_at,
    "attempts": Job.attempts,
}
_PAGE_FIELDS = [f for f in Job._meta.sorted_fields if f.name not in ("output_tail", "cwd")]


@contextmanager
def _snapshot() -> Iterator[None]:
    """Reads that must agree (a count and the rows it counts) in one transaction; on PostgreSQL
    a repeatable-read one, where each statement would otherwise see a moment of its own."""
    with database.atomic():
        if database.transaction_depth() == 1:
            dialect().begin_snapshot(read_only=True)
        yield


def jobs_window(
    *,
    state: str | None = None,
    queue: str | None = None,
    search: str | None = None,
    sort: str = "seq",
    descending: bool = True,
    start: int = 0,
    limit: int = 100,
) -> tuple[list[Job], int, int]:
    """The page of ``limit`` rows holding row ``start`` of the jobs in (sort key, seq) order:
    (rows, index of its first row, rows in all). Pages are fixed slices of the order as it is
    now (page 1 is its head, page k rows (k-1)*limit on), read with the count in one snapshot,
    so the page and its number agree while rows arrive and leave; past the end, the last page.
    Rows carry every field but output_tail and cwd.

    Keyset anchors (rows after the last row shown) cannot say which page they are once rows
    arrive or leave before them, so the slice is read by OFFSET, from the nearer end of the
    order: at 100k jobs a middle page reads in 10-40 ms (the head in under 1 ms). The inner
    query sorts only (key, seq): an order without an index sorts small rows, not whole jobs."""
    field = SORT_KEYS[sort]
    limit = max(1, limit)
    with _snapshot():
        total = count_jobs(state=state, queue=queue, search=search)
        first = min(max(0, start) // limit, max(0, total - 1) // limit) * limit
        size = min(limit, total - first)
        if size <= 0:
            return [], 0, total
        from_head = first <= total - first - size
        desc = descending if from_head else not descending
        order = [field.desc(), Job.seq.desc()] if desc else [field.asc(), Job.seq.asc()]
        if field is Job.seq:
            order = order[1:]
        seqs = (
            _filtered(Job.select(Job.seq), state=state, queue=queue, search=search)
            .order_by(*order)
            .offset(first if from_head else total - first - size)
            .limit(size)
        )
        rows = list(Job.select(*_PAGE_FIELDS).where(Job.seq.in_(seqs)).order_by(*order))
    return (rows if from_head else rows[::-1]), first, total


def count_jobs(
    *,
    state: str | Iterable[str] | None = None,
    queue: str | Iterable[str] | None = None,
    search: str | None = None,
) -> int:
    """Jobs matching the filters; by state and queue (or all of them) from ``job_count``."""
    if not search:
        query = _filtered(JobCount.select(fn.SUM(JobCount.n)), state=state, queue=queue)
        return int(query.scalar() or 0)  # PostgreSQL's SUM is a numeric (a Decimal here)
    return _filtered(Job.select(), state=state, queue=queue, search=search).count()


def throughput(*, minutes: int = 30, now: float | None = None) -> list[tuple[int, int]]:
    """(attempts completed, attempts failed) per minute over the last ``minutes`` minutes,
    oldest first, from the attempts' finish times (index attempt_window)."""
    now = time.time() if now is None else now
    start = now - minutes * 60
    bucket: ColumnBase = (Attempt.finished_at - start) / 60
    bucket = dialect().minute_bucket(bucket)
    done = [0] * minutes
    failed = [0] * minutes
    rows = (
        Attempt.select(bucket, Attempt.outcome, fn.COUNT(Attempt.seq))
        .where(Attempt.finished_at > start, Attempt.finished_at <= now)
        .group_by(bucket, Attempt.outcome)
        .tuples()
        .execute()
    )
    for index, outcome, count in rows:
        index = min(max(int(index), 0), minutes - 1)
        if outcome == Outcome.COMPLETED:
            done[index] += count
        elif outcome in FAILED_OUTCOMES:
            failed[index] += count
    return list(zip(done, failed, strict=True))


def last_costs(seqs: list[int]) -> dict[int, tuple[float | None, int | None, int | None]]:
    """Job seq -> (cpu_seconds, peak_rss_bytes, processes) of its latest attempt, for a page
    of jobs (index attempt (job_seq, number): one probe per job)."""
    if not seqs:
        return {}
    latest = Attempt.select(fn.MAX(Attempt.seq)).where(Attempt.job.in_(seqs)).group_by(Attempt.job)
    rows = (
        Attempt.select(Attempt.job, Attempt.cpu_seconds, Attempt.peak_rss_bytes, Attempt.processes)
        .where(Attempt.seq.in_(latest))
        .tuples()
        .execute()
    )
    return {seq: (cpu, peak, count) for seq, cpu, peak, count in rows}


def running_attempts() -> dict[str, tuple[Job, Attempt]]:
    """Job id -> (job, the attempt of its current claim) for every running job. Paired by claim
    token: attempt numbers count the whole history while ``attempts`` is reset by a DLQ retry
    or an interrupted run."""
    jobs = {j.seq: j for j in Job.select(*_PAGE_FIELDS).where(Job.state == PROCESSING)}
    if not jobs:
        return {}
    result = {}
    for attempt in Attempt.select().where(
        Attempt.job.in_(list(jobs)), Attempt.finished_at.is_null()
    ):
        job = jobs[attempt.job_seq]
        if attempt.claim_token == job.claim_token and (
            job.claim_token is not None or attempt.number == job.attempts
        ):  # pre-v2 claims
            result[job.id] = (job, attempt)
    return result
