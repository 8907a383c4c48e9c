"""Claiming in batches: a worker draining short jobs claims several at once and records their
ends together; what it holds but has not started goes back untouched (no retry used, no
attempt left behind) when a job runs long, when it stops, or when it dies."""

from __future__ import annotations

import os
import threading
from itertools import pairwise
from pathlib import Path

import pytest

from helpers import T0, dead_pid, state, wait_for
from queuectl_tui import engine, spec
from queuectl_tui.run import batch as batch_module
from queuectl_tui.run.loop import WorkerLoop
from queuectl_tui.store import change_token, is_sqlite
from queuectl_tui.store.models import Attempt, Job, JobCount, Worker, database

pytestmark = pytest.mark.both_backends
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def counts() -> dict[tuple[str, str], int]:
    summed: dict[tuple[str, str], int] = {}
    for c in JobCount.select():  # PostgreSQL: a row per writing session, summed
        summed[(c.queue, c.state)] = summed.get((c.queue, c.state), 0) + c.n
    return {key: n for key, n in summed.items() if n}


def held_ids(claimed) -> list[str]:
    return [job.id for job, _ in claimed]


# --- the engine: settle ----------------------------------------------------------------------


def test_settle_claims_several_best_first_within_the_queues_limit(add, worker):
    for n in range(5):
        add(f"j{n}", priority=n)
    add("other", queue="slow")
    engine.set_limit("slow", 0)
    _, claimed = engine.settle(worker, claim=3, max_backoff=60, now=T0 + 1)
    assert held_ids(claimed) == ["j4", "j3", "j2"]
    assert [a.number for _, a in claimed] == [1, 1, 1]
    engine.set_limit("default", 4)
    _, more = engine.settle(worker, claim=3, max_backoff=60, now=T0 + 1)
    assert held_ids(more) == ["j1"]  # the limit counts held jobs as running
    assert Worker.get_by_id(worker.id).current_job == "j1"


