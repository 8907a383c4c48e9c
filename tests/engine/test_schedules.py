"""Recurring schedules: due times (every, cron, a zone's DST), one job per due time however many
sessions race for it, catch-up after a gap, no-overlap, and the schedule command. The engine
runs on a fixed clock (``now=``); one test runs real workers."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from helpers import T0, ok, run_here, user_error, wait_for
from queuectl_tui import schedules
from queuectl_tui.store.models import Job, Schedule

pytestmark = pytest.mark.both_backends

HOUR = 3600.0


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def sched(db, tmp_path):
    """sched(name, command="true", now=T0, **options) -> Schedule, added in-process."""

    def add(name: str, command: str = "true", *, now: float = T0, **options):
        job = {
            "command": command,
            **{k: options.pop(k) for k in list(options) if k in schedules.JOB_FIELDS},
        }
        return schedules.add(name, job, cwd=str(tmp_path), env={}, now=now, **options)

    return add


def job_ids(name: str | None = None) -> list[str]:
    query = Job.select(Job.id).order_by(Job.run_at, Job.id)
    if name is not None:
        query = query.where(Job.schedule == name)
    return [job_id for (job_id,) in query.tuples()]


def row(name: str) -> Schedule:
    return Schedule.get(Schedule.name == name)


# --- due times -------------------------------------------------------------------------------


def test_every_makes_one_job_per_due_time_named_by_it(sched):
    sched("tick", "echo tick", every="15m", queue="q", priority=3, timeout="1m")
    assert schedules.enqueue_due(now=T0 + 899).made == []
    assert job_ids() == []
    made = schedules.enqueue_due(now=T0 + 900).made
    assert made == [schedules.slot_id("tick", T0 + 900)] == ["tick@2027-01-15T08:15:00Z"]
    assert schedules.enqueue_due(now=T0 + 901).made == []  # that due time is done
    job = Job.get(Job.id == made[0])
    assert (
        job.command,
        job.queue,
        job.priority,
        job.timeout,
        job.run_at,
        job.schedule,
        job.state,
    ) == ("echo tick", "q", 3, 60.0, T0 + 900, "tick", "pending")
    schedules.enqueue_due(now=T0 + 1805)
    assert job_ids("tick") == ["tick@2027-01-15T08:15:00Z", "tick@2027-01-15T08:30:00Z"]
    assert row("tick").next_at == T0 + 2700


def test_cron_in_utc_by_default_and_in_the_zone_given(sched):
    utc_row = sched("utc", cron="0 3 * * *")
    paris = sched("paris", cron="0 3 * * *", tz="Europe/Paris")
    assert schedules.stamp(utc_row.next_at) == "2027-01-16T03:00:00Z"
    assert schedules.stamp(paris.next_at) == "2027-01-16T02:00:00Z"  # CET is UTC+1 in winter
    schedules.enqueue_due(now=utc("2027-01-16T03:00:05"), grace=30)
    assert job_ids() == ["paris@2027-01-16T02:00:00Z", "utc@2027-01-16T03:00:00Z"]


def test_a_zone_s_daylight_saving_changes_are_handled_as_cron_does(sched):
    """Europe/Paris, 2027: 02:30 does not exist on March 28 (clocks go from 02:00 to 03:00), so
    that day's run comes at 03:00 CEST, once; on October 31 02:30 comes twice and runs once."""
    start = utc("2027-03-26T12:00:00")
    sched("night", cron="30 2 * * *", tz="Europe/Paris", now=start)
    now = start
    for _ in range(4):  # a worker that runs all along: each due time made on time
        now = row("night").next_at
        schedules.enqueue_due(now=now + 1, grace=30)
    assert job_ids() == [
        "night@2027-03-27T01:30:00Z",  # 02:30 CET
        "night@2027-03-28T01:00:00Z",  # 03:00 CEST, right after the change
        "night@2027-03-29T00:30:00Z",  # 02:30 CEST
        "night@2027-03-30T00:30:00Z",
    ]
    rule = schedules.Rule("30 2 * * *", None, "Europe/Paris")
    autumn = rule.between(utc("2027-10-30T00:00:00"), utc("2027-11-01T23:59:59"))
    assert [schedules.stamp(t) for t in autumn] == [
        "2027-10-30T00:30:00Z",  # 02:30 CEST
        "2027-10-31T00:30:00Z",  # the first 02:30
        "2027-11-01T01:30:00Z",
    ]  # 02:30 CET


