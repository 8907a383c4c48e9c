"""Recovery racing other processes: what bench/stress.py --chaos exposed, made deterministic.

Each test drives engine.recover_lost in this process and, at the moment it is busy killing a
lost job's tree (the slow part of recovery), lets "another process" act through a second
SQLite connection or through the engine.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess

import psutil
import pytest

from helpers import kill_processes_with, token, wait_for

# reap (conftest.py): kills whatever a test leaves running, even when it fails half-way.
pytestmark = pytest.mark.usefixtures("reap")


@pytest.fixture
def tok():
    value = token()
    yield value
    kill_processes_with(value)


def lost_worker():
    """A worker row for a process that is gone (this PID, another start time)."""
    from queuectl_tui import engine
    from queuectl_tui.store.models import Worker

    row = engine.register_worker()
    Worker.update(proc_started=row.proc_started - 1000).where(Worker.id == row.id).execute()
    return Worker.get_by_id(row.id)


def started(claimed):
    """Record a process (one that has exited) for the claim: its command ran, so recovery
    goes through killing its tree (a claim with no process goes back untouched)."""
    from queuectl_tui import engine

    done = subprocess.Popen(["true"])
    done.wait()
    engine.record_process(claimed[1], done.pid, 0.0)
    return claimed


def add(*ids: str) -> None:
    from queuectl_tui import engine, spec

    engine.enqueue([spec.normalize({"id": i, "command": "true"}) for i in ids], cwd="/", env={})


def test_recovering_several_jobs_while_others_commit(db, home, monkeypatch):
    """Workers and producers commit all the time. Recovery of two lost jobs must not fail with
    'database is locked' because a commit landed while it was killing the first tree."""
    from queuectl_tui import engine, procs
    from queuectl_tui.store.models import Job

    add("a", "b", "c")
    dead = lost_worker()
    started(engine.claim(dead))
    started(engine.claim(dead))
    other = sqlite3.connect(home / "queuectl.db", isolation_level=None, timeout=5)
    real_kill = procs.kill_tree

    def kill_while_someone_commits(pid, started, **kw):
        other.execute("UPDATE job SET priority = priority + 1 WHERE id = 'c'")  # e.g. a producer
        return real_kill(pid, started, **kw)

    monkeypatch.setattr(procs, "kill_tree", kill_while_someone_commits)
    assert sorted(engine.recover_lost()) == ["a", "b"]
    assert {j.id: j.state for j in Job.select()} == {"a": "failed", "b": "failed", "c": "pending"}
    other.close()


def test_recovery_never_touches_a_run_claimed_meanwhile_by_a_live_worker(db, monkeypatch, tok):
    """Recovery reads the jobs of lost workers, then handles them one by one. If, meanwhile,
    another worker recovered one of them and a live worker claimed it again, that new run must
    be neither killed nor marked lost."""
    from queuectl_tui import engine, procs
    from queuectl_tui.store.models import Job

    add("a", "b")
    dead = lost_worker()
    started(engine.claim(dead))
    job_b, attempt_b = started(engine.claim(dead))
    live = engine.register_worker()  # this test process: alive
    live_run = subprocess.Popen(["sleep", tok])  # the live worker's run of b
    real_kill = procs.kill_tree
    interleaved = []

    def elsewhere_meanwhile(pid, started, **kw):
        if not interleaved:
            interleaved.append(True)
            engine.finish(
                job_b, attempt_b, outcome="lost", error="worker lost"
            )  # another recoverer
            Job.update(run_at=0).where(Job.seq == job_b.seq).execute()  # its backoff is over
            job, attempt = engine.claim(live)
            assert job.id == "b"
            engine.record_process(attempt, live_run.pid, psutil.Process(live_run.pid).create_time())
        return real_kill(pid, started, **kw)

    monkeypatch.setattr(procs, "kill_tree", elsewhere_meanwhile)
    try:
        assert engine.recover_lost() == ["a"]
        assert live_run.poll() is None, "recovery killed a live worker's run"
        b = Job.get(Job.id == "b")
        assert (b.state, b.worker_id) == ("processing", live.id)
        assert [a.outcome for a in engine.attempts_of(b)] == ["lost", None]
    finally:
        live_run.kill()
        live_run.wait()


def test_a_noted_process_that_started_before_its_attempt_is_not_its_job(db, home):
    """A journal note names a process by attempt seq (and, from this version on, by claim
    token); a process that started before the attempt was claimed is an older run's, whose
    seq was given again after a delete. A note without a token (the previous format) for such
    a process must not be taken for the job's (recovery would kill nothing, and the job's real
    process would run beside its retry); one that started after the claim is."""
    import os
    import time

    from helpers import dead_pid
    from queuectl_tui import engine, procs, spec

    engine.enqueue([spec.normalize({"id": "j", "command": "true"})], cwd=str(home.parent), env={})
    _, attempt = engine.claim(lost_worker())
    me, my_start = os.getpid(), procs.start_time(os.getpid())
    journal = engine.logs_dir() / f"worker{me}-{int(my_start * 100)}.pids"
    for started, trusted in ((attempt.started_at - 600, False), (time.time(), True)):
        record = f"{attempt.seq} {dead_pid()} {started!r} {me} {my_start!r}\n"
        journal.write_bytes(record.ljust(128).encode())
        noted = engine.noted_process(attempt)
        assert (noted is not None and noted[1] == started) is trusted, noted
    journal.unlink()


# --- "not started" must be final: a job recorded so never runs afterwards -------------------


def test_a_note_written_by_a_dying_worker_is_not_removed_with_its_journal(db, monkeypatch, tok):
    """Recovery removes the journals of dead workers whose jobs are all recorded. It read one
    such journal while its worker still lived; the worker then noted its next job's process,
    let the job run and was SIGKILLed; recovery found it dead and removed the journal, note and
    all. Recovering that job, it found no note: "not started", the running job left alive and
    run again. (The chaos runs' rare job run twice although "not started".)"""
    from queuectl_tui import engine, procs
    from queuectl_tui.store.models import Job

    add("first", "second")
    owner = subprocess.Popen(["sleep", tok])  # the worker process
    owner_started = procs.start_time(owner.pid)
    worker = engine.register_worker(pid=owner.pid)
    journal = engine.ProcessJournal()
    journal.owner = f"{owner.pid} {owner_started!r}"  # its journal, as it writes it
    job, attempt = engine.claim(worker)
    journal.note(attempt, owner.pid, owner_started)
    engine.finish(job, attempt, outcome="completed")  # every note so far has its end recorded
    _, second = engine.claim(worker)
    run = subprocess.Popen(["sleep", tok])  # the second job, once its gate opened
    real = procs.same_process

    def dies_meanwhile(pid, started):  # after the journal was read, before the owner's check
        if pid == owner.pid and owner.poll() is None:
            journal.note(second, run.pid, procs.start_time(run.pid))
            owner.kill()
            owner.wait()
        return real(pid, started)

    monkeypatch.setattr(procs, "same_process", dies_meanwhile)
    try:
        engine.drop_dead_journals()  # another worker's recovery, cleaning up
        monkeypatch.setattr(procs, "same_process", real)
        assert engine.recover_lost() == ["second"]
        tries = engine.attempts_of(Job.get(Job.id == "second"))
        assert [(a.outcome, a.pid) for a in tries] == [("lost", run.pid)]
        assert run.wait(timeout=10) == -signal.SIGKILL  # recovery found it, and killed it
    finally:
        run.kill()
        run.wait()
        journal.close()


def test_a_frozen_workers_job_without_a_note_is_charged_as_possibly_run(db, tok):
    """Frozen (SIGSTOP, Ctrl+Z) past the lease between a claim and noting the job's process,
    a worker is presumed lost. Its job was recorded "not started"; resumed, the worker noted the
    process and ran it, beside the retry. Only a worker that has exited is known never to start
    it: one that may resume is charged "worker lost", like a run."""
    from queuectl_tui import engine
    from queuectl_tui.store.models import Job, Worker

    add("j")
    frozen = subprocess.Popen(["sleep", tok])
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: psutil.Process(frozen.pid).status() == psutil.STATUS_STOPPED,
            message="the worker to freeze",
        )
        worker = engine.register_worker(pid=frozen.pid)
        engine.claim(worker)
        Worker.update(heartbeat_at=1000.0).where(Worker.id == worker.id).execute()  # silent
        assert engine.recover_lost() == ["j"]
        job = Job.get(Job.id == "j")
        (attempt,) = engine.attempts_of(job)
        assert (job.state, job.attempts, attempt.outcome) == ("failed", 1, "lost")
        assert "it may have started" in attempt.error
    finally:
        frozen.kill()
        frozen.wait()


def test_a_worker_resumed_past_its_lease_does_not_start_its_job(db, tmp_path):
    """The frozen worker's side: resumed with its lease passed (so recovery may have taken the
    job back), it notes the job's process but keeps its gate shut: the command never runs."""
    from queuectl_tui import engine, spec
    from queuectl_tui.run.loop import WorkerLoop

    engine.enqueue(
        [spec.normalize({"id": "j", "command": "echo ran >> ran"})], cwd=str(tmp_path), env={}
    )
    worker = WorkerLoop()
    worker.row = engine.register_worker()
    worker._settle(claim=1)
    job, attempt = worker.batch.held.popleft()
    worker.beats.renewed_at -= worker.cfg.lease + 1  # its last heartbeat, before the freeze
    try:
        result = worker._run_job(job, attempt)
    finally:
        worker.launcher.close()
        if worker.journal is not None:
            worker.journal.close()
    assert (result.outcome, result.error.split(" (")[0]) == (
        "interrupted",
        "not started: its worker lost its lease",
    )
    assert not (tmp_path / "ran").exists()
