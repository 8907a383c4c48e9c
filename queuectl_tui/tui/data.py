"""What the console reads, run in worker threads: one call per refresh, plain data back.

Nothing here imports textual. Every call uses the thread's own connection (peewee keeps one
per thread), kept for the thread's next call: a console reads about twice a second, and a new
SQLite connection parses the whole schema again (2-4 ms of CPU, half of a refresh's reads). It
is closed after a failure, and when the file it reads was replaced. Failures come back as
a one-line ``Problem`` for the screen to show. A read that waits on a locked database waits in
its thread (up to the busy timeout): the screen notices the wait and says so meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from peewee import DatabaseError, InterfaceError, fn

from queuectl_tui import engine, metrics, paths, present, schedules, settings
from queuectl_tui.errors import DatabaseUnusable, QueueError
from queuectl_tui.run.monitor import WorkerStats
from queuectl_tui.store import (
    describe_db_error,
    describe_target,
    jobs_token,
    open_db,
    write_transaction,
)
from queuectl_tui.store.models import STATES, Attempt, Job, Meta, database
from queuectl_tui.visible import visible

THROUGHPUT_MINUTES = 30


_OPENING = threading.Lock()


class Problem(Exception):
    """The database cannot be read or written right now (missing, locked, corrupt)."""


def call(db_path: Path | str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``func`` against the database at ``db_path`` in this thread.

    Raises Problem for database trouble; QueueError (bad input, wrong state) passes through.
    The console never creates a database: a missing file is reported as such.
    """
    failed = True
    try:
        if not paths.is_url(db_path):
            try:
                found = os.stat(db_path)
            except FileNotFoundError:
                raise Problem(
                    f"no database at {db_path} (run a queuectl-tui command to create one, "
                    "or start the console with --db PATH)"
                ) from None
            if getattr(_kept, "file", None) != (found.st_dev, found.st_ino):
                _close()  # a connection to the file that was there before (deleted, replaced)
                _kept.file = (found.st_dev, found.st_ino)
        with _OPENING:  # the first reads of a console come from several threads at once
            open_db(db_path, create=False)
        result = func(*args, **kwargs)
        failed = False
        return result
    except DatabaseUnusable as exc:
        raise Problem(str(exc)) from None
    except (DatabaseError, sqlite3.Error) as exc:
        raise Problem(describe_db_error(exc, describe_target(db_path))) from None
    except InterfaceError as exc:  # PostgreSQL: a connection the server dropped mid-call
        raise Problem(describe_db_error(exc, describe_target(db_path))) from None
    except OSError as exc:
        raise Problem(f"{exc.strerror or exc}: {exc.filename or db_path}") from None
    finally:
        if failed:
            _close()


#: The file this thread's kept connection was opened on (device, inode).
_kept = threading.local()


def _close() -> None:
    try:
        if database.obj is not None and not database.obj.is_closed():
            database.obj.close()
    except Exception:  # a connection we cannot close is dropped with its thread
        pass


# --- the main screen ---------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """What the jobs table shows: a tab, a filter, an order and where in it."""

    state: str | None = None  # None = every state
    search: str = ""
    sort: str = "seq"
    descending: bool = True
    #: A row of the order: the page shown is the screenful holding it (LAST: the last).
    start: int = 0


#: View.start of the last page, whatever its number.
LAST = 2**62


@dataclass
class Page:
    """One screenful of the view: rows ``start`` to ``start + len(jobs)`` of the order, read
    with the count (``total``) in one snapshot. Page 1 is the head of the order, page k its
    rows from (k-1)*limit: the page shown is always the slice its number names."""

    view: View
    jobs: list[Job]
    total: int  # rows matching tab and filter
    start: int = 0  # index of the first row in the order
    limit: int = 1  # rows per page it was read for
    costs: dict[int, tuple] | None = None  # job seq -> its last attempt's (cpu, peak, processes)
    runs: dict[int, int] = field(default_factory=dict)  # job seq -> its latest attempt's number
    holds: dict[int, Any] = field(default_factory=dict)  # job seq -> engine.Hold (waiting jobs)

    @property
    def number(self) -> int:
        return self.start // self.limit + 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))

    @property
    def has_next(self) -> bool:
        return self.start + len(self.jobs) < self.total

    @property
    def has_prev(self) -> bool:
        return self.start > 0

    @property
    def here(self) -> View:
        """The view of this very page (its start made exact: the last page asked as LAST, or a
        page past the end that rows left, is the page shown)."""
        return replace(self.view, start=self.start)