# --- catch-up --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "made"),
    [
        ("latest", ["h@2027-01-15T13:00:00Z"]),
        ("all", [f"h@2027-01-15T{h:02d}:00:00Z" for h in (9, 10, 11, 12, 13)]),
        ("none", []),
    ],
)
def test_due_times_missed_while_no_worker_ran_follow_catch_up(sched, mode, made):
    sched("h", every="1h", catch_up=mode)  # due at 09:00, 10:00, ... (added at 08:00)
    now = T0 + 5 * HOUR + 600  # 13:10: the last worker stopped before 09:00
    assert schedules.enqueue_due(now=now, grace=30).made == made
    assert job_ids() == made
    assert row("h").next_at == T0 + 6 * HOUR  # nothing left behind
    if mode != "all":
        r = schedules.rows(now=now)[0]
        assert r["skipped"] == (
            "missed while no worker ran (2027-01-15T09:00:00Z to "
            f"2027-01-15T{'12' if mode == 'latest' else '13'}:00:00Z), "
            f"catch-up {mode}"
        )


def test_a_due_time_within_the_grace_is_on_time_whatever_the_catch_up(sched):
    sched("h", every="1h", catch_up="none")
    assert schedules.enqueue_due(now=T0 + HOUR + 20, grace=30).made == ["h@2027-01-15T09:00:00Z"]


def test_catch_up_all_after_a_long_gap_is_made_in_steps(sched):
    sched("s", every="1m", catch_up="all")
    now = T0 + 250 * 60 + 5
    first = schedules.enqueue_due(now=now, grace=30).made
    assert len(first) == schedules.MAX_SLOTS
    while schedules.enqueue_due(now=now, grace=30).made:
        pass
    assert len(job_ids()) == 250 == len(set(job_ids()))


# --- no overlap, pause, run, remove ----------------------------------------------------------


def test_no_overlap_skips_a_due_time_while_the_last_job_is_unfinished_and_says_so(sched):
    sched("slow", every="1m", no_overlap=True)
    assert schedules.enqueue_due(now=T0 + 60).made == ["slow@2027-01-15T08:01:00Z"]
    due = schedules.enqueue_due(now=T0 + 120)
    assert due.made == []
    assert due.notes == [
        "schedule slow: skipped 2027-01-15T08:02:00Z: "
        "slow@2027-01-15T08:01:00Z had not finished (no-overlap)"
    ]
    listed = schedules.rows(now=T0 + 120)[0]
    assert (listed["last_job"], listed["last_state"], listed["skipped_at"]) == (
        "slow@2027-01-15T08:01:00Z",
        "pending",
        "2027-01-15T08:02:00.000Z",
    )
    Job.update(state="completed").where(Job.id == "slow@2027-01-15T08:01:00Z").execute()
    assert schedules.enqueue_due(now=T0 + 180).made == ["slow@2027-01-15T08:03:00Z"]


def test_a_paused_schedule_makes_nothing_and_resumes_from_its_next_due_time(sched):
    sched("p", every="1m")
    schedules.pause("p")
    assert schedules.next_run() is None
    assert schedules.enqueue_due(now=T0 + 600).made == []
    schedules.resume("p", now=T0 + 630)
    assert row("p").next_at == T0 + 660  # the ones passed while paused are not caught up
    assert schedules.enqueue_due(now=T0 + 660).made == ["p@2027-01-15T08:11:00Z"]


