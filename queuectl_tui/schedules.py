"""Recurring schedules: a job every DURATION or at the times of a cron expression.

There is no scheduler process: the workers make the jobs. A schedule's row holds ``next_at``,
its earliest due time not yet turned into a job. A live worker that finds it due
(``enqueue_due``: a read, and a write transaction only when something is due) inserts one job
per due time, with the id ``NAME@<due time, UTC>``, and moves ``next_at`` past now in the same
transaction. Two workers that race for a due time take the write lock in turn and the second
finds ``next_at`` moved on; the job id is the last guard: it is unique in ``job``, and the
insert of an id that exists is a no-op (``ON CONFLICT DO NOTHING``), so a due time makes one
job whatever the number of workers and hosts.

A due time more than ``grace`` seconds old (the lease: no live worker went that long without
looking) was missed while no worker ran; ``catch_up`` says what happens to those: ``latest``
makes one job for the most recent of them (unless a due time within ``grace`` makes one
anyway), ``all`` one for each, ``none`` none. ``no_overlap`` skips a due time while the job of
the previous one has not finished, and records why.

Cron expressions are read by cronsim: small, no dependencies, and it handles daylight saving
as Debian's cron does (a time skipped by the change runs right after it, a repeated hour runs
once). Times are UTC unless the schedule names a zone (zoneinfo).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple

from peewee import fn

from queuectl_tui import engine, settings, spec
from queuectl_tui.errors import InvalidInput, NotFound
from queuectl_tui.store import write_transaction
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import PENDING, Job, Schedule

CATCH_UP = ("latest", "all", "none")
#: Jobs one schedule makes in one transaction: a long gap with ``--catch-up all`` is made in
#: steps, so that no claim waits behind one long insert.
MAX_SLOTS = 100
#: Unfinished: a ``--no-overlap`` schedule skips its due times while its last job is one of these.
UNFINISHED = ("pending", "processing", "failed")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_EVERY = spec.MAX_DELAY
#: The job fields a schedule may set (the rest are the job's own: id, due time, schedule).
JOB_FIELDS = ("command", "queue", "priority", "max_retries", "timeout")


class Due(NamedTuple):
    """What one ``enqueue_due`` did: the ids of the jobs it made, and lines for the worker's
    log about due times that made none (skipped by ``no_overlap``, missed and not caught up)."""

    made: list[str]
    notes: list[str]


# --- rules ---------------------------------------------------------------------------------


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"bad schedule name {name!r}: use 1-64 letters, digits, '_', '-', '.', ':'",
            field="name",
        )
    return name


def zone(name: str) -> tzinfo:
    """The zone ``name`` (IANA, e.g. Europe/Paris); UTC is UTC."""
    if name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r} (an IANA name such as Europe/Paris, or UTC)", field="tz"
        ) from None


def check_cron(expr: Any) -> str:
    """Five fields (minute hour day-of-month month day-of-week), as crontab(5) reads them."""
    from cronsim import CronSim, CronSimError

    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise InvalidInput(
            f"bad cron expression {expr!r}: expected five fields "
            "(minute hour day-of-month month day-of-week)",
            field="cron",
        )
    try:
        CronSim(expr, datetime.now(UTC))
    except CronSimError as exc:
        raise InvalidInput(f"bad cron expression {expr!r}: {exc}", field="cron") from None
    return " ".join(expr.split())


def check_every(value: Any) -> float:
    seconds = spec.parse_seconds(value, "every")
    if seconds != int(seconds) or not 1 <= seconds <= MAX_EVERY:
        raise InvalidInput(
            f"every must be whole seconds from 1s to {int(MAX_EVERY // 86400)}d, not {value!r}",
            field="every",
        )
    return float(seconds)


class Rule(NamedTuple):
    """When a schedule is due: every ``every`` seconds from ``anchor``, or at the times of the
    cron expression ``cron`` read in zone ``tz``. Due times are whole seconds."""

    cron: str | None
    every: float | None
    tz: str = "UTC"
    anchor: float = 0.0

    @classmethod
    def of(cls, row: Schedule) -> Rule:
        return cls(row.cron, row.every, row.tz, row.created_at)

    def after(self, t: float) -> float | None:
        """The first due time strictly after ``t`` (None: never again)."""
        if self.every is not None:
            return self.anchor + (math.floor((t - self.anchor) / self.every) + 1) * self.every
        from cronsim import CronSim

        assert self.cron is not None  # a rule without every has a cron expression
        times = CronSim(self.cron, datetime.fromtimestamp(math.floor(t), zone(self.tz)))
        try:
            while True:  # a repeated hour's second pass may come out before t: once is enough
                found = next(times).timestamp()
                if found > t:
                    return found
        except StopIteration:
            return None

    def at_or_before(self, t: float) -> float | None:
        """The last due time at or before ``t`` (None: none)."""
        if self.every is not None:
            k = math.floor((t - self.anchor) / self.every)
            return self.anchor + k * self.every if k >= 1 else None
        from cronsim import CronSim

        start = datetime.fromtimestamp(math.floor(t) + 1, zone(self.tz))
        assert self.cron is not None  # a rule without every has a cron expression
        times = CronSim(self.cron, start, reverse=True)
        try:
            while True:
                found = next(times).timestamp()
                if found <= t:
                    return found
        except StopIteration:
            return None

    def between(self, low: float, high: float, limit: int = MAX_SLOTS) -> list[float]:
        """Due times from ``low`` to ``high`` (both included), the first ``limit`` of them."""
        found: list[float] = []
        slot = self.after(low - 1) if low == math.floor(low) else self.after(low)
        while slot is not None and slot <= high and len(found) < limit:
            found.append(slot)
            slot = self.after(slot)
        return found

    def describe(self) -> str:
        if self.every is not None:
            return f"every {_span(self.every)}"
        return f"cron {self.cron}" + ("" if self.tz == "UTC" else f" {self.tz}")


def _span(seconds: float) -> str:
    """90 -> 1m30s, 86400 -> 1d: the duration as ``spec.parse_seconds`` reads it back."""
    total, parts = int(seconds), []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts) or "0s"


def stamp(t: float) -> str:
    """A due time as it appears in job ids: ISO-8601 UTC to the second."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_id(name: str, t: float) -> str:
    """The id of the job a schedule makes for the due time ``t``: ``NAME@2026-12-06T03:00:00Z``."""
    return f"{name}@{stamp(t)}"


