"""Idle means idle: an empty look for work writes nothing and wakes no one (SQLite: no commit
another connection's data_version or the -wal watch could see; PostgreSQL: no NOTIFY), and a
heartbeat wakes no idle worker into a claim attempt."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

import helpers
from helpers import T0, wait_for
from queuectl_tui import engine, settings, spec
from queuectl_tui.run.loop import WorkerLoop
from queuectl_tui.store import notify_channel
from queuectl_tui.store.models import Job, Setting, Worker, database
from queuectl_tui.store.pgsql import WATCH


class _Changes:
    """What another session could see of our commits, from here on: on SQLite the
    data_version of a connection of its own and the -wal file's size and time; on PostgreSQL
    the notifications a LISTENing session receives: a watcher's (``wait``, the console: it
    holds the watchers' lock), or with ``watching`` False an idle worker's."""

    def __init__(self, backend: str, home: Path, watching: bool = True):
        self.backend = backend
        if backend == "sqlite":
            import sqlite3

            self.path = home / "queuectl.db"
            self.conn = sqlite3.connect(self.path)
            self.before = self._sqlite()
        else:
            import psycopg2

            self.conn = psycopg2.connect(helpers.DB_URL)
            self.conn.autocommit = True
            cursor = self.conn.cursor()
            cursor.execute("SELECT current_schema()")
            self.schema = cursor.fetchone()[0]
            self.channel = notify_channel(self.schema)  # the schema's own
            self.marker = f"marker {uuid.uuid4().hex}"
            cursor.execute(f'LISTEN "{self.channel}"')
            if watching:  # as a watcher's session says so (store.postgres._listen)
                wait_for(lambda: cursor.execute(WATCH) or cursor.fetchone()[0], timeout=10)
            self._pg()  # whatever came before

    def _sqlite(self) -> tuple:
        wal = os.stat(f"{self.path}-wal")
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return version, wal.st_size, wal.st_mtime_ns

    def _pg(self) -> list[str]:
        self.conn.poll()
        got = [
            note.payload
            for note in self.conn.notifies
            if note.payload in (self.schema, self.marker)
        ]
        self.conn.notifies.clear()
        return got

    def seen(self) -> list:
        """What changed since this was made (empty: nothing another session could notice)."""
        if self.backend == "sqlite":
            after = self._sqlite()
            return [] if after == self.before else [("data_version, -wal", self.before, after)]
        # A marker sent after our commits arrives after anything they sent (commit order).
        self.conn.cursor().execute("SELECT pg_notify(%s, %s)", (self.channel, self.marker))
        got: list[str] = []
        wait_for(
            lambda: got.extend(self._pg()) or self.marker in got,
            timeout=10,
            message="the marker notification",
        )
        return [payload for payload in got if payload != self.marker]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def changes(db, home, backend):
    made: list[_Changes] = []

    def start(watching: bool = True) -> _Changes:
        made.append(_Changes(backend, home, watching))
        return made[-1]

    yield start
    for watcher in made:
        watcher.close()


@pytest.mark.both_backends
def test_an_empty_look_for_work_writes_nothing_and_wakes_no_one(add, worker, changes):
    add("later", now=T0 + 3600)  # waiting, not due yet: nothing to claim
    watcher = changes()
    states, claimed = engine.settle(worker, claim=4, max_backoff=60.0, now=T0 + 1)
    assert (states, claimed) == ([], [])
    assert watcher.seen() == []
    # Not a blind watcher: a claim that takes the job is seen.
    watcher = changes()
    assert engine.settle(worker, claim=1, max_backoff=60.0, now=T0 + 3601)[1]
    assert watcher.seen() != []


@pytest.mark.both_backends
def test_a_workers_claims_and_ends_notify_a_watcher_and_no_other_worker(
    add, worker, changes, backend
):
    """Every NOTIFY takes PostgreSQL's one notification-queue lock at commit and wakes every
    listening session of the database (a transaction each): a worker's claims and ends, news
    to no other worker, notify only while a watcher is connected; what makes work (a new job,
    a retry due later) or a cancel notifies the workers too. SQLite sends no notification."""
    if backend == "sqlite":
        pytest.skip("PostgreSQL's notifications (on SQLite every commit moves data_version)")
    for job_id in ("a", "b", "c"):
        add(job_id, max_retries=1)
    idle = changes(watching=False)
    claimed = engine.settle(worker, claim=3, max_backoff=60.0, now=T0 + 1)[1]
    assert [job.id for job, _ in claimed] == ["a", "b", "c"]
    assert idle.seen() == []  # the claim

    def end(i: int, outcome: str) -> None:
        ended = engine.Ended(*claimed[i], outcome=outcome, exit_code=0, at=T0 + 2)
        engine.settle(worker, [ended], max_backoff=60.0, now=T0 + 2)

    idle = changes(watching=False)
    end(0, "completed")
    assert idle.seen() == []  # an end
    idle = changes(watching=False)
    end(1, "failed")
    assert idle.seen() != []  # a retry, due later: an idle worker sleeps until then
    idle = changes(watching=False)
    engine.cancel("c", now=T0 + 3)
    assert idle.seen() != []  # the worker running it reads its cancel flag
    idle, watcher = changes(watching=False), changes()
    end(2, "completed")
    assert watcher.seen() != [] and idle.seen() != []  # a watcher is connected
    watcher.close()
    idle = changes(watching=False)
    add("d")
    assert idle.seen() != []


@pytest.mark.both_backends
def test_a_statement_that_changes_no_job_notifies_no_one(add, changes):
    """PostgreSQL's statement triggers fire for an UPDATE of no row: such a statement must
    send nothing (on SQLite it writes nothing)."""
    add("j")
    watcher = changes()
    with database.atomic():
        Job.update(priority=5).where(Job.id == "no such job").execute()
        Setting.delete().where(Setting.key == "no such key").execute()
    assert watcher.seen() == []


@pytest.mark.sqlite_only
def test_heartbeats_wake_no_idle_worker_into_a_claim(db, tmp_path, monkeypatch):
    """Each heartbeat is a commit, which wakes every idle worker's -wal watch: the worker may
    read (is anything due?) but must not attempt a claim (a write transaction) for it. Ends
    with a job, to show the worker was awake to take one."""
    settings.set_value("heartbeat_interval", 0.05)  # twenty heartbeats a second
    settings.set_value("poll_interval", 60)  # no claim attempt from the poll's deadline
    attempts: list[bool] = []
    real_settle = engine.settle

    def counted(worker, ended=(), **kwargs):
        result = real_settle(worker, ended, **kwargs)
        if kwargs.get("claim") and not ended and not kwargs.get("hand_back"):
            attempts.append(bool(result[1]))
        return result

    monkeypatch.setattr(engine, "settle", counted)
    loop = WorkerLoop()
    beats: set[float] = set()

    def drive():
        try:
            wait_for(lambda: Worker.select().exists() and attempts, message="an idle worker")
            wait_for(
                lambda: beats.update(w.heartbeat_at for w in Worker.select()) or len(beats) >= 15,
                message="fifteen heartbeats",
            )
            idle = list(attempts)
            engine.enqueue([spec.normalize({"command": "touch ran"})], cwd=str(tmp_path), env={})
            wait_for((tmp_path / "ran").exists, message="the job")
            assert idle == [False], f"claim attempts while idle: {idle}"
        finally:
            loop._on_stop(None, None)
            database.close()

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(drive, errors), daemon=True)
    thread.start()
    assert loop.run() == 0
    thread.join()
    if errors:
        raise errors[0]


def _catch(body, errors: list[BaseException]) -> None:
    try:
        body()
    except BaseException as exc:  # re-raised in the test's own thread
        errors.append(exc)


@pytest.mark.both_backends  # each schema has its own channel: other tests' NOTIFYs miss it
def test_a_waiter_with_nothing_to_wait_for_sleeps(db, monkeypatch):
    """``wait`` and ``logs -f`` sleep in ``engine.changes``: with no commit for a second, they
    look at the change token a few times (the watch's safety net), not every 10 ms (on
    PostgreSQL they slept 10 ms at a time instead of in select on their LISTEN socket)."""
    looks = []
    real = engine.change_token
    monkeypatch.setattr(engine.waiting, "change_token", lambda: looks.append(1) or real())
    ends = time.monotonic() + 1.0
    for _ in engine.changes(fallback=60, deadline=ends):
        if time.monotonic() >= ends:
            break
    assert len(looks) < 20, f"{len(looks)} looks in a second without a commit"


def _elsewhere(call) -> None:
    """``call()`` on a connection of its own (a thread of its own), as another process would."""
    errors: list[BaseException] = []

    def run():
        try:
            call()
        except BaseException as exc:  # re-raised in the test's own thread
            errors.append(exc)
        finally:
            database.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.mark.sqlite_only
def test_the_jobs_token_moves_with_jobs_and_queues_not_with_heartbeats(add, worker):
    """SQLite's data_version moves at every commit, each worker's heartbeat (one a second)
    too: the console and ``wait`` read again after each one. ``jobs_token`` moves only when
    something they show changed: a job (enqueued, edited, claimed, ended, deleted), a queue
    (paused, limited) or the pause of every queue."""
    from queuectl_tui.store import jobs_token

    add("j")
    token = jobs_token()
    for _ in range(3):
        _elsewhere(lambda: engine.heartbeat(worker.id))
        assert jobs_token() == token
    taken: list = []
    steps = [
        ("enqueue", lambda: engine.enqueue([spec.normalize({"id": "k", "command": "true"})])),
        ("edit (no change of state)", lambda: engine.edit("j", {"priority": 5})),
        ("pause a queue", lambda: engine.pause(["default"])),
        ("resume it", lambda: engine.resume(["default"])),
        ("a limit", lambda: engine.set_limit("default", 1)),
        ("pause every queue", lambda: engine.pause()),
        ("resume every queue", lambda: engine.resume()),
        ("claim", lambda: taken.append(engine.claim(worker, now=T0 + 1))),
        ("finish", lambda: engine.finish(*taken[0], outcome="completed", exit_code=0)),
        ("delete", lambda: engine.delete(["k"])),
    ]
    for name, step in steps:
        _elsewhere(step)
        moved = jobs_token()
        assert moved != token, f"{name} did not move the token"
        token = moved
        _elsewhere(lambda: engine.heartbeat(worker.id))
        assert jobs_token() == token