def test_run_now_makes_one_job_besides_the_due_times_and_remove_keeps_the_jobs(sched):
    sched("r", every="1h")
    schedules.pause("r")
    job = schedules.run_now("r", now=T0 + 5.251)
    assert job.id == "r@2027-01-15T08:00:05.251Z" and job.schedule == "r"
    again = schedules.run_now("r", now=T0 + 5.251)  # within the same millisecond: the next one
    assert again.id == "r@2027-01-15T08:00:05.252Z"
    assert schedules.rows()[0]["last_job"] == again.id
    schedules.remove("r")
    assert schedules.rows() == [] and job_ids("r") == [job.id, again.id]


def test_user_errors_name_what_is_wrong(sched):
    from queuectl_tui.errors import InvalidInput, NotFound

    sched("taken", every="1m")
    cases = [
        ({"cron": "0 3 * *"}, "expected five fields"),
        ({"cron": "0 25 * * *"}, "bad cron expression '0 25 [*] [*] [*]': Bad hour"),
        ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"every": "1.5s"}, "whole seconds"),
        ({"every": "soon"}, "every must be"),
        ({"every": "1m", "tz": "Europe/Paris"}, "--tz applies to --cron"),
        ({}, "give --cron EXPR or --every DURATION"),
        ({"every": "1m", "catch_up": "some"}, "catch-up must be one of"),
    ]
    for options, message in cases:
        with pytest.raises(InvalidInput, match=message):
            sched("new", **options)
    with pytest.raises(InvalidInput, match="already exists"):
        sched("taken", every="1h")
    with pytest.raises(NotFound, match="no schedule named 'gone'"):
        schedules.pause("gone")
    assert [r.name for r in Schedule.select()] == ["taken"]


# --- one job per due time, whoever races ------------------------------------------------------


def test_sessions_racing_for_the_same_due_times_make_one_job_each(sched):
    """Four threads (each its own connection, as workers are) make the due times of three
    schedules at the same moments: every due time makes exactly one job."""
    for name in ("a", "b", "c"):
        sched(name, every="1s", catch_up="all")
    moments = [T0 + k for k in range(1, 31)]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def race():
        try:
            start.wait()
            for now in moments:
                schedules.enqueue_due(now=now, grace=30)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            from queuectl_tui.store.models import database

            database.close()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for name in ("a", "b", "c"):
        assert job_ids(name) == [schedules.slot_id(name, t) for t in moments]


def test_inserting_a_due_time_s_job_another_session_is_inserting_is_a_no_op(sched):
    """The last guard below the schedule's own bookkeeping: two connections insert the same
    due time's job; the second waits for the first to commit, then inserts nothing (no
    error, no second job)."""
    from queuectl_tui import engine, settings
    from queuectl_tui.store.models import database

    row_ = sched("x", every="1m")
    slot, defaults = T0 + 60, settings.load()
    job_id = schedules.slot_id("x", slot)
    inserted = threading.Event()
    release = threading.Event()
    results: dict[str, object] = {}

    def first():
        try:
            with database.atomic():
                results["first"] = schedules._insert(row_, job_id, slot, slot, defaults, 0.0)
                inserted.set()
                release.wait(10)
        finally:
            database.close()

    def second():
        try:
            inserted.wait(10)
            with database.atomic():
                results["second"] = schedules._insert(row_, job_id, slot, slot, defaults, 0.0)
        except BaseException as exc:
            results["second"] = exc
        finally:
            database.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    inserted.wait(10)
    wait_for(lambda: threads[1].is_alive(), message="the second insert under way")
    release.set()
    for thread in threads:
        thread.join()
    assert results == {"first": True, "second": False}
    assert job_ids() == [job_id]
    assert engine.counts()["pending"] == 1