# --- operations ------------------------------------------------------------------------------


def add(
    name: str,
    job: dict[str, Any],
    *,
    cron: str | None = None,
    every: Any = None,
    tz: str = "UTC",
    catch_up: str = "latest",
    no_overlap: bool = False,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    now: float | None = None,
) -> Schedule:
    """A new schedule; ``job`` holds the fields of ``JOB_FIELDS`` it gives (checked as an
    enqueue spec; one left out takes the setting's default at each run). The first due time
    comes after ``now``: an ``every`` schedule counts from its creation."""
    now = time.time() if now is None else now
    check_name(name)
    if (cron is None) == (every is None):
        raise InvalidInput("give --cron EXPR or --every DURATION (one of them)", field="cron")
    if catch_up not in CATCH_UP:
        raise InvalidInput(
            f"catch-up must be one of {', '.join(CATCH_UP)}, not {catch_up!r}", field="catch_up"
        )
    unknown = set(job) - set(JOB_FIELDS)
    if unknown:
        raise InvalidInput(f"a schedule's job cannot set {', '.join(sorted(unknown))}")
    fields = spec.normalize(job, now=now)
    if cron is not None:
        cron = check_cron(cron)
        zone(tz)
    else:
        every = check_every(every)
        if tz != "UTC":
            raise InvalidInput(
                "--tz applies to --cron schedules only (--every counts seconds)", field="tz"
            )
    anchor = float(math.floor(now))
    rule = Rule(cron, every, tz, anchor)
    first = rule.after(now)
    if first is None:
        raise InvalidInput(f"cron expression {cron!r} never matches", field="cron")
    cwd = engine.check_cwd(cwd if cwd is not None else os.getcwd())
    env = dict(os.environ) if env is None else env
    with write_transaction():
        if Schedule.get_or_none(Schedule.name == name) is not None:
            raise InvalidInput(f"schedule {name!r} already exists (remove it first)", field="name")
        return Schedule.create(
            name=name,
            spec=json.dumps(fields, sort_keys=True),
            cron=cron,
            every=every,
            tz=tz,
            catch_up=catch_up,
            no_overlap=no_overlap,
            paused=False,
            cwd=cwd,
            env_digest=engine.save_environment(env),
            created_at=anchor,
            next_at=first,
        )