def test_on_postgresql_a_batchs_ends_and_its_next_claim_are_one_statement(add, worker, monkeypatch):
    """One round trip and one commit per batch (queuectl_cycle, run on its own): no BEGIN, no
    COMMIT, no statement per end or per claim."""
    if is_sqlite():
        pytest.skip("PostgreSQL's round trips (SQLite's are calls in the process)")
    for n in range(4):
        add(f"j{n}", priority=-n)
    _, claimed = engine.settle(worker, claim=2, max_backoff=60, now=T0 + 1)
    sent: list[str] = []
    db = database.obj
    for name in ("execute_sql", "begin", "commit"):
        real = getattr(db, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            sent.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(db, name, counted)
    ended = [engine.Ended(job, attempt, "completed", 0, at=T0 + 2) for job, attempt in claimed]
    states, more = engine.settle(worker, ended, claim=2, max_backoff=60, now=T0 + 2)
    monkeypatch.undo()
    assert sent == ["execute_sql"]
    assert states == ["completed", "completed"] and held_ids(more) == ["j2", "j3"]
    assert counts() == {("default", "completed"): 2, ("default", "processing"): 2}
    assert [
        a.outcome for _, a in [(j, engine.attempts_of(state(j.id))[0]) for j, _ in claimed]
    ] == ["completed", "completed"]
    assert Worker.get_by_id(worker.id).current_job == "j2"


def test_settle_records_ends_and_hands_back_held_jobs_as_they_were(add, worker):
    add("ran")
    add("failed-before", max_retries=3)
    add("never")
    # failed-before fails once, then waits out its backoff as failed.
    job, attempt = engine.claim(worker, now=T0 + 1)
    assert job.id == "ran"
    engine.finish(job, attempt, outcome="completed", now=T0 + 2)
    job, attempt = engine.claim(worker, now=T0 + 3)
    engine.finish(job, attempt, outcome="failed", exit_code=1, error="boom", now=T0 + 4)
    before = state("failed-before")
    assert before.state == "failed"

    _, held = engine.settle(worker, claim=2, max_backoff=60, now=T0 + 100)
    assert sorted(held_ids(held)) == ["failed-before", "never"]
    assert counts()[("default", "processing")] == 2
    engine.settle(worker, hand_back=held, max_backoff=60, now=T0 + 101)

    after = state("failed-before")
    assert (after.state, after.attempts, after.worker_id) == ("failed", 1, None)
    assert (after.started_at, after.finished_at) == (before.started_at, before.finished_at)
    assert [a.outcome for a in engine.attempts_of(after)] == ["failed"]
    never = state("never")
    assert (never.state, never.attempts, never.started_at) == ("pending", 0, None)
    assert engine.attempts_of(never) == []
    assert counts() == {
        ("default", "completed"): 1,
        ("default", "failed"): 1,
        ("default", "pending"): 1,
    }
    assert Worker.get_by_id(worker.id).current_job is None


def test_a_held_job_cancelled_meanwhile_ends_cancelled_instead_of_going_back(add, worker):
    add("j")
    _, held = engine.settle(worker, claim=1, max_backoff=60, now=T0 + 1)
    engine.cancel("j", now=T0 + 2)  # it is processing: the cancel is a request
    engine.settle(worker, hand_back=held, max_backoff=60, now=T0 + 3)
    job = state("j")
    assert (job.state, job.last_error) == ("dead", "cancelled")
    assert [a.outcome for a in engine.attempts_of(job)] == ["cancelled"]


def test_a_held_job_taken_back_by_recovery_is_left_alone(add, worker):
    """Its worker's row is gone but its process lives on (this one): recovery cannot know that
    the job never started, so it charges it lost; the stale hand back then changes nothing."""
    add("j")
    _, held = engine.settle(worker, claim=1, max_backoff=60, now=T0 + 1)
    Worker.delete().where(Worker.id == worker.id).execute()  # presumed lost
    assert engine.recover_lost(now=T0 + 2) == ["j"]
    assert state("j").state == "failed"
    engine.settle(engine.register_worker(now=T0 + 3), hand_back=held, max_backoff=60, now=T0 + 3)
    job = state("j")
    assert (job.state, job.attempts) == ("failed", 1)
    assert [a.outcome for a in engine.attempts_of(job)] == ["lost"]


# --- the worker ------------------------------------------------------------------------------


def enqueue(tmp_path: Path, *specs: dict) -> None:
    engine.enqueue([spec.normalize(s) for s in specs], cwd=str(tmp_path), env=ENV)


@pytest.mark.alone  # its batches depend on how fast jobs end
def test_a_draining_worker_runs_every_job_once_with_its_own_times(db, tmp_path, monkeypatch):
    enqueue(tmp_path, *({"id": f"j{n:02}", "command": f"echo j{n:02} >> ran"} for n in range(40)))
    batches, real_settle = [], engine.settle

    def settle(*args, **kwargs):
        states, claimed = real_settle(*args, **kwargs)
        batches.append(len(claimed))
        return states, claimed

    monkeypatch.setattr(engine, "settle", settle)
    # a budget no job here takes on a loaded machine either: the batches grow whatever the load
    monkeypatch.setattr(batch_module, "RECORD_WITHIN", 5.0)
    monkeypatch.setattr(batch_module, "LONG", 10.0)
    lines = []
    worker = WorkerLoop(burst=True, echo=lines.append)
    assert worker.run() == 0
    # Its lines read job by job, each "finish" once the end is recorded.
    said = [line.split()[:2] for line in lines if line.startswith(("start", "finish"))]
    assert said == [[word, f"j{n:02}"] for n in range(40) for word in ("start", "finish")]
    assert (tmp_path / "ran").read_text().split() == [f"j{n:02}" for n in range(40)]
    attempts = list(Attempt.select().order_by(Attempt.started_at))
    assert [a.number for a in attempts] == [1] * 40
    assert all(a.started_at <= a.finished_at for a in attempts)
    # Each attempt started after the one before it ended: the start is the run's, not the claim's.
    assert all(b.started_at >= a.finished_at for a, b in pairwise(attempts))
    assert {j.state for j in Job.select()} == {"completed"}
    assert max(batches) > 1  # the jobs were short: it claimed several at once


def test_a_long_job_hands_back_the_jobs_held_behind_it(db, tmp_path):
    enqueue(
        tmp_path,
        {
            "id": "long",
            "priority": 10,
            "command": "touch started; while [ ! -e go ]; do sleep 0.02; done",
        },
        *({"id": f"short{n}", "command": "true"} for n in range(3)),
    )
    worker = WorkerLoop(burst=True)
    worker.batch.size = 4

    def handed_back() -> bool:
        return {state(f"short{n}").state for n in range(3)} == {"pending"}

    def release():
        try:
            wait_for(
                lambda: (tmp_path / "started").exists() and handed_back(),
                timeout=30,
                message="the held jobs were handed back while the long job ran",
            )
            assert state("long").state == "processing"
            assert Attempt.select().count() == 1  # the held jobs' attempts are gone
        finally:
            (tmp_path / "go").touch()
            database.close()

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    assert worker.run() == 0
    thread.join()
    assert {j.id: (j.state, j.attempts) for j in Job.select()} == {
        "long": ("completed", 1),
        **{f"short{n}": ("completed", 1) for n in range(3)},
    }
    assert [a.number for a in Attempt.select()] == [1, 1, 1, 1]


def test_a_hold_older_than_half_a_lease_is_handed_back_not_run(db, tmp_path):
    enqueue(tmp_path, *({"id": f"j{n}", "command": "echo ran >> ran"} for n in range(3)))
    worker = WorkerLoop()
    worker.row = engine.register_worker()
    worker.batch.size = 3
    worker._settle(claim=3)
    assert len(worker.batch.held) == 3
    worker.batch.held_at -= worker.cfg.lease  # frozen that long: recovery may have taken them
    worker._run_next()
    assert not worker.batch.held and not (tmp_path / "ran").exists()
    assert {j.state for j in Job.select()} == {"pending"} and Attempt.select().count() == 0


def test_a_dead_workers_ended_but_unrecorded_jobs_count_as_run(db, tmp_path, monkeypatch):
    """Its journal keeps every job it started until their ends are recorded, so recovery
    charges those (they ran) and gives back only the held jobs that never started."""
    monkeypatch.setattr(batch_module, "RECORD_WITHIN", 3600.0)
    enqueue(tmp_path, *({"id": f"j{n}", "command": "echo ran >> ran"} for n in range(4)))
    worker = WorkerLoop()
    worker.row = engine.register_worker(pid=dead_pid())  # its process is gone: as if SIGKILLed
    worker._settle(claim=4)
    worker._run_next()
    worker._run_next()
    assert len(worker.batch.ended) == 2 and len(worker.batch.held) == 2  # nothing recorded yet
    worker.launcher.close()
    engine.recover_lost()
    outcomes = {j.id: [a.outcome for a in engine.attempts_of(j)] for j in Job.select()}
    assert outcomes == {
        "j0": ["lost"],
        "j1": ["lost"],
        "j2": ["interrupted"],
        "j3": ["interrupted"],
    }
    assert (tmp_path / "ran").read_text() == "ran\nran\n"
    worker.journal.close()


@pytest.mark.parametrize("paused", ["its queue", "every queue"])
def test_no_held_job_starts_once_pause_has_returned(db, tmp_path, monkeypatch, paused):
    """A worker holds jobs it claimed before the pause; ``pause`` (another connection) returns
    while the first of them runs: the others go back as they were and none of them starts."""
    monkeypatch.setattr(batch_module, "RECORD_WITHIN", 3600.0)
    enqueue(tmp_path, *({"id": f"j{n}", "command": f"echo j{n} >> ran"} for n in range(4)))
    worker = WorkerLoop()
    worker.row = engine.register_worker()
    worker._settle(claim=4)
    assert len(worker.batch.held) == 4
    worker._run_next()
    before = change_token()
    pauser = threading.Thread(
        target=lambda: (
            engine.pause(["default"] if paused == "its queue" else None),
            database.close(),
        )
    )
    pauser.start()
    pauser.join()
    if before is not None and not is_sqlite():  # PostgreSQL: the NOTIFY is on its way
        wait_for(lambda: change_token() != before, message="the pause to be notified")
    while worker.batch.held:
        worker._run_next()
    worker._settle()
    assert (tmp_path / "ran").read_text() == "j0\n"
    assert [(j.id, j.state) for j in Job.select().order_by(Job.id)] == [
        ("j0", "completed"),
        ("j1", "pending"),
        ("j2", "pending"),
        ("j3", "pending"),
    ]
    assert Attempt.select().count() == 1 and state("j1").attempts == 0
    worker.launcher.close()
    worker.journal.close()


def test_the_journal_outlasts_a_whole_batch():
    assert engine.JOURNAL_SLOTS > batch_module.BATCH_MAX + 1
