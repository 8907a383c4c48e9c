"""Control in the engine: dependencies (--after), restart, edit, pause, per-queue limits, why a
job waits, and waiting for jobs to end. Every timing decision is driven by ``now=``."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from helpers import T0, state
from queuectl_tui import engine, present, settings, spec
from queuectl_tui.errors import InvalidInput, NotFound, QueueError
from queuectl_tui.store.models import Dependency, Job


def explain(job, **kw) -> str:
    """The sentence ``show`` and the console give: ``engine.why_facts`` worded by present."""
    return present.explain(engine.why_facts(job, **kw))


def run(worker, outcome="completed", now=T0 + 1):
    """Claim the next job and end it with ``outcome``; returns the job's id."""
    job, attempt = engine.claim(worker, now=now)
    engine.finish(
        job, attempt, outcome=outcome, error=None if outcome == "completed" else "boom", now=now
    )
    return job.id


def states(*ids: str) -> list[str]:
    return [state(i).state for i in ids]


# --- dependencies -------------------------------------------------------------------------------


def test_spec_after_is_a_list_of_job_ids():
    assert spec.normalize({"command": "x", "after": ["a", "b", "a"]})["after"] == ["a", "b"]
    assert "after" not in spec.normalize({"command": "x", "after": []})
    for bad in ("a", [""], [1], ["a b"], {"a": 1}):
        with pytest.raises(InvalidInput, match="after|id"):
            spec.normalize({"command": "x", "after": bad})


def test_a_job_waits_until_every_dependency_completes(add, worker):
    add("a")
    add("b")
    add("c", after=["a", "b"], priority=100)
    assert state("c").waiting_on == 2
    assert engine.dependencies(state("c")) == [("a", "pending"), ("b", "pending")]
    assert run(worker) == "a"  # c has the higher priority, but waits
    assert state("c").waiting_on == 1
    assert run(worker) == "b"
    assert state("c").waiting_on == 0
    assert run(worker) == "c"


def test_a_completed_dependency_is_claimed_by_the_finishing_workers_next_claim(add, worker):
    add("a")
    add("b", after=["a"])
    job, attempt = engine.claim(worker, now=T0 + 1)
    _, claimed = engine.finish_and_claim(
        job,
        attempt,
        worker,
        outcome="completed",
        exit_code=0,
        error=None,
        tail=None,
        max_backoff=60,
        now=T0 + 2,
    )
    assert claimed is not None and claimed[0].id == "b"


def test_unknown_dependency_is_refused_and_nothing_is_added(add):
    add("a")
    with pytest.raises(InvalidInput, match="after: no job with id 'nope'"):
        add("b", after=["a", "nope"])
    assert Job.select().count() == 1 and Dependency.select().count() == 0
    with pytest.raises(InvalidInput, match="'self'"):
        add("self", after=["self"])


def test_a_dependency_already_dead_sends_the_job_to_the_dlq(add, worker):
    add("a", max_retries=0)
    run(worker, "failed")
    job = add("b", after=["a"])
    assert (job.state, job.last_error) == ("dead", "dependency a failed")


def test_a_dependency_that_dies_sends_its_dependents_to_the_dlq_once(add, worker):
    add("a", max_retries=0)
    add("b", after=["a"])
    add("c", after=["b"])
    add("d", after=["a"])
    run(worker, "failed")
    assert states("b", "c", "d") == ["dead"] * 3
    assert [state(i).last_error for i in "bcd"] == [
        "dependency a failed",
        "dependency b failed",
        "dependency a failed",
    ]
    assert all(engine.attempts_of(state(i)) == [] for i in "bcd")  # none of them ran
    assert engine.claim(worker, now=T0 + 2) is None


