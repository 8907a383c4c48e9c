"""Waiting for jobs to end (``wait``), and the change signal it and the faces poll."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from peewee import chunked, fn

from queuectl_tui import wake
from queuectl_tui.engine.actions import get_job
from queuectl_tui.engine.common import IN_CHUNK
from queuectl_tui.errors import QueueError
from queuectl_tui.store import (
    change_token,
)
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import (
    COMPLETED,
    DEAD,
    FAILED,
    PENDING,
    PROCESSING,
    Job,
    database,
)

#: How often a waiter looks at SQLite's data_version (as idle workers do): a job's end is seen
#: within about this long, for next to no CPU.
WAKE_POLL = 0.010
#: State of a job that was deleted while someone waited for it (it will never end otherwise).
DELETED = "deleted"
UNFINISHED = (PENDING, PROCESSING, FAILED)


class WaitTimeout(QueueError):
    """``wait --timeout`` ran out before every job ended (exit 124, as timeout(1))."""

    exit_code = 124


def changes(
    *, fallback: float | Callable[[], float] = 1.0, deadline: float | None = None
) -> Iterator[None]:
    """Yield now, then each time another connection commits: looks at the change token when
    ``wake.sleep`` says a commit may have come (SQLite: a write to the -wal file; PostgreSQL:
    a NOTIFY), as idle workers do (without a token: every ``fallback`` seconds); also after
    ``fallback`` seconds without a commit (a function: asked after each yield), and at
    ``deadline`` (time.monotonic)."""
    while True:
        token = change_token()
        yield
        longest = fallback() if callable(fallback) else fallback
        until = time.monotonic() + longest
        if deadline is not None:
            until = min(until, deadline)
        while time.monotonic() < until:
            if token is not None:
                wake.sleep(until - time.monotonic())
            else:
                time.sleep(min(longest, 0.1))
            if token is None:
                break
            if change_token() != token:
                wake.noticed()
                break


class FollowLook(NamedTuple):
    """A job as ``logs -f`` looks at it at each wake-up."""

    state: str
    last_error: str | None
    attempt_seq: int | None  # its first attempt numbered the number asked or later, if any


def follow_look(job: Job, number: int) -> FollowLook | None:
    """The job's state and whether attempt ``number`` (or a later one) exists, in one fixed
    read (None: the job was deleted). Fixed SQL: it runs at every commit anyone makes, and
    two ORM reads cost a follower ~1.5 ms each time, 1.5 % of a core beside 8 idle workers."""
    row = dialect().execute("follow_look", (number, job.seq, job.id)).fetchone()
    return None if row is None else FollowLook(*row)


def wait(
    job_ids: list[str] | None = None,
    *,
    queues: list[str] | None = None,
    timeout: float | None = None,
    watching: Callable[[int], None] | None = None,
) -> Iterator[Job]:
    """Wait until the jobs named (and every job of ``queues``, jobs enqueued meanwhile
    included; every job when neither is given) are completed or dead: an iterator that yields
    each as it ends (its id, state, exit code and last error), the named ones that have ended
    already first, and stops when none is left.
    A named job deleted meanwhile is yielded with state DELETED. Raises NotFound for an
    unknown id here, before waiting; the iterator raises WaitTimeout when ``timeout`` seconds
    (from this call) pass first. The jobs of queues are taken from this call on. ``watching``
    hears how many jobs are waited for in all (ended ones included) as that grows."""
    deadline = None if timeout is None else time.monotonic() + timeout
    named: dict[int, str] = {}
    for job_id in job_ids or []:
        named[get_job(job_id).seq] = job_id
    every = not job_ids and not queues
    looked = (time.time(), time.monotonic())  # before the first look: what ends after is news
    high = Job.select(fn.MAX(Job.seq)).scalar() or 0
    waiting = _unfinished(list(named), queues, every)
    return _wait(
        named, queues, every, waiting, set(named) - waiting, high, deadline, looked, watching
    )


#: How long after it happened an end may be recorded and still be found by ``wait``'s quick look
#: (a batch's ends are recorded with the worker's next claim, at most its next job's first
#: check later); a later one is found by the full look, which the counts call for at once
#: (``--queue``, ``--all``) and which runs every FULL_LOOK seconds anyway (or less often: at
#: most 1% of the time). The reads of a look are fixed SQL: peewee building them cost more
#: than running them.
END_SLACK = 0.5
FULL_LOOK = 2.0
LOOK_EVERY = 0.05


def _wait(
    named: dict[int, str],
    queues: list[str] | None,
    every: bool,
    waiting: set[int],
    ended: set[int],
    high: int,
    deadline: float | None,
    first_look: tuple[float, float],
    watching: Callable[[int], None] | None = None,
) -> Iterator[Job]:
    """Incremental: at each change only what may have changed is read (jobs past the ``high``
    seq watermark, attempts and dead jobs that ended since the last look, the counts), not
    every open job; a full look (every open job, as at the start) runs when the counts do not
    add up (a job deleted, moved, or whose end was recorded late), every FULL_LOOK seconds,
    and at every look for up to IN_CHUNK named jobs (one statement). ``watching`` hears how
    many jobs are waited for in all (ended ones included) as that grows."""
    total = len(waiting | ended)
    if watching is not None:
        watching(total)
    yield from _ended(sorted(ended), named)
    looked, full_at = first_look
    full_cost = 0.0
    scope = bool(queues or every)
    for _ in changes(deadline=deadline):
        began, now = time.monotonic(), time.time()
        with _read_snapshot():  # one view: the counts agree with the rows read
            ended = set()
            if scope:  # jobs enqueued since the last look (some may have ended already)
                fresh = 0
                new = dialect().execute("jobs_after", (high,))
                for seq, job_state, queue in new:
                    high = max(high, seq)
                    if not queues or queue in queues:
                        (ended if job_state in (COMPLETED, DEAD) else waiting).add(seq)
                        fresh += 1
                if fresh and watching is not None:
                    total += fresh
                    watching(total)
            ended |= _ended_since(waiting, looked - END_SLACK)
            waiting -= ended
            full = began - full_at >= max(FULL_LOOK, 100 * full_cost)
            if not full and scope and not named:
                full = _open_count(queues) != len(waiting)
            elif not full and not scope:  # a few named jobs: all of them in one statement
                full = len(waiting) <= IN_CHUNK
            if full:
                now_open = _unfinished(list(named), queues, every)
                ended |= waiting - now_open
                waiting = now_open
                full_at = time.monotonic()
                full_cost = full_at - began
        looked = now
        yield from _ended(sorted(ended), named)
        if not waiting:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(_not_finished(waiting, named))
        spent = time.monotonic() - began
        # One look per LOOK_EVERY at most (draining workers commit hundreds of times a second):
        # each end is still reported within that long; a slow look, half the time at most.
        pause = max(LOOK_EVERY - spent, min(spent, 0.05) if spent > WAKE_POLL else 0.0)
        if pause > 0:
            time.sleep(pause)


@contextmanager
def _read_snapshot() -> Iterator[None]:
    """Reads that see one state of the database: SQLite's deferred transaction keeps the
    snapshot of its first read (and takes no write lock); PostgreSQL needs REPEATABLE READ."""
    with database.atomic():
        dialect().begin_snapshot()
        yield


def _ended_since(waiting: set[int], since: float) -> set[int]:
    """The jobs among ``waiting`` that are completed or dead and whose end was recorded at
    ``since`` or later: what changed since the last look, read without visiting every job."""
    touched = {seq for (seq,) in dialect().execute("attempts_ended_since", (since,))}
    touched.update(seq for (seq,) in dialect().execute("failed_since", (since,)))
    return {row[0] for row in _job_rows(sorted(touched & waiting)) if row[2] in (COMPLETED, DEAD)}


def _open_count(queues: list[str] | None) -> int:
    """How many jobs of these queues (all if None) are not completed or dead: from job_count."""
    return sum(
        int(n) for queue, n in dialect().execute("open_counts") if not queues or queue in queues
    )


def _job_rows(seqs: list[int]) -> Iterator[tuple[int, str, str, int | None, str | None]]:
    """(seq, id, state, exit_code, last_error) of these jobs (those that exist): the list is
    one parameter (a JSON array on SQLite, an array on PostgreSQL)."""
    found = dialect()
    for chunk in chunked(seqs, IN_CHUNK):
        yield from database.execute_sql(found.queries["job_rows"], (found.id_list(chunk),))


#: How many unfinished jobs a timed-out wait names (then a count of the rest).
NAMED_AT_TIMEOUT = 10


def _not_finished(waiting: set[int], named: dict[int, str]) -> str:
    """The timeout's message: the first jobs still unfinished (by enqueue order), by id."""
    first = sorted(waiting)[:NAMED_AT_TIMEOUT]
    ids: dict[int, str] = dict(
        Job.select(Job.seq, Job.id).where(Job.seq.in_(first)).tuples().execute()
    )
    shown = ", ".join(ids.get(seq) or named.get(seq) or f"#{seq}" for seq in first)
    more = len(waiting) - len(first)
    return f"timed out with {len(waiting)} job(s) not finished: {shown}" + (
        f" and {more} more" if more else ""
    )


