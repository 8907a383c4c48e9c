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

from queuectl_tui import settings
from queuectl_tui.engine.chains import fail_dependents
from queuectl_tui.engine.common import _queues_of
from queuectl_tui.engine.workers import Fenced, Unregistered
from queuectl_tui.store import (
    held_limited,
    set_held_limited,
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
    with write_transaction(hot=True, claiming=_queues_of(worker)):
        claimed = _claim(worker, now)
        # an empty poll writes nothing (a commit would wake every idle worker)
        if claimed and not _set_worker(worker.id, claimed[0].id, now):
            raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
    return claimed


def finish(job: Job, attempt: Attempt, *, outcome: str, exit_code: int | None = None,
           error: str | None = None, tail: str | None = None, now: float | None = None,
           max_backoff: float | None = None) -> str | None:
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


def finish_and_claim(job: Job, attempt: Attempt, worker: Worker, *, outcome: str,
                     exit_code: int | None, error: str | None, tail: str | None,
                     max_backoff: float, now: float | None = None, claim_next: bool = True,
                     cost: Any = None) -> tuple[str | None, tuple[Job, Attempt] | None]:
    """``finish`` this attempt and ``claim`` the worker's next job in one transaction (see
    ``settle``, which this is for one job). ``cost`` (a ``usage.Cost``) is what the attempt's
    tree used, recorded with its end."""
    states, claimed = settle(worker, [Ended(job, attempt, outcome, exit_code, error, tail, cost)],
                             claim=1 if claim_next else 0, max_backoff=max_backoff, now=now)
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


def settle(worker: Worker, ended: Sequence[Ended] = (), *, claim: int = 0,
           hand_back: Sequence[tuple[Job, Attempt]] = (), next_job: str | None = None,
           max_backoff: float, now: float | None = None
           ) -> tuple[list[str | None], list[tuple[Job, Attempt]]]:
    """A worker's bookkeeping in one write transaction: record the attempts that ``ended``,
    give back the jobs it holds but has not started (``hand_back``), and claim up to ``claim``
    more. A worker draining short jobs takes the write lock once per few jobs, not once per
    job. The worker row says it is on ``next_job`` (the first held job it will run), or on the
    first one claimed here. Returns the ended jobs' new states (None: taken back meanwhile)
    and the claims, best first. Raises Unregistered, and changes nothing, when it would claim
    for a worker whose row is gone."""
    now = time.time() if now is None else now
    batches = dialect().batch_statements
    with write_transaction(hot=True, claiming=_queues_of(worker) if claim else None):
        if not batches:
            states = [_finish(e.job, e.attempt, e.outcome, e.exit_code, e.error, e.tail,
                              now if e.at is None else e.at, max_backoff, e.cost) for e in ended]
        else:  # PostgreSQL: the batch's ends in one statement, its claims in another
            states = _finish_batch(ended, now, max_backoff)
        for job, attempt in hand_back:
            _hand_back(job, attempt, now)
        claimed: list[tuple[Job, Attempt]] = []
        wrote = bool(ended or hand_back or next_job)
        if batches and claim:  # the worker's row is marked in the claim's statement
            claimed, marked = _claim_batch(worker, now, claim, mark=(next_job, wrote))
            if claimed and not marked:
                raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
            return states, claimed
        while len(claimed) < claim:
            got = _claim(worker, now)
            if got is None:
                break
            claimed.append(got)
        current = next_job or (claimed[0][0].id if claimed else None)
        # An empty look for work writes nothing: its commit would wake every idle worker and
        # waiter, whose own empty looks would wake this one (heartbeats say alive).
        if ((wrote or claimed) and not _set_worker(worker.id, current, now) and claimed):
            raise Unregistered(f"worker {worker.id} is no longer registered")  # rolled back
    return states, claimed


def _limited_held(queues: list[str]) -> list[str]:
    """PostgreSQL: the limited queues this transaction may claim from (their locks taken with
    its BEGIN, or now: a claim in a transaction not opened for claiming)."""
    held = held_limited()
    if held is None:
        found = dialect()
        held = list(database.execute_sql(found.queries["claim_locks"],
                                         {"queues": queues or None}).fetchone()[1])
        set_held_limited(held)
    return held


def _claim(worker: Worker, now: float) -> tuple[Job, Attempt] | None:
    """The next due job, claimed; its attempt carries ``settings_version``, the settings'
    version as of this claim (the worker runs it under those settings or newer ones)."""
    if dialect().batch_statements:
        claimed = _claim_batch(worker, now, 1)[0]
        return claimed[0] if claimed else None
    import secrets  # here: it loads hmac and random, which nothing else at start-up needs
    token = secrets.randbits(63)
    queues = worker.queues.split(",") if worker.queues else []
    wanted = json.dumps(queues) if queues else None  # one statement for any queue list
    found = dialect()
    rows = database.execute_sql(found.queries["claim"],
                                (now, wanted, worker.id, token)).fetchall()
    if not rows:
        return None
    *columns, version = rows[0]
    job = Job(**dict(zip(JOB_COLUMNS, columns, strict=True)))
    number = dialect().run("next_number", (job.seq,)).fetchone()[0]
    log_file = log_name(job.id, job.seq, number)
    seq = dialect().run("new_attempt", (job.seq, number, worker.id, worker.host, now,
                                                    log_file, token, job.run_at, job.queue)
                                ).fetchall()[0][0]
    attempt = Attempt(seq=seq, job=job.seq, number=number, worker_id=worker.id, host=worker.host,
                      started_at=now, log_file=log_file, claim_token=token, due_at=job.run_at,
                      queue=job.queue)
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
        safe = "".join(ch if ch in _LOG_NAME_SAFE else "".join(
            f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogateescape")) for ch in job_id)
        if safe.startswith("."):
            safe = "%2E" + safe[1:]
        if len(safe) > _LOG_NAME_ID_MAX:
            safe = safe[:_LOG_NAME_ID_MAX]
            cut = safe.rfind("%", len(safe) - 2)  # not inside an escape
            safe = safe[:cut] if cut != -1 else safe
        job_id = safe
    return f"{job_id}@{seq}-{number}.log"


def _claim_batch(worker: Worker, now: float, n: int,
                 mark: tuple[str | None, bool] | None = None
                 ) -> tuple[list[tuple[Job, Attempt]], bool]:
    """PostgreSQL: up to ``n`` due jobs and their attempts, best first, in one statement
    (the claim_batch query); each claim's token is distinct. ``mark`` (the job the worker is on,
    whether it recorded something): the worker's row is set as ``_set_worker`` would, in the
    same statement. Returns the claims and whether the worker's row was marked."""
    import secrets
    queues = _queues_of(worker)
    args = {"now": now, "queues": queues or None, "worker": worker.id, "host": worker.host,
            "token": secrets.randbits(62), "n": n, "limited": _limited_held(queues),
            "mark": mark is not None, "next": mark[0] if mark else None,
            "wrote": bool(mark and mark[1])}
    claimed, marked = [], False
    rows = dialect().run("claim_batch", args).fetchall()
    for *columns, seq, number, log_file, version, marks in rows:
        marked = marks > 0
        job = Job(**dict(zip(JOB_COLUMNS, columns, strict=True)))
        attempt = Attempt(seq=seq, job=job.seq, number=number, worker_id=worker.id,
                          host=worker.host, started_at=now, log_file=log_file,
                          claim_token=job.claim_token, due_at=job.run_at, queue=job.queue)
        attempt.settings_version = version
        claimed.append((job, attempt))
    return claimed, marked


def _next_state(job: Job, outcome: str, error: str | None, now: float, max_backoff: float
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


def _finish_batch(ended: Sequence[Ended], now: float, max_backoff: float) -> list[str | None]:
    """PostgreSQL: ``_finish`` of every attempt that ended, in one statement
    (the finish_batch query); then the dependents of those that died go to the DLQ."""
    if not ended:
        return []
    columns: dict[str, list[Any]] = {key: [] for key in (
        "seq", "token", "state", "run_at", "given", "finished", "error", "code", "tail", "now",
        "started", "attempt", "outcome", "pid", "pid_started", "cpu", "rss", "procs")}
    states = []
    for e in ended:
        at = now if e.at is None else e.at
        state, run_at, finished_at, given_back, error = _next_state(
            e.job, e.outcome, e.error, at, max_backoff)
        states.append(state)
        cost = e.cost
        for key, value in (
                ("seq", e.job.seq), ("token", e.attempt.claim_token), ("state", state),
                ("run_at", run_at), ("given", given_back), ("finished", finished_at),
                ("error", error), ("code", e.exit_code), ("tail", e.tail), ("now", at),
                ("started", e.attempt.started_at), ("attempt", e.attempt.seq),
                ("outcome", e.outcome), ("pid", e.attempt.pid),
                ("pid_started", e.attempt.pid_started),
                ("cpu", None if cost is None else cost.cpu_seconds),
                ("rss", None if cost is None else cost.peak_rss_bytes),
                ("procs", None if cost is None else cost.processes)):
            columns[key].append(value)
    done = {seq for (seq,) in dialect().run("finish_batch", columns).fetchall()}
    result = [state if e.job.seq in done else None for e, state in zip(ended, states, strict=True)]
    dead = [e.job.seq for e, state in zip(ended, result, strict=True) if state == DEAD]
    if dead:
        fail_dependents(dead, now=now)
    return result


def _finish(job: Job, attempt: Attempt, outcome: str, exit_code: int | None, error: str | None,
            tail: str | None, now: float, max_backoff: float, cost: Any = None) -> str | None:
    """The job's next state from the claim's own copy of it: nobody changes a job while it is
    processing (edits, retries and deletes refuse), and the fence below makes sure it still is."""
    state, run_at, finished_at, given_back, error = _next_state(job, outcome, error, now,
                                                                max_backoff)
    cursor = dialect().run("finish_job", (
        state, run_at, given_back, finished_at, error, exit_code, tail, now, attempt.started_at,
        job.seq, attempt.claim_token))
    if cursor.rowcount != 1:
        return None
    figures = ((None, None, None) if cost is None else
               (cost.cpu_seconds, cost.peak_rss_bytes, cost.processes))
    dialect().run("finish_attempt", (now, exit_code, outcome, error,
                                                 attempt.started_at,
                                                 max(0.0, now - attempt.started_at), attempt.pid,
                                                 attempt.pid_started, *figures, attempt.seq))
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
    cursor = dialect().run("hand_back_job", (
        state, now, job.seq, attempt.seq, job.seq, attempt.seq, job.seq, attempt.claim_token))
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
        "record_process", (pid, started, attempt.seq, attempt.job_seq, attempt.claim_token))
    if cursor.rowcount != 1:
        raise Fenced(f"attempt {attempt.number} of job seq {attempt.job_seq} was taken back")


def set_paused(attempt: Attempt, paused: bool) -> None:
    """The worker saw its running job's shell stopped (paused) or running again: say so on the
    job, fenced on the claim (a job taken back meanwhile is not touched). Not a state: a paused
    job is still processing, and its worker still waits for it."""
    Job.update(paused_token=attempt.claim_token if paused else None).where(
        Job.seq == attempt.job_seq, Job.state == PROCESSING,
        Job.claim_token == attempt.claim_token).execute()


def current_attempt(job: Job) -> Attempt | None:
    """The attempt of a running job's current claim (None: not running, or not started)."""
    if job.state != PROCESSING or job.claim_token is None:
        return None
    return (Attempt.select().where(Attempt.job == job.seq, Attempt.claim_token == job.claim_token,
                                   Attempt.finished_at.is_null()).first())


def backoff_delay(base: float, failures: int, cap: float) -> float:
    try:
        return min(base ** failures, cap)
    except OverflowError:
        return cap


def cancel_requested(job: Job) -> bool:
    return bool(Job.select(Job.cancel_requested).where(Job.seq == job.seq).scalar())