def test_stream_enqueue_takes_after_including_jobs_earlier_in_the_input(db, tmp_path, worker):
    engine.enqueue([spec.normalize({"id": "old", "command": "true"})], cwd=str(tmp_path), env={})
    lines = [
        ("line 1", {"id": "x", "command": "true", "after": ["old"]}),
        ("line 2", {"id": "y", "command": "true", "after": ["x", "old"]}),
        ("line 3", {"command": "true"}),
    ]
    with engine.enqueue_stream(lines, cwd=str(tmp_path), env={}) as added:
        assert added.count == 3 and added.dead() == []
    assert [state(i).waiting_on for i in ("x", "y")] == [1, 2]
    assert engine.dependencies(state("y")) == [("old", "pending"), ("x", "pending")]


@pytest.mark.both_backends
@pytest.mark.parametrize("after", [["later"], ["ghost"], ["me"]])
def test_stream_enqueue_refuses_a_later_or_unknown_dependency(db, tmp_path, after):
    lines = [
        ("line 1", {"command": "true"}),
        ("line 2", {"id": "me", "command": "true", "after": after}),
        ("line 3", {"id": "later", "command": "true"}),
    ]
    with (
        pytest.raises(InvalidInput, match=f"line 2: after: no job with id '{after[0]}'") as err,
        engine.enqueue_stream(lines, cwd=str(tmp_path), env={}),
    ):
        pass
    assert err.value.field == "after"  # the console's form puts it under that field
    assert Job.select().count() == 0 and Dependency.select().count() == 0


@pytest.mark.both_backends
@pytest.mark.parametrize("taken", [False, True], ids=["repeated", "taken"])
def test_stream_enqueue_names_the_id_field_of_a_repeated_or_taken_id(db, tmp_path, taken):
    """A repeated id in the input, or one a job already has, is the same error on both
    backends, under the ``id`` field (the console's form puts it there): PostgreSQL's staging
    raised it without the field."""
    if taken:
        engine.enqueue([spec.normalize({"id": "x", "command": "true"})], cwd=str(tmp_path), env={})
    lines = [
        ("line 1", {"id": "x", "command": "true"}),
        ("line 2", {"id": "y" if taken else "x", "command": "true"}),
    ]
    with (
        pytest.raises(
            InvalidInput,
            match="line 1: job id 'x' already exists"
            if taken
            else "line 2: duplicate job id 'x' in the input",
        ) as err,
        engine.enqueue_stream(lines, cwd=str(tmp_path), env={}),
    ):
        pass
    assert err.value.field == "id"
    assert Job.select().count() == (1 if taken else 0)


def test_stream_enqueue_after_a_dead_job_goes_to_the_dlq(add, worker, tmp_path):
    add("a", max_retries=0)
    run(worker, "failed")
    lines = [
        ("line 1", {"id": "x", "command": "true", "after": ["a"]}),
        ("line 2", {"id": "y", "command": "true", "after": ["x"]}),
    ]
    with engine.enqueue_stream(lines, cwd=str(tmp_path), env={}) as added:
        assert added.dead() == [("x", "dependency a failed"), ("y", "dependency x failed")]


def test_cancel_of_a_job_others_wait_on_sends_them_to_the_dlq(add):
    add("a")
    add("b", after=["a"])
    engine.cancel("a", now=T0)
    assert (state("b").state, state("b").last_error) == ("dead", "dependency a failed")


def chain(length: int) -> None:
    """c0 <- c1 <- … : each job waits on the one before it."""
    specs = (
        (
            f"line {n}",
            spec.normalize(
                {"id": f"c{n}", "command": "true", **({"after": [f"c{n - 1}"]} if n else {})},
                now=T0,
            ),
        )
        for n in range(length)
    )
    with engine.enqueue_stream(specs, cwd="/", env={}, now=T0):
        pass


def dlq_size() -> int:
    return engine.counts()["dead"]


