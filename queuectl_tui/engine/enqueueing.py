"""Enqueueing: one transaction for a list of specs, and the staged bulk path for streams."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from peewee import Database, IntegrityError, chunked

from queuectl_tui import settings
from queuectl_tui.engine.chains import _add_dependencies, _settle
from queuectl_tui.engine.common import _check_cwd, _new_id, environment_row
from queuectl_tui.engine.queues import aging_rate
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store import (
    write_transaction,
)
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import (
    PENDING,
    Environment,
    Job,
    database,
)


def enqueue(
    specs: Iterable[dict[str, Any]],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    now: float | None = None,
) -> list[Job]:
    """Insert validated specs (see ``spec.normalize``) in one transaction: all or nothing."""
    specs = list(specs)
    now = time.time() if now is None else now
    cwd = _check_cwd(cwd if cwd is not None else os.getcwd())
    env = dict(os.environ) if env is None else env
    given = [s["id"] for s in specs if s.get("id")]
    seen: set[str] = set()
    for job_id in given:
        if job_id in seen:
            raise InvalidInput(
                f"duplicate job id {job_id!r} in the input; nothing enqueued", field="id"
            )
        seen.add(job_id)
    env_row = environment_row(env)
    jobs = []
    with write_transaction():
        # Read under the write lock, the aging rate with them, in the round trip that stores
        # the environment (on PostgreSQL: round trips before the commit a waiting worker
        # wakes at count in the pickup latency).
        defaults = _settings(dialect().enqueue_prelude(*env_row))
        rate = defaults.priority_aging
        for spec in specs:
            row = {
                "id": spec.get("id") or _new_id(),
                "command": spec["command"],
                "queue": spec.get("queue", "default"),
                "priority": spec.get("priority", 0),
                "max_retries": spec.get("max_retries", defaults.max_retries),
                "backoff_base": spec.get("backoff_base", defaults.backoff_base),
                "timeout": spec.get("timeout", defaults.default_timeout),
                "run_at": spec.get("run_at", now),
                "label": spec.get("label"),
                "created_at": now,
                "updated_at": now,
                "cwd": cwd,
                "env_digest": env_row[0],
                "state": PENDING,
            }
            row["rank"] = row["priority"] - rate * row["run_at"] / 60.0
            try:  # the unique index is the check; raising here rolls back the whole input
                job = Job.create(**row)
            except IntegrityError:
                raise InvalidInput(
                    f"job id {row['id']!r} already exists; nothing enqueued", field="id"
                ) from None
            if spec.get("after"):
                _add_dependencies(job.seq, spec["after"])
                _settle([job.seq], now=now)
                job = Job.get_by_id(job.seq)
            jobs.append(job)
    return jobs


def _settings(rows: list[tuple[str, str]]) -> settings.Settings:
    """``settings.load()`` from the rows of ``setting`` already read."""
    stored = {key: json.loads(value) for key, value in rows if key in settings.SETTINGS}
    return settings.DEFAULTS._replace(**stored) if stored else settings.DEFAULTS


_STAGE_CHUNK = 5000


@contextmanager
def enqueue_stream(
    specs: Iterable[tuple[str, dict[str, Any]]],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    now: float | None = None,
) -> Iterator[Staged]:
    """Enqueue ``(where, spec)`` pairs from an input of any length: all or nothing, in order.

    Every line is read and checked before the write lock is taken, and memory does not grow
    with the input: on SQLite into a TEMP table of this connection (a temporary file), checked
    there for repeated ids, then moved by one ``INSERT INTO job … SELECT`` in one short
    IMMEDIATE transaction; on PostgreSQL (``dialect().copies``) into a spool of this process
    in the form of COPY's text, then moved by one COPY (see ``_enqueue_stream_copy``).
    ``where`` ("line 7") names the job in messages. Yields a ``Staged`` that reads back the
    ids or jobs in input order; the stage is dropped on leaving.
    Plain SQL rather than models: this is the hot path (one model instance per row cost 98%
    of a bulk enqueue); the statements are ``dialect().bulk``'s (sql/<backend>/enqueue.sql).
    """
    now = time.time() if now is None else now
    cwd = _check_cwd(os.getcwd() if cwd is None else cwd)
    digest, data = environment_row(dict(os.environ) if env is None else env)
    defaults = settings.load()
    db = database.obj
    if dialect().copies:
        with _enqueue_stream_copy(db, specs, defaults, now, cwd, digest, data) as staged:
            yield staged
        return
    bulk = dialect().bulk
    db.execute_sql(bulk["stage_drop"])
    db.execute_sql(bulk["stage_create"])
    rows = _StageRows(specs, defaults, now)
    try:
        count = 0
        with db.atomic():  # a deferred transaction that writes only the temp database
            for chunk in chunked(rows, _STAGE_CHUNK):
                db.cursor().executemany(bulk["stage_insert"], chunk)
                count += len(chunk)
            _check_stage_ids(db)
        if count:
            _move_stage(db, now, cwd, digest, data, rows.chained)
        yield Staged(count, rows.chained)
    finally:
        db.execute_sql(bulk["stage_drop"])


class Staged:
    """What ``enqueue_stream`` added, read back in input order without holding it in memory:
    from the stage until ``enqueue_stream`` drops it, or from the spool the lines were moved
    from (``spool``: its ids; a stage is loaded from it only if the jobs themselves are read)."""

    def __init__(self, count: int, chained: bool, spool: _Spool | None = None) -> None:
        self.count, self.chained, self.spool = count, chained, spool

    def ids(self) -> Iterator[str]:
        if self.spool is not None:
            yield from self.spool.ids()
            return
        cursor = database.obj.execute_sql(dialect().bulk["staged_ids"])
        while batch := cursor.fetchmany(_STAGE_CHUNK):
            yield from (row[0] for row in batch)

    def jobs(self) -> Iterator[Job]:
        if self.spool is not None:
            self.spool.stage()
        return Job.raw(dialect().bulk["staged_jobs"]).iterator()

    def dead(self) -> list[tuple[str, str]]:
        """(id, error) of the jobs that went straight to the DLQ: a dependency was dead."""
        if not self.count or not self.chained:
            return []
        return database.obj.execute_sql(dialect().bulk["staged_dead"]).fetchall()


class _StageRows:
    """The stage's rows from ``(where, spec)`` pairs, defaults filled in: (id or None, command,
    queue, priority, max_retries, backoff_base, timeout, run_at, where, after as JSON or None,
    label).
    ``chained`` tells afterwards whether any spec named jobs to wait for."""

    def __init__(
        self, specs: Iterable[tuple[str, dict[str, Any]]], defaults: settings.Settings, now: float
    ) -> None:
        self.specs, self.defaults, self.now, self.chained = specs, defaults, now, False

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        defaults, now = self.defaults, self.now
        for where, spec in self.specs:
            after = spec.get("after")
            if after:
                self.chained = True
            yield (
                spec.get("id"),
                spec["command"],
                spec.get("queue", "default"),
                spec.get("priority", 0),
                spec.get("max_retries", defaults.max_retries),
                spec.get("backoff_base", defaults.backoff_base),
                spec.get("timeout", defaults.default_timeout),
                spec.get("run_at", now),
                where,
                json.dumps(after) if after else None,
                spec.get("label"),
            )


_ANALYZE_AFTER = 10_000  # rows added by one bulk enqueue on PostgreSQL
_SPOOL_MEMORY = 16 << 20  # characters of a spool kept in memory; past them, a temporary file
_SPOOL_PAGE = 1000  # lines formatted per write to the spool


class _Rerun(Exception):
    """The aging rate changed between the spool's ranks and the move: move through the stage."""