def get(name: str) -> Schedule:
    row = Schedule.get_or_none(Schedule.name == name)
    if row is None:
        raise NotFound(f"no schedule named {name!r}")
    return row


def remove(name: str) -> None:
    """Delete the schedule; the jobs it made stay (they still name it)."""
    with write_transaction():
        if not Schedule.delete().where(Schedule.name == name).execute():
            raise NotFound(f"no schedule named {name!r}")


def pause(name: str) -> Schedule:
    """No job is made while paused; the due times that pass meanwhile are not caught up."""
    with write_transaction():
        row = get(name)
        if not row.paused:
            Schedule.update(paused=True).where(Schedule.name == name).execute()
            row.paused = True
    return row


def resume(name: str, *, now: float | None = None) -> Schedule:
    """Due again from the first due time after ``now`` (the ones passed while paused are
    skipped: that is what the pause was for)."""
    now = time.time() if now is None else now
    with write_transaction():
        row = get(name)
        if row.paused:
            row.paused, row.next_at = False, Rule.of(row).after(now)
            Schedule.update(paused=False, next_at=row.next_at).where(
                Schedule.name == name
            ).execute()
    return row


def run_now(name: str, *, now: float | None = None) -> Job:
    """One job of the schedule now (``schedule run``), paused or not: ``NAME@<now>`` with
    milliseconds, so that it never takes a due time's id."""
    now = time.time() if now is None else now
    with write_transaction():
        row = get(name)
        defaults, rate = settings.load(), engine.aging_rate()
        ms = round(now * 1000)  # whole milliseconds, so that the id says exactly when
        while True:
            job_id = f"{name}@{stamp(ms // 1000)[:-1]}.{ms % 1000:03d}Z"
            if _insert(row, job_id, ms / 1000, now, defaults, rate):
                break
            ms += 1  # two runs within a millisecond: the next one
        Schedule.update(last_at=ms / 1000, last_job=job_id).where(Schedule.name == name).execute()
        return Job.get(Job.id == job_id)


def next_run() -> float | None:
    """The earliest due time of any schedule that is not paused (None: none): what an idle
    worker's sleep ends at. One indexed read."""
    row = dialect().execute("next_schedule_run").fetchone()
    return row[0] if row else None


def enqueue_due(*, now: float | None = None, grace: float | None = None) -> Due:
    """Make the jobs of every due time up to ``now`` (see the module's docstring). Nothing due:
    one read, no write (an idle worker's look must wake no one). ``grace``: a due time older
    than this was missed (default: the lease)."""
    now = time.time() if now is None else now
    first = next_run()
    if first is None or first > now:
        return Due([], [])
    made: list[str] = []
    notes: list[str] = []
    with write_transaction():
        due = list(
            Schedule.select()
            .where(
                Schedule.paused == False,  # noqa: E712
                Schedule.next_at <= now,
            )
            .order_by(Schedule.next_at)
        )
        if not due:
            return Due([], [])  # another worker made them meanwhile
        defaults, rate = settings.load(), engine.aging_rate()
        grace = defaults.lease if grace is None else grace
        for row in due:
            _enqueue_row(row, now, grace, defaults, rate, made, notes)
    return Due(made, notes)