@pytest.mark.both_backends
@pytest.mark.parametrize("how", ["cancel", "delete"])
def test_a_long_chain_goes_to_the_dlq_in_short_transactions(db, monkeypatch, how):
    """Cancelling (or deleting) the head of a 10,000-job chain sent all of it to the DLQ in
    one transaction, holding the write lock 5-15 s. Counted here: the jobs each write
    transaction sends to the DLQ, a step at most; yet when the command returns the whole
    chain is dead (none left waiting on a dead job) and nothing says a cascade is pending."""
    monkeypatch.setattr(engine.chains, "CASCADE_STEP", 20)
    chain(150)
    real, per_transaction = engine.write_transaction, []

    @contextlib.contextmanager
    def measured():
        with real():
            before = dlq_size()
            yield
            per_transaction.append(dlq_size() - before)  # before its commit and what follows

    for module in (engine.actions, engine.chains):  # the head, then each step
        monkeypatch.setattr(module, "write_transaction", measured)
    getattr(engine, how)("c0" if how == "cancel" else ["c0"])
    dead = {j.id for j in Job.select().where(Job.state == "dead")}
    assert dead == {f"c{n}" for n in range(1 if how == "delete" else 0, 150)}
    assert max(per_transaction) <= 21, per_transaction  # the head, and one step
    assert not engine.cascade_pending()


def test_a_cascade_cut_short_by_a_crash_leaves_nothing_runnable_and_recovery_ends_it(
    db, monkeypatch, worker
):
    """The process dies after the first step committed: what it left is whole (the rest of
    the chain waits, so none of it can be claimed; the counts are right) and recovery, run by
    any worker or ``recover``, sends the rest to the DLQ."""
    monkeypatch.setattr(engine.chains, "CASCADE_STEP", 20)
    monkeypatch.setattr(engine.chains, "CASCADE_SECONDS", 3600.0)  # steps of 20 whatever the load
    monkeypatch.setattr(engine.chains, "after_commit", lambda call: None)  # died right after commit
    chain(150)
    engine.cancel("c0")
    assert dlq_size() == 21 and engine.cascade_pending()
    assert engine.claim(worker, now=T0 + 1) is None
    assert engine.counts()["pending"] == 129
    monkeypatch.undo()
    engine.recover_lost()
    assert dlq_size() == 150 and not engine.cascade_pending()
    assert state("c149").last_error == "dependency c148 failed"


def test_deleting_a_job_others_wait_on_sends_them_to_the_dlq(add, worker):
    add("a")
    add("done")
    assert run(worker) == "a" and run(worker) == "done"
    add("b", after=["a"], delay=60)
    add("c", after=["done"], delay=60)
    add("p")
    add("q", after=["p"])
    engine.delete(["p", "done"])
    assert (state("q").state, state("q").last_error) == ("dead", "dependency p failed")
    assert (state("c").state, state("c").waiting_on) == ("pending", 0)
    assert engine.dependencies(state("c")) == []  # met, then deleted: nothing left to wait for
    assert engine.dependencies(state("b")) == [("a", "completed")]


def test_retry_checks_the_dependencies_again(add, worker):
    add("a", max_retries=0)
    add("b", after=["a"])
    run(worker, "failed")
    assert engine.retry("b", now=T0 + 5).state == "dead"  # a is still dead
    assert state("b").last_error == "dependency a failed"
    engine.dlq_retry(["a", "b"], now=T0 + 6)  # both back: b waits for a again
    assert states("a", "b") == ["pending", "pending"] and state("b").waiting_on == 1
    engine.delete(["a"])
    assert (state("b").state, state("b").last_error) == ("dead", "dependency a failed")
    assert engine.dependencies(state("b")) == [("a", None)]
    assert engine.dlq_retry(["b"], now=T0 + 7)[0].state == "dead"


def test_retry_after_a_completed_dependency_was_cleared_runs(add, worker):
    add("a")
    add("b", after=["a"], max_retries=0)
    run(worker)
    run(worker, "failed")
    engine.clear(["completed"])
    assert engine.retry("b", now=T0 + 5).state == "pending"
    assert state("b").waiting_on == 0