# --- workers -----------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_nothing_due_writes_nothing(sched, home):
    """An idle worker looks at schedules at every wake-up: with nothing due that is a read, so
    no other session sees a commit (which would wake every idle worker)."""
    sched("later", every="1h")
    other = sqlite3.connect(home / "queuectl.db")
    before = other.execute("PRAGMA data_version").fetchone()[0]
    assert schedules.enqueue_due(now=T0 + 10).made == []
    assert schedules.next_run() == T0 + HOUR
    assert other.execute("PRAGMA data_version").fetchone()[0] == before
    schedules.enqueue_due(now=T0 + HOUR)
    assert other.execute("PRAGMA data_version").fetchone()[0] != before
    other.close()


def test_two_running_workers_make_each_due_time_once(cli, home):
    """Real workers, the real clock: a schedule every second makes consecutive due times, each
    once, run by either worker; ``show`` names the schedule."""
    ok(cli("config", "set", "poll_interval", "5"))  # the sleep ends at the due time, not a poll
    ok(cli("schedule", "add", "beat", "--every", "1s", "--", "echo", "beat"))
    ok(cli("worker", "start", "--count", "2"))

    def completed():
        jobs = [
            j for j in ok(cli("list", "--json", "--limit", "0")).json() if j["state"] == "completed"
        ]
        return jobs if len(jobs) >= 3 else None

    wait_for(completed, timeout=60, message="three scheduled jobs completed")
    ok(cli("worker", "stop"))
    ids = sorted(j["id"] for j in ok(cli("list", "--json", "--limit", "0")).json())
    times = [
        datetime.fromisoformat(i.split("@")[1].replace("Z", "+00:00")).timestamp() for i in ids
    ]
    assert times == [times[0] + k for k in range(len(times))], ids  # no gap, no repeat
    shown = ok(cli("show", ids[0])).out
    assert "schedule" in shown and "beat" in shown
    assert ok(cli("show", ids[0], "--json")).json()["schedule"] == "beat"
    listed = ok(cli("schedule", "list", "--json")).json()
    assert listed[0]["name"] == "beat" and listed[0]["rule"] == "every 1s"


# --- the command -----------------------------------------------------------------------------


def test_schedule_command_errors_are_one_line_with_the_exit_code(db):
    cli = run_here
    assert "expected five fields" in user_error(
        cli("schedule", "add", "x", "--cron", "0 3 * *", "true"), 2
    )
    assert "unknown time zone" in user_error(
        cli("schedule", "add", "x", "--cron", "0 3 * * *", "--tz", "Nowhere/Land", "true"), 2
    )
    ok(cli("schedule", "add", "x", "--every", "1h", "true"))
    assert "already exists" in user_error(cli("schedule", "add", "x", "--every", "1m", "true"), 2)
    for verb in ("remove", "pause", "resume", "run"):
        assert user_error(cli("schedule", verb, "nope"), 1) == "error: no schedule named 'nope'"
    assert "--catch-up" in user_error(
        cli("schedule", "add", "y", "--every", "1m", "--catch-up", "some", "true"), 2
    )


def test_schedule_list_piped_is_one_tab_separated_line_per_schedule(db):
    cli = run_here
    ok(
        cli(
            "schedule",
            "add",
            "nightly",
            "--cron",
            "30 3 * * *",
            "--tz",
            "Europe/Paris",
            "--no-overlap",
            "tar czf /tmp/b.tgz .",
        )
    )
    ok(cli("schedule", "pause", "nightly"))
    run = ok(cli("schedule", "run", "nightly")).out
    assert run.startswith("enqueued nightly@")
    lines = ok(cli("schedule", "list")).out.splitlines()
    assert lines[0].split("\t") == [
        "name",
        "rule",
        "next run",
        "last run",
        "last job",
        "state",
        "paused",
        "skipped",
    ]
    cells = lines[1].split("\t")
    assert cells[:3] == ["nightly", "cron 30 3 * * * Europe/Paris", "-"]
    assert cells[4:7] == [run.split()[1], "pending", "yes"]
    resumed = ok(cli("schedule", "resume", "nightly")).out
    assert resumed.startswith("resumed schedule nightly; next run ")
    ok(cli("schedule", "remove", "nightly"))
    assert ok(cli("schedule", "list", "--json")).json() == []