def _enqueue_row(
    row: Schedule,
    now: float,
    grace: float,
    defaults: settings.Settings,
    rate: float,
    made: list[str],
    notes: list[str],
) -> None:
    rule, cut = Rule.of(row), now - grace
    next_at = row.next_at
    assert next_at is not None  # the row was selected by next_at <= now
    skipped: tuple[float, float] | None = None  # missed due times that make no job
    if row.catch_up == "all":
        slots = rule.between(next_at, now)
    else:
        slots = rule.between(max(next_at, cut), now)  # on time: each makes its job
        if next_at < cut:  # and due times before the cut were missed
            last_missed = rule.at_or_before(math.ceil(cut) - 1) or next_at
            if slots or row.catch_up == "none":
                skipped = (next_at, last_missed)
            else:  # latest: the most recent missed one makes its job
                slots = [last_missed]
                before = rule.at_or_before(last_missed - 1)
                if before is not None and before >= next_at:
                    skipped = (next_at, before)
    # Up to now, unless a long catch-up was cut at MAX_SLOTS: then the rest is the next pass's.
    done_until = slots[-1] if len(slots) == MAX_SLOTS else now
    last_at, last_job = row.last_at, row.last_job
    skipped_at, skipped_why = row.skipped_at, row.skipped_why
    if skipped is not None:
        skipped_at = skipped[1]
        skipped_why = (
            f"missed while no worker ran ({stamp(skipped[0])}"
            + ("" if skipped[1] == skipped[0] else f" to {stamp(skipped[1])}")
            + f"), catch-up {row.catch_up}"
        )
        notes.append(f"schedule {row.name}: {skipped_why}")
    for slot in slots:
        if row.no_overlap and last_job is not None:
            state = Job.select(Job.state).where(Job.id == last_job).scalar()
            if state in UNFINISHED:
                skipped_at, skipped_why = slot, f"{last_job} had not finished (no-overlap)"
                notes.append(f"schedule {row.name}: skipped {stamp(slot)}: {skipped_why}")
                continue
        job_id = slot_id(row.name, slot)
        if _insert(row, job_id, slot, now, defaults, rate):
            made.append(job_id)
        last_at, last_job = slot, job_id
    Schedule.update(
        next_at=rule.after(done_until),
        last_at=last_at,
        last_job=last_job,
        skipped_at=skipped_at,
        skipped_why=skipped_why,
    ).where(Schedule.name == row.name).execute()


def _insert(
    row: Schedule, job_id: str, due: float, now: float, defaults: settings.Settings, rate: float
) -> bool:
    """Insert the job ``job_id`` of schedule ``row``, due at ``due``; False (and nothing
    changed) when that id exists: ``INSERT OR IGNORE`` / ``ON CONFLICT DO NOTHING``, so that
    of two sessions that race to make it, one does and the other's insert is a no-op (on
    PostgreSQL it waits for the first to commit, then does nothing)."""
    fields = json.loads(row.spec)
    priority = fields.get("priority", 0)
    values = {
        "id": job_id,
        "command": fields["command"],
        "queue": fields.get("queue", "default"),
        "priority": priority,
        "max_retries": fields.get("max_retries", defaults.max_retries),
        "backoff_base": defaults.backoff_base,
        "timeout": fields.get("timeout", defaults.default_timeout),  # null: no limit
        "run_at": due,
        "created_at": now,
        "updated_at": now,
        "cwd": row.cwd,
        "env_digest": row.env_digest,
        "state": PENDING,
        "schedule": row.name,
        "rank": priority - rate * due / 60.0,
    }
    return bool(Job.insert(**values).on_conflict_ignore().as_rowcount().execute())


# --- reading ---------------------------------------------------------------------------------


def rows(*, now: float | None = None) -> list[dict[str, Any]]:
    """Every schedule as the faces show it (``schedule list --json``, the console): its rule,
    job, next and last run, the last job's state (None: deleted), paused, and the last due
    time that made no job and why."""
    now = time.time() if now is None else now
    schedules = list(Schedule.select().order_by(Schedule.name))
    last = [s.last_job for s in schedules if s.last_job]
    states = (
        {job.id: job.state for job in Job.select(Job.id, Job.state).where(Job.id.in_(last))}
        if last
        else {}
    )
    result = []
    for s in schedules:
        fields = json.loads(s.spec)
        result.append(
            {
                "name": s.name,
                "rule": Rule.of(s).describe(),
                "cron": s.cron,
                "every": s.every,
                "tz": s.tz,
                "command": fields["command"],
                "queue": fields.get("queue", "default"),
                "priority": fields.get("priority", 0),
                "max_retries": fields.get("max_retries"),
                "timeout": fields.get("timeout"),
                "catch_up": s.catch_up,
                "no_overlap": s.no_overlap,
                "paused": s.paused,
                "next_run": None if s.paused else spec.iso(s.next_at),
                "last_run": spec.iso(s.last_at),
                "last_job": s.last_job,
                "last_state": states.get(s.last_job) if s.last_job else None,
                "skipped_at": spec.iso(s.skipped_at),
                "skipped": s.skipped_why,
                "created_at": spec.iso(s.created_at),
            }
        )
    return result


def count() -> int:
    return Schedule.select(fn.COUNT(Schedule.name)).scalar() or 0