def _unfinished(seqs: list[int], queues: list[str] | None, every: bool) -> set[int]:
    """Seqs of the jobs waited for that are not completed or dead yet."""
    found: set[int] = set()
    for chunk in chunked(seqs, IN_CHUNK):
        found.update(
            seq
            for (seq,) in Job.select(Job.seq)
            .where(Job.seq.in_(chunk), Job.state.in_(UNFINISHED))
            .tuples()
            .execute()
        )
    if every:
        found.update(seq for (seq,) in dialect().execute("unfinished_jobs"))
    elif queues:
        found.update(
            seq
            for (seq,) in Job.select(Job.seq)
            .where(Job.state.in_(UNFINISHED), Job.queue.in_(queues))
            .tuples()
            .execute()
        )
    return found


def _ended(seqs: list[int], named: dict[int, str]) -> Iterator[Job]:
    """The jobs among ``seqs`` that ended (a job of a waited queue that was deleted or moved to
    another queue is no longer waited for; a named one that was deleted is yielded DELETED)."""
    for chunk in chunked(seqs, IN_CHUNK):
        rows = {row[0]: row for row in _job_rows(chunk)}
        for seq in chunk:
            row = rows.get(seq)
            if seq in named and (row is None or row[1] != named[seq]):
                yield Job(seq=seq, id=named[seq], state=DELETED)
            elif row is not None and row[2] in (COMPLETED, DEAD):
                yield Job(seq=seq, id=row[1], state=row[2], exit_code=row[3], last_error=row[4])