@contextmanager
def _enqueue_stream_copy(
    db: Database,
    specs: Iterable[tuple[str, dict[str, Any]]],
    defaults: settings.Settings,
    now: float,
    cwd: str,
    digest: str,
    data: str,
) -> Iterator[Staged]:
    """PostgreSQL: every line checked and written to a spool (memory, then a temporary file)
    in COPY's text form, with no lock and no server work; then one COPY into job under the
    write lock, its duration the server's inserts alone (an INSERT … SELECT from a TEMP table
    staged first cost the server the stage's writes, reads and sort besides, and the client
    execute_values' formatting). The unique index on job.id is the check of every id: only
    when the COPY fails, or when lines name jobs to wait for, is the spool loaded into a stage
    (``_Spool.stage``) to find the line to refuse, draw a generated id again, or add the
    dependencies, and moved from there by INSERT … SELECT as on SQLite."""
    import tempfile  # (shutil, random: a few ms of a command's start, on this path alone)

    rate = aging_rate()  # read again under the write lock: a change moves through the stage
    with tempfile.SpooledTemporaryFile(_SPOOL_MEMORY, "w+", encoding="utf-8", newline="") as file:
        spool = _Spool(db, file)
        try:
            count, chained = spool.write(specs, defaults, now, rate)
            moved = False
            if count and not chained:
                try:
                    with write_transaction():
                        Environment.insert(digest=digest, data=data).on_conflict_ignore().execute()
                        if aging_rate() != rate:
                            raise _Rerun
                        dialect().copy_in(
                            dialect().bulk["copy_job"],
                            spool.job_lines(
                                f"\t{PENDING}\t0\t{now!r}\t{now!r}\t{_copy_text(cwd)}\t{digest}\tf\n"
                            ),
                        )
                    moved = True
                except (IntegrityError, _Rerun):  # an id taken or repeated: found on the stage
                    pass
            if count and not moved:
                spool.stage()
                with db.atomic():
                    _check_stage_ids(db)
                _move_stage(db, now, cwd, digest, data, chained)
            if count >= _ANALYZE_AFTER:
                db.execute_sql(dialect().bulk["analyze_job"])
            yield Staged(count, chained, None if spool.staged else spool)
        finally:
            spool.drop_stage()