# --- restart ------------------------------------------------------------------------------------


def test_restart_runs_a_finished_job_again_keeping_its_history(add, worker):
    add("a", max_retries=1)
    run(worker)
    add("d", max_retries=0)
    run(worker, "failed")
    jobs = engine.restart(["a", "d"], now=T0 + 10)
    assert [(j.state, j.attempts, j.last_error, j.finished_at) for j in jobs] == [
        ("pending", 0, None, None)
    ] * 2
    job, attempt = engine.claim(worker, now=T0 + 11)
    assert (job.id, attempt.number) == ("a", 2)
    engine.finish(job, attempt, outcome="completed", now=T0 + 12)
    assert [a.number for a in engine.attempts_of(state("a"))] == [1, 2]


@pytest.mark.parametrize("busy", ["pending", "processing", "failed"])
def test_restart_refuses_a_waiting_or_running_job_and_changes_nothing(add, worker, busy):
    add("done")
    run(worker)
    add("x", max_retries=3)
    if busy != "pending":
        job, attempt = engine.claim(worker, now=T0 + 2)
        if busy == "failed":
            engine.finish(job, attempt, outcome="failed", error="boom", now=T0 + 2)
    assert state("x").state == busy
    with pytest.raises(QueueError, match=f"'x' is {busy}"):
        engine.restart(["done", "x"])
    assert states("done", "x") == ["completed", busy]
    with pytest.raises(NotFound):
        engine.restart(["done", "ghost"])


def test_jobs_still_waiting_on_a_restarted_job_wait_for_it_again(add, worker):
    add("a")
    add("b")
    add("c", after=["a", "b"])
    run(worker)  # a
    assert state("c").waiting_on == 1
    engine.restart(["a"], now=T0 + 2)
    assert state("c").waiting_on == 2


def test_restart_of_a_job_and_one_that_waits_on_it(add, worker):
    add("a")
    add("b", after=["a"])
    run(worker)
    run(worker)
    engine.restart(["a", "b"], now=T0 + 3)
    assert [state(i).waiting_on for i in "ab"] == [0, 1]


def test_restart_of_a_job_whose_dependency_is_dead_goes_back_to_the_dlq(add, worker):
    add("a", max_retries=0)
    add("b", after=["a"])
    run(worker, "failed")
    [job] = engine.restart(["b"], now=T0 + 5)
    assert (job.state, job.last_error) == ("dead", "dependency a failed")


# --- edit ---------------------------------------------------------------------------------------