def turn(page: Page, step: int) -> View:
    """The view ``step`` pages on from ``page`` (that same page where there is none)."""
    start = page.start + step * page.limit
    return replace(page.here, start=start) if 0 <= start < page.total else page.here


def far(page: Page, step: int) -> View:
    """The view of the last page (``step`` > 0) or of the first."""
    return replace(page.here, start=LAST if step > 0 else 0)


@dataclass
class Status:
    counts: dict[str, int]
    workers: list[WorkerStats]
    throughput: list[tuple[int, int]]
    paused: list[str] = field(default_factory=list)  # queues workers claim nothing from

    @property
    def alive(self) -> int:
        return sum(1 for w in self.workers if w.alive)

    @property
    def busy(self) -> int:
        return sum(1 for w in self.workers if w.busy)


def read_page(view: View, limit: int) -> Page:
    """The page of ``limit`` rows that holds row ``view.start`` (the last one past the end)."""
    rows, start, total = engine.jobs_window(
        state=view.state,
        search=view.search or None,
        sort=view.sort,
        descending=view.descending,
        start=view.start,
        limit=limit,
    )
    seqs = [job.seq for job in rows]
    costs = engine.last_costs(seqs) if view.state in COSTED else None
    return Page(view, rows, total, start, limit, costs, latest_attempts(seqs), engine.holds(rows))


def latest_attempts(seqs: list[int]) -> dict[int, int]:
    """Job seq -> its latest attempt's number (``engine.attempts_run`` for a page of jobs: the
    numbers continue through dlq retry and restart), one index probe per job."""
    if not seqs:
        return {}
    # execute(): the rows as they are; peewee's stubs type a model query's rows as models.
    return dict(
        Attempt.select(Attempt.job, fn.MAX(Attempt.number))
        .where(Attempt.job.in_(seqs))
        .group_by(Attempt.job)
        .tuples()
        .execute()
    )


#: The change tokens come from one thread, on its own kept connection: a token is per
#: connection (SQLite's data_version gates it; PostgreSQL's count of notifications heard on
#: it), and the reads run on whichever thread of the pool is free, so tokens taken there would
#: not compare from one read to the next. The token is ``store.jobs_token``: the workers'
#: heartbeats (each worker's, every second) do not move it, so a console beside idle workers
#: reads no page.
_TOKENS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queuectl-token")


def _token() -> tuple[Any, Any]:
    return database.connection(), jobs_token()


class Changes:
    """One screen's reads of one kind (its page): ``read`` skips a read when nothing was
    committed since the one on screen started."""

    def __init__(self) -> None:
        # (connection, token, number) of the last full read
        self._last: tuple[Any, Any, int] | None = None
        self._lock = threading.Lock()

    def read(
        self,
        db_path: Path | str,
        number: int,
        shown: int | None,
        func: Callable[..., Any],
        *args: Any,
    ) -> Any:
        """``call(db_path, func, *args)``, or UNCHANGED when nothing was committed since
        read number ``shown`` (the one on screen) started. Reads are numbered as they start,
        one at a time, each taking the change token first: the token as it was before the
        last full read, that read numbered at most ``shown``, means nothing was committed
        since the read shown. Anything else (another connection, no token, no ``shown``)
        reads. At rest a console then reads nothing but the token (shared memory, a socket)."""
        conn, token = _TOKENS.submit(call, db_path, _token).result()
        with self._lock:
            before = self._last
        if (
            token is not None
            and shown is not None
            and before is not None
            and before[:2] == (conn, token)
            and before[2] <= shown
        ):
            return UNCHANGED
        result = call(db_path, func, *args)
        if token is not None:
            with self._lock:
                if self._last is None or self._last[2] < number:
                    self._last = (conn, token, number)
        return result