class _Spool:
    """The checked lines in COPY's text form (the stage's columns: ``stage_copy``), first in
    memory, then in a temporary file; read back by the COPY into job, the stage, or ``ids``."""

    def __init__(self, db: Database, file: Any) -> None:
        self.db, self.file, self.staged = db, file, False

    def write(
        self,
        specs: Iterable[tuple[str, dict[str, Any]]],
        defaults: settings.Settings,
        now: float,
        rate: float,
    ) -> tuple[int, bool]:
        """Each spec's line: id (drawn here if none), command, queue, priority, max_retries,
        backoff_base, timeout, run_at, rank, label, where, whether drawn, after; the count
        of lines, and whether any names jobs to wait for. The hot loop of a bulk enqueue: the
        columns between command and where repeat from line to line, formatted once each."""
        count, chained, page, text = 0, False, [], _copy_text
        drawn: Iterator[str] = iter(())
        shared: dict[tuple[Any, ...], str] = {}
        retries, backoff, timeout = (
            defaults.max_retries,
            defaults.backoff_base,
            defaults.default_timeout,
        )
        for where, spec in specs:
            get = spec.get
            job_id = get("id")
            if job_id is None:
                job_id = next(drawn, None)
                if job_id is None:
                    drawn = iter(_draw_ids(_SPOOL_PAGE))
                    job_id = next(drawn)
                flag = "t"
            else:
                job_id, flag = text(job_id), "f"
            key = (
                get("queue", "default"),
                get("priority", 0),
                get("max_retries", retries),
                get("backoff_base", backoff),
                get("timeout", timeout),
                get("run_at", now),
                get("label"),
            )
            middle = shared.get(key)
            if middle is None:
                if len(shared) >= 4096:
                    shared.clear()
                middle = shared[key] = _middle(*key, rate)
            after = get("after")
            if after:
                chained = True
                after = text(json.dumps(after))
            page.append(
                f"{job_id}\t{text(spec['command'])}{middle}{text(where)}\t{flag}\t"
                f"{after or _NULL}\n"
            )
            count += 1
            if len(page) == _SPOOL_PAGE:
                self.file.write("".join(page))
                page.clear()
        self.file.write("".join(page))
        return count, chained

    def job_lines(self, tail: str) -> _JobLines:
        self.file.seek(0)
        return _JobLines(self.file, tail)

    def stage(self) -> None:
        """The spool into the stage (``stage_copy``), once."""
        if self.staged:
            return
        bulk = dialect().bulk
        self.db.execute_sql(bulk["stage_drop"])
        self.db.execute_sql(bulk["stage_create"])
        self.staged = True
        self.file.seek(0)
        dialect().copy_in(bulk["stage_copy"], self.file)

    def ids(self) -> Iterator[str]:
        self.file.seek(0)
        for line in self.file:
            job_id = line[: line.index("\t")]
            yield _copy_value(job_id) if "\\" in job_id else job_id

    def drop_stage(self) -> None:
        if self.staged:
            self.db.execute_sql(dialect().bulk["stage_drop"])


class _JobLines:
    """A spool's lines as COPY's text for job (``copy_job``): the stage's last three columns
    (where, whether drawn, after) replaced by ``tail``, the values every line shares."""

    def __init__(self, file: Any, tail: str) -> None:
        self.lines, self.tail = iter(file), tail

    def read(self, size: int = -1) -> str:
        out, length, tail = [], 0, self.tail
        for line in self.lines:
            line = line.rsplit("\t", 3)[0] + tail
            out.append(line)
            length += len(line)
            if length >= size > 0:
                break
        return "".join(out)


_NULL = "\\N"