def test_edit_changes_a_waiting_job_with_enqueue_validation(add, worker):
    add("x", priority=1)
    job = engine.edit(
        "x",
        {
            "command": "echo new",
            "priority": 7,
            "max_retries": 5,
            "timeout": 9,
            "queue": "other",
            "delay": 60,
        },
        now=T0 + 1,
    )
    assert (job.command, job.priority, job.max_retries, job.timeout, job.queue, job.run_at) == (
        "echo new",
        7,
        5,
        9.0,
        "other",
        T0 + 61,
    )
    assert job.rank == 7  # kept by the trigger (no aging)
    assert engine.queue_state("other")["name"] == "other"
    assert engine.counts()["pending"] == 1
    job = engine.edit("x", {"run_at": "2030-01-01T00:00:00Z"}, now=T0 + 2)
    assert spec.iso(job.run_at) == "2030-01-01T00:00:00.000Z"
    for bad, words in [
        ({"priority": "high"}, "priority"),
        ({"queue": "a b"}, "bad queue"),
        ({"command": ""}, "empty"),
        ({"id": "y"}, "cannot edit 'id'"),
        ({"delay": 1, "run_at": "2030-01-01T00:00:00Z"}, "not both"),
        ({}, "nothing"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            engine.edit("x", bad)
    assert state("x").command == "echo new"


def test_edit_refuses_a_running_or_finished_job_and_changes_nothing(add, worker):
    add("x")
    engine.claim(worker, now=T0 + 1)
    with pytest.raises(QueueError, match="'x' is processing"):
        engine.edit("x", {"command": "echo other"})
    assert state("x").command == "true"


# --- pause, limits, explain ---------------------------------------------------------------------


def test_pause_holds_a_queue_until_resumed(add, db):
    add("a", queue="q")
    add("b", queue="r")
    w1, w2 = engine.register_worker(now=T0), engine.register_worker(now=T0)
    engine.pause(["q"])
    assert engine.claim(w1, now=T0 + 1)[0].id == "b"
    assert engine.claim(w2, now=T0 + 1) is None
    engine.resume(["q"])
    assert engine.claim(w2, now=T0 + 1)[0].id == "a"


def test_pause_of_every_queue_takes_effect_for_the_next_claim_of_every_worker(add, db):
    for n in range(4):
        add(f"j{n}", queue=f"q{n % 2}")
    workers = [engine.register_worker(now=T0) for _ in range(3)]
    engine.pause()
    assert [engine.claim(w, now=T0 + 1) for w in workers] == [None] * 3
    assert [r["paused"] for r in engine.queue_rows()] == [True, True]
    engine.resume(["q1"])
    assert {engine.claim(w, now=T0 + 1)[0].queue for w in workers[:2]} == {"q1"}
    engine.resume()
    assert engine.claim(workers[2], now=T0 + 1)[0].queue == "q0"


def test_a_queue_limit_holds_across_workers(add, db):
    for n in range(5):
        add(f"j{n}", queue="q")
    add("other", queue="r")
    engine.set_limit("q", 2)
    workers = [engine.register_worker(now=T0) for _ in range(4)]
    got = [engine.claim(w, now=T0 + 1) for w in workers]
    assert sorted(c[0].id for c in got if c) == ["j0", "j1", "other"]
    assert engine.queue_state("q") == {"name": "q", "paused": False, "limit": 2, "running": 2}
    job, attempt = got[0]
    engine.finish(job, attempt, outcome="completed", now=T0 + 2)
    assert engine.claim(workers[3], now=T0 + 2)[0].id == "j2"
    engine.set_limit("q", None)
    assert engine.claim(workers[0], now=T0 + 2)[0].id == "j3"


def test_explain_says_what_holds_a_waiting_job(add, worker):
    add("a")
    add("b")
    add("c", after=["a", "b"])
    run(worker)
    assert (
        explain(state("c"), now=T0 + 1)
        == "due, waiting: dependencies not completed yet: b (pending)"
    )
    engine.pause(["default"])
    text = explain(state("c"), now=T0 + 1)
    assert "its queue 'default' is paused" in text
    engine.resume()
    engine.set_limit("default", 1)
    engine.claim(worker, now=T0 + 2)
    assert "its queue 'default' is at its limit (1 of 1 running)" in explain(state("c"))
    settings.set_value("priority_aging", 1.0)
    assert "effective priority 2.0 (aging)" in explain(state("c"), now=T0 + 120)
    add("d", delay=60)
    assert explain(state("d"), now=T0).startswith(f"scheduled for {spec.iso(T0 + 60)}; its queue")


# --- waiting ------------------------------------------------------------------------------------


def test_wait_yields_each_job_as_it_ends(add, worker):
    add("done")
    run(worker)
    add("a")
    add("b", max_retries=0)
    seen = []

    def finish_later():
        for outcome in ("completed", "failed"):
            time.sleep(0.05)
            run(worker, outcome, now=T0 + 5)

    thread = threading.Thread(target=finish_later)
    thread.start()
    for job in engine.wait(["done", "a", "b"], timeout=30):
        seen.append((job.id, job.state))
    thread.join()
    assert seen == [("done", "completed"), ("a", "completed"), ("b", "dead")]


def test_wait_for_a_queue_or_every_job_includes_jobs_added_meanwhile(add, worker):
    add("a", queue="q")
    add("other", queue="r")
    gen = engine.wait(queues=["q"], timeout=30)
    assert engine.claim(worker, now=T0 + 1)[0].id == "a"
    add("b", queue="q")
    with pytest.raises(engine.WaitTimeout):
        list(engine.wait(queues=["q"], timeout=0.05))
    engine.finish(state("a"), engine.attempts_of(state("a"))[0], outcome="completed", now=T0 + 2)
    engine.cancel("b")
    assert [(j.id, j.state) for j in gen] == [("a", "completed"), ("b", "dead")]
    with pytest.raises(engine.WaitTimeout, match="1 job"):
        list(engine.wait(timeout=0.05))  # "other" is still pending


@pytest.mark.both_backends
def test_waiting_for_every_job_reads_only_what_changed(add, worker, monkeypatch):
    """``wait --all`` looked at every open job at each change (10 s of CPU over 50,000 jobs):
    now a change costs what changed. Counted: the full looks while 100 jobs end one at a time
    (the waiter sees each before the next ends), a job is deleted and 3 are added meanwhile;
    every job is still reported, the added ones included, and the deleted one is let go."""
    from queuectl_tui.store.models import database

    start = time.time() - 10
    for n in range(100):
        add(f"j{n:03}", now=start)
    full_looks, real = [], engine.waiting._unfinished
    monkeypatch.setattr(
        engine.waiting, "_unfinished", lambda *args: full_looks.append(1) or real(*args)
    )
    monkeypatch.setattr(engine.waiting, "FULL_LOOK", 3600.0)  # only when counts call
    seen: list[str] = []
    trouble: list[BaseException] = []

    def another_process() -> None:
        try:
            ends = 0
            while claimed := engine.claim(worker, now=time.time()):
                engine.finish(*claimed, outcome="completed", now=time.time())
                ends += 1
                deadline = time.monotonic() + 30
                while len(seen) < ends and time.monotonic() < deadline:
                    time.sleep(0.002)
                if ends == 30:
                    engine.delete(["j099"])
                if ends == 50:
                    for n in range(3):
                        add(f"new{n}", now=start)
        except BaseException as exc:  # noqa: BLE001 (reported by the test below)
            trouble.append(exc)
        finally:
            database.close()

    thread = threading.Thread(target=another_process)
    gen = engine.wait(timeout=120)
    thread.start()
    for job in gen:
        seen.append(job.id)
    thread.join()
    assert not trouble, trouble
    assert sorted(seen) == sorted([f"j{n:03}" for n in range(99)] + ["new0", "new1", "new2"])
    assert len(full_looks) <= 3, len(full_looks)  # the first, the delete's, one spare


def test_wait_reports_unknown_and_deleted_jobs(add):
    with pytest.raises(NotFound):
        list(engine.wait(["ghost"]))
    add("a")
    gen = engine.wait(["a"], timeout=30)
    engine.delete(["a"])
    assert [(j.id, j.state) for j in gen] == [("a", engine.DELETED)]


def test_wait_returns_within_100_ms_of_the_last_job_ending(add, worker):
    """Woken by data_version (polled every 10 ms), not by its 1 s fallback."""
    gaps = []
    for n in range(3):
        add(f"j{n}")
        job, attempt = engine.claim(worker, now=T0 + 1)
        ended = []

        def finish_later(n=n, job=job, attempt=attempt, ended=ended):
            time.sleep(0.1 + 0.07 * n)  # lands anywhere in the waiter's poll cycle
            engine.finish(job, attempt, outcome="completed", now=T0 + 2)
            ended.append(time.monotonic())

        thread = threading.Thread(target=finish_later)
        thread.start()
        assert [j.id for j in engine.wait([job.id], timeout=30)] == [job.id]
        returned = time.monotonic()
        thread.join()
        gaps.append(returned - ended[0])
    assert min(gaps) < 0.1 and max(gaps) < 0.5, gaps  # ~0.01 s unloaded