#: What ``Changes.read`` returns for a read it did not need to make.
UNCHANGED = object()


#: Tabs whose rows show what the job's last attempt cost.
COSTED = ("completed", "dead")


def read_status(monitor: Any, now: float) -> Status:
    counts = engine.counts()
    paused = [row["name"] for row in engine.queue_rows() if row["paused"]]
    throughput = engine.throughput(minutes=THROUGHPUT_MINUTES, now=now)
    return Status(counts, monitor.sample(now), throughput, paused)


# --- queues ------------------------------------------------------------------------------------


@dataclass
class Queues:
    rows: list[dict[str, Any]]  # engine.queue_rows()
    paused_all: bool  # ``pause`` without a queue is in force (queues not named follow it)


def paused_all() -> bool:
    row = Meta.get_or_none(Meta.key == engine.PAUSED_ALL)
    return row is not None and row.value == "1"


def read_queues() -> Queues:
    return Queues(engine.queue_rows(), paused_all())


def toggle_pause(queue: str | None) -> bool:
    """Resume ``queue`` (every queue if None) when it is paused, else pause it, as
    ``pause``/``resume [--queue Q]`` do. Returns True when it is now paused."""
    paused = not (paused_all() if queue is None else engine.queue_state(queue)["paused"])
    (engine.pause if paused else engine.resume)(None if queue is None else [queue])
    return paused


# --- the schedules screen -----------------------------------------------------------------------


def read_schedules(now: float) -> list[dict[str, Any]]:
    """Every schedule as ``schedule list --json`` gives it."""
    return schedules.rows(now=now)


def toggle_schedule(name: str) -> bool:
    """Resume the schedule when it is paused, else pause it (``schedule pause|resume NAME``).
    Returns True when it is now paused."""
    if schedules.get(name).paused:
        schedules.resume(name)
        return False
    schedules.pause(name)
    return True


# --- the detail screen -------------------------------------------------------------------------


@dataclass
class Detail:
    fields: dict[str, Any]
    why: str
    attempts: list[dict[str, Any]]
    running: bool
    #: (id, state; None: deleted)
    dependencies: list[tuple[str, str | None]] = field(default_factory=list)
    tree: Any = None  # monitor.JobTree of the running attempt (on this host), else None
    history: list[tuple[float, float, int]] | None = None  # its (time, CPU %, RSS) so far
    tree_read: bool = False  # the tree was read this time (about once a second)


def read_detail(job_id: str, now: float, monitor: Any = None) -> Detail:
    job = engine.get_job(job_id)
    attempts = engine.attempts_of(job)
    data = present.job_dict(job, full=True)
    data.pop("output_tail", None)
    # As ``show`` says it: every run counted, the retry budget on its own.
    data["attempts"], data["retry budget"] = len(attempts), present.budget(job)
    rows = []
    for attempt in attempts:
        row = present.attempt_dict(attempt, engine.log_path(attempt))
        row["started_ts"], row["finished_ts"] = attempt.started_at, attempt.finished_at
        row["log_path"] = engine.log_path(attempt)
        last = all(a.finished_at is None for a in attempts if a.number > attempt.number)
        elsewhere = engine.log_elsewhere(job, attempt, last=last)
        if elsewhere is not None:  # run on another host: say where, show the tail kept here
            where, tail = elsewhere
            row["log_path"] = None
            row["log_note"] = (
                f"({where}; its last output, kept in the database:)\n{visible(tail)}"
                if tail
                else f"({where}; no output of it is kept in the database)"
            )
        rows.append(row)
    why = present.explain(engine.why_facts(job, now=now))
    detail = Detail(data, why, rows, job.state == "processing", engine.dependencies(job))
    held = engine.running_attempts().get(job.id) if detail.running and monitor is not None else None
    if held is not None:
        detail.tree, detail.history = monitor.job_tree(held[0], held[1], now)
    return detail