def _middle(
    queue: str,
    priority: int,
    max_retries: int,
    backoff_base: float,
    timeout: float | None,
    run_at: float,
    label: str | None,
    rate: float,
) -> str:
    """The spool's columns from queue to label, between tabs (queue names need no escape)."""
    return (
        f"\t{queue}\t{priority}\t{max_retries}\t{backoff_base!r}\t"
        f"{_NULL if timeout is None else repr(timeout)}\t{run_at!r}\t"
        f"{priority - rate * run_at / 60.0!r}\t"
        f"{_NULL if label is None else _copy_text(label)}\t"
    )


def _draw_ids(count: int) -> list[str]:
    """``count`` ids of the shape of engine.common._new_id, from one read of the system's
    random source (one read per id cost a bulk enqueue 0.5 s in 100,000)."""
    digits = os.urandom(6 * count).hex()
    return [digits[i : i + 12] for i in range(0, 12 * count, 12)]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """``value`` in COPY's text form: a backslash, tab, newline or carriage return escaped."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_value(text: str) -> str:
    """The value of a field ``_copy_text`` wrote."""
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], m[1]), text)


def _repeated_id(src: str, job_id: str, first: str) -> InvalidInput:
    """A staged line repeats the id of an earlier line (either backend)."""
    return InvalidInput(
        f"{src}: duplicate job id {job_id!r} in the input (first on {first}); nothing enqueued",
        field="id",
    )


def _taken_id(src: str | None, job_id: str) -> InvalidInput:
    """A staged line's id is a stored job's (either backend)."""
    return InvalidInput(
        f"{src + ': ' if src else ''}job id {job_id!r} already exists; nothing enqueued", field="id"
    )


def _unknown_dependency(src: str | None, job_id: str) -> InvalidInput:
    """A staged line's ``after`` names no stored job and no earlier line (either backend)."""
    return InvalidInput(
        f"{src + ': ' if src else ''}after: no job with id {job_id!r} "
        "(it must exist or come earlier in the input); nothing enqueued",
        field="after",
    )


def _check_stage_ids(db: Database) -> None:
    """Refuse an id given twice; draw again a generated id that repeats one (2**48 to pick from)."""
    bulk = dialect().bulk
    try:
        with db.atomic():  # a savepoint: on PostgreSQL a failed statement ends the transaction
            db.execute_sql(bulk["stage_index"])
        return
    except IntegrityError:
        pass
    db.execute_sql(bulk["stage_any_index"])
    while db.execute_sql(bulk["redraw_repeated"]).rowcount:
        pass
    row = db.execute_sql(bulk["first_repeat"]).fetchone()
    if row is not None:
        raise _repeated_id(*row)
    db.execute_sql(bulk["stage_any_index_drop"])
    db.execute_sql(bulk["stage_index"])


def _move_stage(
    db: Database, now: float, cwd: str, digest: str, data: str, chained: bool = False
) -> None:
    """The only part under the write lock: one INSERT … SELECT of rows already checked (and,
    when some name ``after``, their dependencies)."""
    bulk = dialect().bulk
    while True:
        try:
            with write_transaction():
                Environment.insert(digest=digest, data=data).on_conflict_ignore().execute()
                db.execute_sql(
                    bulk["move"],
                    {
                        "state": PENDING,
                        "now": now,
                        "cwd": cwd,
                        "digest": digest,
                        "rate": aging_rate(),
                    },
                )
                if chained:
                    _stage_dependencies(db, now)
            return
        except IntegrityError:  # the unique index on job.id is the check (also against races)
            clash = db.execute_sql(bulk["first_taken"]).fetchone()
            if clash is not None:
                raise _taken_id(*clash) from None
            if not db.execute_sql(bulk["taken_generated"]).fetchone()[0]:
                raise
            # A generated id that is taken: draw again (a draw that repeats another staged id
            # keeps the old one, drawn again on the next round).
            db.execute_sql(bulk["redraw_taken"])


def _stage_dependencies(db: Database, now: float) -> None:
    """The staged jobs' ``after``: each names a job that existed before this input or comes
    earlier in it (else nothing is enqueued); then their waiting counts, and the DLQ for those
    naming a dead job. Inside the move's transaction (either backend)."""
    bulk = dialect().bulk
    unknown = db.execute_sql(bulk["unknown_dependency"]).fetchone()
    if unknown is not None:
        raise _unknown_dependency(*unknown)
    db.execute_sql(bulk["add_dependencies"])
    seqs = [row[0] for row in db.execute_sql(bulk["chained_seqs"])]
    _settle(seqs, now=now)
