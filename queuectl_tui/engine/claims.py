"""Claiming and finishing jobs: the worker's per-job transactions, fenced on the claim token.

Changes made on behalf of a worker about a job are fenced on ``(state = processing,
claim_token = the attempt's token)``: the token is random and fresh at every claim, so a worker
that was presumed lost (and whose job may have been claimed again since) cannot overwrite what
recovery or the next claimer decided after it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from peewee import DatabaseError

from queuectl_tui import settings
from queuectl_tui.engine.chains import fail_dependents
from queuectl_tui.engine.common import _queues_of
from queuectl_tui.engine.workers import Fenced, Unregistered
from queuectl_tui.store import (
    write_transaction,
)
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import (
    COMPLETED,
    DEAD,
    FAILED,
    PENDING,
    PROCESSING,
    Attempt,
    Job,
    Outcome,
    Worker,
    database,
)
from queuectl_tui.store.queries import (
    JOB_COLUMNS,
)


def claim(worker: Worker, *, now: float | None = None) -> tuple[Job, Attempt] | None:
    """Atomically take the next due job for this worker, or None when nothing is due."""
    now = time.time() if now is None else now
    with write_transaction(hot=True):
        claimed = _claim(worker, now)
        # an empty poll writes nothing (a commit would wake every idle worker)
        if claimed and not _set_worker(worker.id, claimed[0].id, now):
            raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
    return claimed


def finish(
    job: Job,
    attempt: Attempt,
    *,
    outcome: str,
    exit_code: int | None = None,
    error: str | None = None,
    tail: str | None = None,
    now: float | None = None,
    max_backoff: float | None = None,
) -> str | None:
    """Record how an attempt ended and move the job on. Returns the job's new state, or None
    when the job is no longer held by this attempt's claim (recovered meanwhile, perhaps
    claimed again): then nothing changes.

    outcome: completed | failed | timeout | lost (retry path), interrupted (back to pending,
    the run does not count), cancelled (straight to the DLQ).
    """
    now = time.time() if now is None else now
    if max_backoff is None:
        max_backoff = settings.get("max_backoff")
    with write_transaction(hot=True):
        state = _finish(job, attempt, outcome, exit_code, error, tail, now, max_backoff)
        if state is not None and attempt.worker_id is not None:
            _set_worker(attempt.worker_id, None, now)
    return state


def finish_and_claim(
    job: Job,
    attempt: Attempt,
    worker: Worker,
    *,
    outcome: str,
    exit_code: int | None,
    error: str | None,
    tail: str | None,
    max_backoff: float,
    now: float | None = None,
    claim_next: bool = True,
    cost: Any = None,
) -> tuple[str | None, tuple[Job, Attempt] | None]:
    """``finish`` this attempt and ``claim`` the worker's next job in one transaction (see
    ``settle``, which this is for one job). ``cost`` (a ``usage.Cost``) is what the attempt's
    tree used, recorded with its end."""
    states, claimed = settle(
        worker,
        [Ended(job, attempt, outcome, exit_code, error, tail, cost)],
        claim=1 if claim_next else 0,
        max_backoff=max_backoff,
        now=now,
    )
    return states[0], claimed[0] if claimed else None


class Ended(NamedTuple):
    """An attempt that ran to its end, as a worker reports it."""

    job: Job
    attempt: Attempt
    outcome: str
    exit_code: int | None = None
    error: str | None = None
    tail: str | None = None
    cost: Any = None  # a usage.Cost, or None when nothing ran
    at: float | None = None  # when it ended (recorded later, with others): else the record's time


def settle(
    worker: Worker,
    ended: Sequence[Ended] = (),
    *,
    claim: int = 0,
    hand_back: Sequence[tuple[Job, Attempt]] = (),
    next_job: str | None = None,
    max_backoff: float,
    now: float | None = None,
) -> tuple[list[str | None], list[tuple[Job, Attempt]]]:
    """A worker's bookkeeping in one write transaction: record the attempts that ``ended``,
    give back the jobs it holds but has not started (``hand_back``), and claim up to ``claim``
    more. A worker draining short jobs takes the write lock once per few jobs, not once per
    job. The worker row says it is on ``next_job`` (the first held job it will run), or on the
    first one claimed here. Returns the ended jobs' new states (None: taken back meanwhile)
    and the claims, best first. Raises Unregistered, and changes nothing, when it would claim
    for a worker whose row is gone."""
    now = time.time() if now is None else now
    wrote = bool(ended or hand_back or next_job)
    if dialect().batch_statements:
        return _settle_cycle(worker, ended, claim, hand_back, next_job, wrote, max_backoff, now)
    with write_transaction(hot=True):
        states = [
            _finish(
                e.job,
                e.attempt,
                e.outcome,
                e.exit_code,
                e.error,
                e.tail,
                now if e.at is None else e.at,
                max_backoff,
                e.cost,
            )
            for e in ended
        ]
        for job, attempt in hand_back:
            _hand_back(job, attempt, now)
        claimed: list[tuple[Job, Attempt]] = []
        while len(claimed) < claim:
            got = _claim(worker, now)
            if got is None:
                break
            claimed.append(got)
        current = next_job or (claimed[0][0].id if claimed else None)
        # An empty look for work writes nothing: its commit would wake every idle worker and
        # waiter, whose own empty looks would wake this one (heartbeats say alive).
        if (wrote or claimed) and not _set_worker(worker.id, current, now) and claimed:
            raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
    return states, claimed


def _settle_cycle(
    worker: Worker,
    ended: Sequence[Ended],
    claim: int,
    hand_back: Sequence[tuple[Job, Attempt]],
    next_job: str | None,
    wrote: bool,
    max_backoff: float,
    now: float,
) -> tuple[list[str | None], list[tuple[Job, Attempt]]]:
    """PostgreSQL's ``settle``: the ends, the claim and the worker's row in one statement
    (``queuectl_cycle``), sent on its own: one round trip and one commit per batch. A batch
    that hands jobs back, or in which a job died (its dependents go to the DLQ with it), is
    one write transaction of a few statements instead (both rare)."""
    states = [
        _next_state(e.job, e.outcome, e.error, now if e.at is None else e.at, max_backoff)
        for e in ended
    ]
    if not hand_back and all(state[0] != DEAD for state in states):
        done, claimed = _cycle(worker, now, ended, states, claim, (next_job, wrote))
        return [
            state[0] if e.job.seq in done else None for e, state in zip(ended, states, strict=True)
        ], claimed
    with write_transaction(hot=True):
        done = _cycle(worker, now, ended, states, 0, None)[0] if ended else set()
        result = [
            state[0] if e.job.seq in done else None for e, state in zip(ended, states, strict=True)
        ]
        dead = [e.job.seq for e, state in zip(ended, result, strict=True) if state == DEAD]
        if dead:
            fail_dependents(dead, now=now)
        for job, attempt in hand_back:
            _hand_back(job, attempt, now)
        _, claimed = _cycle(worker, now, (), [], claim, (next_job, wrote))
    return result, claimed


def _claim(worker: Worker, now: float) -> tuple[Job, Attempt] | None:
    """The next due job, claimed; its attempt carries ``settings_version``, the settings'
    version as of this claim (the worker runs it under those settings or newer ones)."""
    if dialect().batch_statements:
        claimed = _cycle(worker, now, (), [], 1, None)[1]
        return claimed[0] if claimed else None
    import secrets  # here: it loads hmac and random, which nothing else at start-up needs

    token = secrets.randbits(63)
    queues = worker.queues.split(",") if worker.queues else []
    wanted = json.dumps(queues) if queues else None  # one statement for any queue list
    found = dialect()
    rows = database.execute_sql(found.queries["claim"], (now, wanted, worker.id, token)).fetchall()
    if not rows:
        return None
    *columns, version = rows[0]
    job = Job(**dict(zip(JOB_COLUMNS, columns, strict=True)))
    number = dialect().run("next_number", (job.seq,)).fetchone()[0]
    log_file = log_name(job.id, job.seq, number)
    seq = (
        dialect()
        .run(
            "new_attempt",
            (job.seq, number, worker.id, worker.host, now, log_file, token, job.run_at, job.queue),
        )
        .fetchall()[0][0]
    )
    attempt = Attempt(
        seq=seq,
        job=job.seq,
        number=number,
        worker_id=worker.id,
        host=worker.host,
        started_at=now,
        log_file=log_file,
        claim_token=token,
        due_at=job.run_at,
        queue=job.queue,
    )
    attempt.settings_version = version
    return job, attempt


#: Characters a job id keeps in its log file's name; every other one is written %XX (UTF-8).
_LOG_NAME_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_LOG_NAME_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_LOG_NAME_ID_MAX = 100  # characters of the escaped id; the name stays far below NAME_MAX


def log_name(job_id: str, seq: int, number: int) -> str:
    """``ID@SEQ-ATTEMPT.log``: the job's id first, so that a file is found by its job (the
    names once were ``job{seq}-{n}.log``, which read like the log of a job named ``job1``).
    The id is made safe (``/``, ``@``, ``%``, spaces, a leading dot... written ``%XX``) and cut
    at 100 characters; the internal number after ``@`` (never part of an escaped id) keeps
    two jobs' names apart. Old attempts keep the name their row records."""
    if not _LOG_NAME_PLAIN.fullmatch(job_id):
        safe = "".join(
            ch
            if ch in _LOG_NAME_SAFE
            else "".join(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogateescape"))
            for ch in job_id
        )
        if safe.startswith("."):
            safe = "%2E" + safe[1:]
        if len(safe) > _LOG_NAME_ID_MAX:
            safe = safe[:_LOG_NAME_ID_MAX]
            cut = safe.rfind("%", len(safe) - 2)  # not inside an escape
            safe = safe[:cut] if cut != -1 else safe
        job_id = safe
    return f"{job_id}@{seq}-{number}.log"


#: queuectl_cycle's arrays of the ends, in its order (the cycle statement's e_* parameters).
_END_COLUMNS = (
    "seq",
    "token",
    "state",
    "run_at",
    "given",
    "finished",
    "error",
    "code",
    "tail",
    "now",
    "started",
    "attempt",
    "outcome",
    "pid",
    "pid_started",
    "cpu",
    "rss",
    "procs",
)


def _cycle(
    worker: Worker,
    now: float,
    ended: Sequence[Ended],
    states: Sequence[tuple[str, float | None, float | None, int, str | None]],
    n: int,
    mark: tuple[str | None, bool] | None,
) -> tuple[set[int], list[tuple[Job, Attempt]]]:
    """PostgreSQL: record ``ended`` (their next ``states``, from ``_next_state``), then claim up
    to ``n`` due jobs and their attempts, best first, in one statement (the cycle query); each
    claim's token is distinct. ``mark`` (the job the worker is on, whether it recorded
    something): the worker's row is set as ``_set_worker`` would, in the same statement.
    Returns the seqs of the jobs whose end was recorded (the others were taken back
    meanwhile), and the claims."""
    import secrets

    queues = _queues_of(worker)
    args: dict[str, Any] = {f"e_{key}": [] for key in _END_COLUMNS}
    for e, (state, run_at, finished_at, given_back, error) in zip(ended, states, strict=True):
        cost = e.cost
        for key, value in zip(
            _END_COLUMNS,
            (
                e.job.seq,
                e.attempt.claim_token,
                state,
                run_at,
                given_back,
                finished_at,
                error,
                e.exit_code,
                e.tail,
                now if e.at is None else e.at,
                e.attempt.started_at,
                e.attempt.seq,
                e.outcome,
                e.attempt.pid,
                e.attempt.pid_started,
                None if cost is None else cost.cpu_seconds,
                None if cost is None else cost.peak_rss_bytes,
                None if cost is None else cost.processes,
            ),
            strict=True,
        ):
            args[f"e_{key}"].append(value)
    args.update(
        {
            "now": now,
            "queues": queues or None,
            "worker": worker.id,
            "host": worker.host,
            "token": secrets.randbits(62),
            "n": n,
            "mark": mark is not None,
            "next": mark[0] if mark else None,
            "wrote": bool(mark and mark[1]),
        }
    )
    try:
        rows = dialect().run("cycle", args).fetchall()
    except DatabaseError as exc:
        if getattr(getattr(exc, "orig", None), "pgcode", None) == UNREGISTERED:
            raise Unregistered(f"worker {worker.id} is no longer registered") from None
        raise
    claimed, done = [], set()
    for *columns, seq, number, log_file, version, ended_seqs in rows:
        if ended_seqs is not None or columns[0] is None:
            done = set(ended_seqs or ())
            continue
        job = Job(**dict(zip(JOB_COLUMNS, columns, strict=True)))
        attempt = Attempt(
            seq=seq,
            job=job.seq,
            number=number,
            worker_id=worker.id,
            host=worker.host,
            started_at=now,
            log_file=log_file,
            claim_token=job.claim_token,
            due_at=job.run_at,
            queue=job.queue,
        )
        attempt.settings_version = version
        claimed.append((job, attempt))
    return done, claimed


#: The SQLSTATE queuectl_cycle raises when it claimed for a worker whose row is gone.
UNREGISTERED = "QC001"


def _next_state(
    job: Job, outcome: str, error: str | None, now: float, max_backoff: float
) -> tuple[str, float | None, float | None, int, str | None]:
    """Where an attempt's end takes its job: (state, new run_at or None, finished_at, the retry
    given back (0/1), last error)."""
    run_at: float | None
    finished_at: float | None
    run_at, finished_at, given_back = None, now, 0
    if outcome == Outcome.COMPLETED:
        state, error = COMPLETED, None
    elif outcome == Outcome.INTERRUPTED:
        state, run_at, finished_at, given_back = PENDING, now, None, 1
    elif outcome == Outcome.CANCELLED:
        state, error = DEAD, error or "cancelled"
    elif job.attempts > job.max_retries:
        state = DEAD
    else:
        state = FAILED
        run_at = now + backoff_delay(job.backoff_base, job.attempts, max_backoff)
    return state, run_at, finished_at, given_back, error


def _finish(
    job: Job,
    attempt: Attempt,
    outcome: str,
    exit_code: int | None,
    error: str | None,
    tail: str | None,
    now: float,
    max_backoff: float,
    cost: Any = None,
) -> str | None:
    """The job's next state from the claim's own copy of it: nobody changes a job while it is
    processing (edits, retries and deletes refuse), and the fence below makes sure it still is."""
    state, run_at, finished_at, given_back, error = _next_state(
        job, outcome, error, now, max_backoff
    )
    cursor = dialect().run(
        "finish_job",
        (
            state,
            run_at,
            given_back,
            finished_at,
            error,
            exit_code,
            tail,
            now,
            attempt.started_at,
            job.seq,
            attempt.claim_token,
        ),
    )
    if cursor.rowcount != 1:
        return None
    figures = (
        (None, None, None)
        if cost is None
        else (cost.cpu_seconds, cost.peak_rss_bytes, cost.processes)
    )
    dialect().run(
        "finish_attempt",
        (
            now,
            exit_code,
            outcome,
            error,
            attempt.started_at,
            max(0.0, now - attempt.started_at),
            attempt.pid,
            attempt.pid_started,
            *figures,
            attempt.seq,
        ),
    )
    # A completed job's dependents are released by the trigger job_release (the schema), in this
    # transaction, so the claim that follows may take them.
    if state == DEAD:
        fail_dependents([job.seq], now=now)
    return state


def _hand_back(job: Job, attempt: Attempt, now: float) -> None:
    """Un-claim a job whose command never started (a worker held it behind another job). One
    cancelled meanwhile is not handed back but ends as cancelled, as it would have at its start."""
    asked = dialect().run("cancel_asked", (job.seq, attempt.claim_token)).fetchone()
    if asked is None:
        return  # taken back already
    if asked[0]:
        _finish(job, attempt, Outcome.CANCELLED, None, "cancelled", None, now, 0.0)
        return
    state = FAILED if job.attempts > 1 else PENDING  # a job that failed before waits as failed
    cursor = dialect().run(
        "hand_back_job",
        (state, now, job.seq, attempt.seq, job.seq, attempt.seq, job.seq, attempt.claim_token),
    )
    if cursor.rowcount == 1:
        dialect().run("drop_unused_attempt", (attempt.seq,))


def _set_worker(worker_id: int, job_id: str | None, now: float) -> bool:
    """Busy with ``job_id``, or idle; a stopping worker stays stopping. False when the worker's
    row is gone."""
    return dialect().run("set_worker", (job_id, job_id, now, worker_id)).rowcount == 1


def record_process(attempt: Attempt, pid: int, started: float | None) -> None:
    """Remember the job's shell so that recovery can find and kill its tree. Raises Fenced
    (and the runner then never starts the command) when the claim is no longer current."""
    cursor = dialect().run(
        "record_process", (pid, started, attempt.seq, attempt.job_seq, attempt.claim_token)
    )
    if cursor.rowcount != 1:
        raise Fenced(f"attempt {attempt.number} of job seq {attempt.job_seq} was taken back")


def set_paused(attempt: Attempt, paused: bool) -> None:
    """The worker saw its running job's shell stopped (paused) or running again: say so on the
    job, fenced on the claim (a job taken back meanwhile is not touched). Not a state: a paused
    job is still processing, and its worker still waits for it."""
    Job.update(paused_token=attempt.claim_token if paused else None).where(
        Job.seq == attempt.job_seq, Job.state == PROCESSING, Job.claim_token == attempt.claim_token
    ).execute()


def current_attempt(job: Job) -> Attempt | None:
    """The attempt of a running job's current claim (None: not running, or not started)."""
    if job.state != PROCESSING or job.claim_token is None:
        return None
    return (
        Attempt.select()
        .where(
            Attempt.job == job.seq,
            Attempt.claim_token == job.claim_token,
            Attempt.finished_at.is_null(),
        )
        .first()
    )


def backoff_delay(base: float, failures: int, cap: float) -> float:
    try:
        return min(base**failures, cap)
    except OverflowError:
        return cap


def cancel_requested(job: Job) -> bool:
    return bool(Job.select(Job.cancel_requested).where(Job.seq == job.seq).scalar())