@dataclass
class Output:
    """The output pane: the latest attempt of the selected job, and what its log added."""

    job_id: str
    attempt: int | None
    running: bool
    key: tuple | None  # (attempt number, log path): another key starts the pane over
    chunk: LogChunk | None


def read_output(job_id: str, key: tuple | None, offset: int) -> Output:
    job = engine.get_job(job_id)
    attempts = engine.attempts_of(job)
    if not attempts:
        return Output(job_id, None, False, None, None)
    latest = attempts[-1]
    path = engine.log_path(latest)
    running = latest.finished_at is None
    elsewhere = engine.log_elsewhere(job, latest, last=True)
    if elsewhere is not None:  # run on another host: where its log is, and the tail kept here
        where, tail = elsewhere
        note = (
            f"({where}; its last output, kept in the database:)\n{visible(tail)}"
            if tail
            else f"({where}; its last output is shown here when it ends)"
            if running
            else f"({where}; no output of it is kept in the database)"
        )
        return Output(
            job_id,
            latest.number,
            running,
            (latest.number, None, note),
            LogChunk("", 0, missing=True, note=note),
        )
    new_key = (latest.number, str(path))
    chunk = read_log(path, offset if new_key == key else 0, complete=not running)
    return Output(job_id, latest.number, running, new_key, chunk)


@dataclass
class LogChunk:
    text: str
    offset: int
    skipped: int = 0  # bytes before the first one shown
    missing: bool = False
    note: str | None = None  # said instead of "no log file" (a log on another host)


def read_log(
    path: Path | None, offset: int, *, complete: bool = True, first_bytes: int = 256 * 1024
) -> LogChunk:
    """New bytes of a log file from ``offset`` (at most the last ``first_bytes`` on first read).
    While the attempt runs (``complete`` False) an unfinished last line waits for the next read.
    No file is no output (yet): a job's log is made at its first byte."""
    if path is None:
        return LogChunk("", offset, missing=True)
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            skipped = 0
            if offset == 0 and size > first_bytes:
                skipped = size - first_bytes
                offset = skipped
            if size < offset:  # truncated or replaced: start over
                offset = 0
            handle.seek(offset)
            data = handle.read(4 * 1024 * 1024)
    except FileNotFoundError:
        return LogChunk("", offset)
    except OSError:
        return LogChunk("", offset, missing=True)
    # Keep a partial UTF-8 sequence or an unfinished line for the next read.
    end = len(data)
    if not complete and data and not data.endswith(b"\n"):
        end = data.rfind(b"\n") + 1 or (len(data) if len(data) > 64 * 1024 else 0)
    # Shown on the operator's terminal: the job's escape sequences are shown, not obeyed.
    return LogChunk(visible(data[:end].decode("utf-8", "replace")), offset + end, skipped)


# --- the stats screen --------------------------------------------------------------------------


def read_stats(
    window: float, now: float, slices: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``stats`` for the last ``window`` seconds, and the chart's slices of it."""
    return (
        metrics.execution_stats(now - window, None, now),
        metrics.timeline(now - window, now, slices),
    )


# --- modals ------------------------------------------------------------------------------------


def read_settings() -> list[dict[str, Any]]:
    return settings.describe()


def save_settings(changes: dict[str, Any], resets: list[str]) -> None:
    with write_transaction():
        _save(changes, resets)


def _save(changes: dict[str, Any], resets: list[str]) -> None:
    for key in resets:
        settings.reset(key)
    for key, value in changes.items():
        settings.set_value(key, value)


__all__ = [
    "Problem",
    "QueueError",
    "View",
    "LAST",
    "Page",
    "turn",
    "far",
    "Status",
    "Queues",
    "Detail",
    "LogChunk",
    "Output",
    "STATES",
    "COSTED",
    "UNCHANGED",
    "Changes",
    "call",
    "read_page",
    "read_status",
    "read_queues",
    "toggle_pause",
    "paused_all",
    "read_detail",
    "read_log",
    "read_output",
    "read_stats",
    "read_settings",
    "save_settings",
]