def run_loop_while(loop, drive) -> None:
    """Run the worker ``loop`` in this process while ``drive`` runs in a thread; the loop
    stops when ``drive`` ends, and what ``drive`` raised is raised here."""
    from queuectl_tui.store.models import database

    errors: list[BaseException] = []

    def watch():
        try:
            drive()
        except BaseException as exc:  # re-raised below
            errors.append(exc)
        finally:
            loop._on_stop(None, None)
            database.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert loop.run() == 0
    thread.join()
    assert errors == []


def test_an_idle_worker_s_sleep_ends_at_the_next_due_time(db, tmp_path):
    """No poll and no heartbeat comes within a minute here (each beat would wake the sleep):
    the due time itself ends the idle worker's sleep, and the worker makes the job and runs
    it. The loop runs in this process; a thread watches and stops it."""
    from queuectl_tui import settings
    from queuectl_tui.run.loop import WorkerLoop

    for key, value in (("poll_interval", 60), ("lease", 600), ("heartbeat_interval", 300)):
        settings.set_value(key, value)
    schedules.add(
        "soon", {"command": f"touch {tmp_path}/ran"}, every="2s", cwd=str(tmp_path), env={}
    )
    lines: list[str] = []
    loop = WorkerLoop(echo=lines.append)

    def drive():
        wait_for(lambda: (tmp_path / "ran").exists(), timeout=20, message="the job ran")

    run_loop_while(loop, drive)
    assert any(line.startswith("start  soon@") for line in lines), lines


def test_a_schedule_added_while_a_worker_sleeps_ends_that_sleep_at_its_due_time(db, tmp_path):
    """An idle worker keeps the next due time it read until a schedule changes: a new job
    wakes it and runs without that read, and a schedule added by another session afterwards
    still ends its sleep at the schedule's due time (no poll and no heartbeat comes here)."""
    from queuectl_tui import engine, settings, spec
    from queuectl_tui.run.loop import WorkerLoop

    for key, value in (("poll_interval", 60), ("lease", 600), ("heartbeat_interval", 300)):
        settings.set_value(key, value)
    lines: list[str] = []
    loop = WorkerLoop(echo=lines.append)

    def drive():
        wait_for(lambda: loop.waiting, timeout=20, message="the worker idle")
        engine.enqueue(
            [spec.normalize({"command": f"touch {tmp_path}/job"})], cwd=str(tmp_path), env={}
        )
        wait_for(lambda: (tmp_path / "job").exists(), timeout=20, message="the job ran")
        wait_for(lambda: loop.waiting, timeout=20, message="the worker idle again")
        schedules.add(
            "soon",
            {"command": f"touch {tmp_path}/scheduled"},
            every="1s",
            cwd=str(tmp_path),
            env={},
        )
        wait_for(
            lambda: (tmp_path / "scheduled").exists(),
            timeout=20,
            message="the scheduled job ran",
        )

    run_loop_while(loop, drive)
    assert any(line.startswith("start  soon@") for line in lines), lines


def test_a_skipped_due_time_is_said_in_the_worker_s_log(sched):
    from queuectl_tui.run.loop import WorkerLoop

    sched("slow", every="1m", no_overlap=True)
    lines: list[str] = []
    loop = WorkerLoop(echo=lines.append)
    loop.make_scheduled(T0 + 60)
    loop.make_scheduled(T0 + 120)
    assert lines == [
        "schedule slow: skipped 2027-01-15T08:02:00Z: slow@2027-01-15T08:01:00Z "
        "had not finished (no-overlap)"
    ]
