"""The queue engine in-process: every timing decision is driven by an injected ``now=``."""

from __future__ import annotations

import signal
import subprocess

import psutil
import pytest

from helpers import JOB_KEYS, T0, check_job_json, dead_pid, outcomes, started, state, wait_for
from queuectl_tui import engine, present, settings, spec
from queuectl_tui.errors import InvalidInput, NotFound, QueueError
from queuectl_tui.store.models import Attempt, Job, Worker


def explain(job, **kw) -> str:
    """The sentence ``show`` and the console give: ``engine.why_facts`` worded by present."""
    return present.explain(engine.why_facts(job, **kw))


# --- success, failure, backoff, DLQ --------------------------------------------------------------


def test_success_completes_in_one_attempt(add, worker):
    add("ok")
    job, attempt = engine.claim(worker, now=T0 + 1)
    assert (job.id, job.state, job.attempts, attempt.number) == ("ok", "processing", 1, 1)
    assert state("ok").worker_id == worker.id
    assert (
        engine.finish(job, attempt, outcome="completed", exit_code=0, tail="hi\n", now=T0 + 2)
        == "completed"
    )
    row = state("ok")
    assert (row.state, row.attempts, row.exit_code, row.output_tail, row.finished_at) == (
        "completed",
        1,
        0,
        "hi\n",
        T0 + 2,
    )
    assert row.worker_id is None and row.last_error is None
    [a] = engine.attempts_of(row)
    assert (a.outcome, a.exit_code, a.duration) == ("completed", 0, 1.0)
    assert engine.claim(worker, now=T0 + 3) is None


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_failure_goes_to_dlq_after_exactly_max_retries_plus_one_runs(add, worker, max_retries):
    add("bad", max_retries=max_retries, backoff_base=2)
    now, runs, waits = T0, 0, []
    while True:
        claimed = engine.claim(worker, now=now)
        assert claimed is not None, f"not due at {now - T0}"
        runs += 1
        now += 0.5
        new_state = engine.finish(
            *claimed, outcome="failed", exit_code=3, error="exit code 3", now=now
        )
        if new_state == "dead":
            break
        assert new_state == "failed"
        row = state("bad")
        waits.append(row.run_at - now)
        # Not claimable a moment before its backoff ends; claimable when it ends.
        assert engine.claim(worker, now=row.run_at - 0.01) is None
        now = row.run_at
    assert runs == max_retries + 1
    assert waits == [2.0**k for k in range(1, max_retries + 1)]
    row = state("bad")
    assert (row.state, row.attempts, row.last_error, row.exit_code) == (
        "dead",
        max_retries + 1,
        "exit code 3",
        3,
    )
    assert [o for _, o in outcomes("bad")] == ["failed"] * (max_retries + 1)
    assert engine.claim(worker, now=now + 10_000) is None


def test_backoff_is_capped_by_max_backoff(add, worker):
    settings.set_value("max_backoff", "5")
    add("capped", max_retries=5, backoff_base=10)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    assert state("capped").run_at == T0 + 5
    assert engine.backoff_delay(10, 400, 3600) == 3600  # 10**400 overflows a float: cap


@pytest.mark.parametrize("outcome", ["timeout", "lost"])
def test_timeouts_and_lost_workers_count_as_failures(add, worker, outcome):
    add("j", max_retries=1, backoff_base=1)
    engine.finish(*engine.claim(worker, now=T0), outcome=outcome, error="why", now=T0)
    assert (state("j").state, state("j").run_at) == ("failed", T0 + 1)
    engine.finish(*engine.claim(worker, now=T0 + 1), outcome=outcome, error="why", now=T0 + 1)
    assert state("j").state == "dead"


def test_interrupted_run_goes_back_to_pending_without_using_a_retry(add, worker):
    add("j", max_retries=1)
    job, attempt = engine.claim(worker, now=T0)
    assert (
        engine.finish(job, attempt, outcome="interrupted", error="interrupted", now=T0 + 1)
        == "pending"
    )
    row = state("j")
    assert (row.state, row.attempts, row.run_at, row.max_retries) == ("pending", 0, T0 + 1, 1)
    job, attempt = engine.claim(worker, now=T0 + 1)
    assert attempt.number == 2 and job.attempts == 1
    assert outcomes("j") == [(1, "interrupted"), (2, None)]


def test_retry_of_a_failed_job_makes_it_due_now(add, worker):
    add("j", max_retries=2, backoff_base=100)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    assert engine.claim(worker, now=T0 + 50) is None
    assert engine.retry("j", now=T0 + 50).run_at == T0 + 50
    job, _ = engine.claim(worker, now=T0 + 50)
    assert (job.id, job.attempts) == ("j", 2)


def test_retry_refuses_jobs_that_are_not_failed_or_dead(add):
    add("p")
    with pytest.raises(QueueError, match="is pending"):
        engine.retry("p")
    with pytest.raises(NotFound):
        engine.retry("nope")


def test_dlq_retry_resets_attempts_and_applies_overrides(add, worker):
    add("d", max_retries=0, timeout=5)
    engine.finish(
        *engine.claim(worker, now=T0), outcome="failed", error="boom", exit_code=1, now=T0
    )
    assert state("d").state == "dead"
    [job] = engine.dlq_retry(["d"], timeout=30, max_retries=4, now=T0 + 10)
    assert (job.state, job.attempts, job.timeout, job.max_retries, job.run_at) == (
        "pending",
        0,
        30,
        4,
        T0 + 10,
    )
    assert job.last_error is None and job.exit_code is None and job.finished_at is None
    job, attempt = engine.claim(worker, now=T0 + 10)
    assert (job.attempts, attempt.number) == (1, 2)  # attempt history is kept


def test_dlq_retry_of_a_live_job_changes_nothing(add, worker):
    add("d", max_retries=0)
    add("p")
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    with pytest.raises(QueueError, match="not in the DLQ"):
        engine.dlq_retry(["d", "p"], now=T0 + 1)
    assert state("d").state == "dead"
    with pytest.raises(NotFound):
        engine.dlq_retry(["d", "nope"], now=T0 + 1)
    assert state("d").state == "dead"


def test_retry_of_a_dead_job_goes_through_the_dlq(add, worker):
    add("d", max_retries=0)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    job = engine.retry("d", now=T0 + 1)
    assert (job.state, job.attempts) == ("pending", 0)


def test_dlq_retry_all(add, worker):
    for name in ("a", "b"):
        add(name, max_retries=0)
        engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    add("c")
    engine.dlq_retry(all_dead=True, now=T0 + 1)
    assert engine.counts()["pending"] == 3 and engine.counts()["dead"] == 0


# --- scheduling and order ------------------------------------------------------------------------


def test_scheduled_jobs_are_not_claimed_before_they_are_due(add, worker):
    add("later", delay=60)
    add("at", run_at="2027-01-15T08:00:00Z")  # T0 is 2027-01-15T08:00:00Z
    add("sched", scheduled_at="2027-01-15T08:00:30Z")
    assert engine.claim(worker, now=T0 - 0.001) is None
    assert engine.claim(worker, now=T0)[0].id == "at"
    assert engine.claim(worker, now=T0 + 29.999) is None
    assert engine.claim(worker, now=T0 + 30)[0].id == "sched"
    assert engine.claim(worker, now=T0 + 59.999) is None
    assert engine.claim(worker, now=T0 + 60)[0].id == "later"
    assert engine.next_due() is None


def test_next_due_reports_the_earliest_waiting_job(add):
    add("a", delay=30)
    add("b", delay=10)
    assert engine.next_due() == T0 + 10


def test_priority_first_then_first_in_first_out(add, worker):
    add("low-1", now=T0)
    add("high-1", priority=5, now=T0 + 1)
    add("low-2", now=T0 + 2)
    add("high-2", priority=5, now=T0 + 3)
    add("neg", priority=-1, now=T0 + 4)
    add("low-3", now=T0 + 5)
    order = []
    while (claimed := engine.claim(worker, now=T0 + 10)) is not None:
        order.append(claimed[0].id)
    assert order == ["high-1", "high-2", "low-1", "low-2", "low-3", "neg"]


def test_a_bulk_enqueue_keeps_its_order(db, worker, tmp_path):
    specs = [spec.normalize({"id": f"j{i}", "command": "true"}, now=T0) for i in range(5)]
    engine.enqueue(specs, cwd=str(tmp_path), env={}, now=T0)
    assert [engine.claim(worker, now=T0)[0].id for _ in range(5)] == [f"j{i}" for i in range(5)]


def test_workers_only_claim_their_queues(add):
    add("a", queue="alpha")
    add("b", queue="beta")
    only_beta = engine.register_worker(["beta"], now=T0)
    assert engine.claim(only_beta, now=T0)[0].id == "b"
    assert engine.claim(only_beta, now=T0) is None


# --- enqueue is all or nothing -------------------------------------------------------------------


def test_duplicate_id_is_rejected_and_nothing_changes(add):
    add("dup", command="echo first")
    with pytest.raises(InvalidInput, match="'dup' already exists"):
        add("dup", command="echo second")
    assert [(j.id, j.command) for j in Job.select()] == [("dup", "echo first")]


def test_a_bulk_enqueue_with_one_clash_enqueues_nothing(add, tmp_path):
    add("dup")
    specs = [spec.normalize({"id": i, "command": "true"}) for i in ("new1", "dup", "new2")]
    with pytest.raises(InvalidInput, match="nothing enqueued"):
        engine.enqueue(specs, cwd=str(tmp_path), env={})
    specs = [spec.normalize({"id": i, "command": "true"}) for i in ("x", "y", "x")]
    with pytest.raises(InvalidInput, match="duplicate job id 'x'"):
        engine.enqueue(specs, cwd=str(tmp_path), env={})
    assert [j.id for j in Job.select()] == ["dup"]


def test_generated_ids_are_unique(db, tmp_path):
    jobs = engine.enqueue(
        [spec.normalize({"command": "true"}) for _ in range(50)], cwd=str(tmp_path), env={}
    )
    assert len({j.id for j in jobs}) == 50


def test_environment_is_recorded_per_job(db, tmp_path):
    job = engine.enqueue([spec.normalize({"command": "true"})], cwd=str(tmp_path), env={"A": "1"})[
        0
    ]
    assert engine.job_environment(job) == {"A": "1"}
    assert job.cwd == str(tmp_path)


# --- cancel, delete, clear -----------------------------------------------------------------------


def test_cancel_pending_and_failed_jobs_sends_them_to_the_dlq(add, worker):
    add("f", max_retries=3, backoff_base=10)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    assert state("f").state == "failed"
    add("p")
    for job_id in ("p", "f"):
        job = engine.cancel(job_id, now=T0 + 1)
        assert (job.state, job.last_error) == ("dead", "cancelled")
    assert engine.claim(worker, now=T0 + 100) is None
    with pytest.raises(QueueError, match="already dead"):
        engine.cancel("p")
    with pytest.raises(NotFound):
        engine.cancel("nope")


def test_cancel_many_and_retry_many_are_all_or_nothing(add, worker):
    add("f", max_retries=3, backoff_base=10)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    add("p")
    with pytest.raises(QueueError, match="'p' is pending"):
        engine.retry_many(["f", "p"], now=T0 + 1)
    assert state("f").run_at == T0 + 10
    engine.cancel("p", now=T0 + 1)
    with pytest.raises(QueueError, match="'p' is already dead"):
        engine.cancel_many(["f", "p"], now=T0 + 1)
    assert state("f").state == "failed"
    assert [j.state for j in engine.cancel_many(["f"], now=T0 + 2)] == ["dead"]
    assert [j.state for j in engine.retry_many(["f", "p"], now=T0 + 3)] == ["pending", "pending"]


def test_cancel_of_a_running_job_asks_its_worker(add, worker):
    add("r")
    job, attempt = engine.claim(worker, now=T0)
    assert engine.cancel_requested(job) is False
    assert engine.cancel("r", now=T0 + 1).state == "processing"
    assert engine.cancel_requested(job) is True
    assert engine.finish(job, attempt, outcome="cancelled", error="cancelled", now=T0 + 2) == "dead"
    assert (state("r").last_error, outcomes("r")) == ("cancelled", [(1, "cancelled")])


def test_delete_removes_jobs_attempts_and_logs(add, worker):
    add("a")
    job, attempt = engine.claim(worker, now=T0)
    log = engine.log_path(attempt)
    log.write_text("output\n")
    engine.finish(job, attempt, outcome="completed", exit_code=0, now=T0)
    add("b")
    assert engine.delete(["a", "b"]) == 2
    assert Job.select().count() == 0 and Attempt.select().count() == 0
    assert not log.exists()


def test_delete_is_all_or_nothing(add, worker):
    add("a")
    add("b")
    with pytest.raises(NotFound):
        engine.delete(["a", "nope"])
    engine.claim(worker, now=T0)  # "a" runs
    with pytest.raises(QueueError, match="running"):
        engine.delete(["b", "a"])
    assert {j.id for j in Job.select()} == {"a", "b"}


def test_clear_by_state_never_touches_running_jobs(add, worker):
    add("run")
    engine.claim(worker, now=T0)
    add("done")
    engine.finish(*engine.claim(worker, now=T0), outcome="completed", now=T0)
    add("dead", max_retries=0)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    add("wait")
    assert engine.clear(["dead"]) == 1
    assert {j.id for j in Job.select()} == {"run", "done", "wait"}
    assert engine.clear() == 2
    assert [j.id for j in Job.select()] == ["run"]


# --- recovery ------------------------------------------------------------------------------------


def test_jobs_of_a_dead_worker_process_are_recovered(add, db):
    gone = engine.register_worker(pid=dead_pid(), now=T0)
    add("j", max_retries=1, backoff_base=1)
    started(engine.claim(gone, now=T0))
    assert engine.recover_lost(now=T0 + 1) == ["j"]
    row = state("j")
    assert (row.state, row.attempts, row.run_at) == ("failed", 1, T0 + 2)
    [a] = engine.attempts_of(row)
    assert a.outcome == "lost" and a.error.startswith("worker lost") and "process gone" in a.error
    assert not Worker.select().where(Worker.id == gone.id).exists()


def test_a_silent_worker_on_another_host_is_presumed_lost_after_the_lease(add, db):
    quiet = engine.register_worker(now=T0)
    Worker.update(host="elsewhere").where(Worker.id == quiet.id).execute()
    add("j")
    started(engine.claim(Worker.get_by_id(quiet.id), now=T0))
    assert engine.recover_lost(now=T0 + 29) == []
    assert engine.recover_lost(now=T0 + 31) == ["j"]
    assert "no heartbeat for 31s" in engine.attempts_of(state("j"))[0].error


def test_a_silent_worker_on_this_host_is_lost_only_if_its_process_is_not_running(add, db):
    """A late heartbeat from a process that runs means a held lock or a starved CPU."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        quiet = engine.register_worker(pid=proc.pid, now=T0)
        add("j")
        started(engine.claim(quiet, now=T0))
        assert engine.recover_lost(now=T0 + 1000) == []
        proc.send_signal(signal.SIGSTOP)  # frozen: cannot be working
        wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED)
        assert engine.recover_lost(now=T0 + 29) == []  # within the lease all the same
        assert engine.recover_lost(now=T0 + 31) == ["j"]
        assert "no heartbeat for 31s" in engine.attempts_of(state("j"))[0].error
    finally:
        proc.kill()
        proc.wait()


def test_recovery_kills_the_lost_jobs_process_tree(add, db):
    from queuectl_tui import procs

    gone = engine.register_worker(pid=dead_pid(), now=T0)
    add("j")
    job, attempt = engine.claim(gone, now=T0)
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    started = procs.start_time(orphan.pid)
    try:
        engine.record_process(attempt, orphan.pid, started)
        assert procs.same_process(orphan.pid, started) is not None
        assert engine.recover_lost(now=T0 + 1) == ["j"]
        assert procs.same_process(orphan.pid, started) is None
    finally:
        orphan.kill()
        orphan.wait()


def test_a_worker_presumed_lost_cannot_overwrite_the_recovery(add, db):
    slow = engine.register_worker(pid=dead_pid(), now=T0)
    add("j", max_retries=0)
    job, attempt = started(engine.claim(slow, now=T0))
    engine.recover_lost(now=T0 + 1)
    assert state("j").state == "dead"
    assert engine.finish(job, attempt, outcome="completed", exit_code=0, now=T0 + 2) is None
    row = state("j")
    assert (row.state, row.exit_code) == ("dead", None)
    assert outcomes("j") == [(1, "lost")]


def test_a_cancelled_job_of_a_lost_worker_stays_cancelled(add, db):
    gone = engine.register_worker(pid=dead_pid(), now=T0)
    add("j", max_retries=3, backoff_base=1)
    engine.claim(gone, now=T0)
    assert engine.cancel("j", now=T0 + 1).state == "processing"  # nobody left to act on it
    assert engine.recover_lost(now=T0 + 2) == ["j"]
    row = state("j")
    assert (row.state, row.last_error) == ("dead", "cancelled")
    assert outcomes("j") == [(1, "cancelled")]
    assert engine.claim(engine.register_worker(now=T0 + 3), now=T0 + 100) is None


def test_a_job_whose_command_never_started_goes_back_without_using_a_retry(add, db):
    """Its worker died between the claim and recording the job's process: nothing ran."""
    gone = engine.register_worker(pid=dead_pid(), now=T0)
    add("j", max_retries=0)
    engine.claim(gone, now=T0)
    assert engine.recover_lost(now=T0 + 1) == ["j"]
    row = state("j")
    assert (row.state, row.attempts, row.run_at) == ("pending", 0, T0 + 1)
    assert outcomes("j") == [(1, "interrupted")]
    assert engine.attempts_of(row)[0].error.startswith("not started")


def test_a_worker_presumed_lost_claims_nothing_until_it_registers_again(add, worker):
    """Its row was removed by recovery elsewhere while it could not be reached. A job claimed
    under that id would look abandoned to every recovery and be run twice."""
    add("j")
    Worker.delete().where(Worker.id == worker.id).execute()
    with pytest.raises(engine.Unregistered):
        engine.settle(worker, claim=1, max_backoff=60, now=T0 + 1)
    with pytest.raises(engine.Unregistered):
        engine.claim(worker, now=T0 + 1)
    assert (state("j").state, state("j").attempts, Attempt.select().count()) == ("pending", 0, 0)
    again = engine.register_worker(now=T0 + 2)
    assert engine.claim(again, now=T0 + 2)[0].id == "j"


def test_a_stale_claim_can_neither_record_a_process_nor_finish(add, db):
    """A claim taken back and claimed again: the old claim's writes are fenced out, even when
    both claims name the same worker."""
    worker = engine.register_worker(pid=dead_pid(), now=T0)
    add("j", max_retries=3, backoff_base=1)
    old = started(engine.claim(worker, now=T0))
    engine.recover_lost(now=T0 + 1)
    again = engine.register_worker(now=T0 + 1)
    assert again.id != worker.id  # ids are never reused
    Worker.update(id=worker.id).where(Worker.id == again.id).execute()  # the worst case anyway
    job, attempt = engine.claim(Worker.get_by_id(worker.id), now=T0 + 5)
    with pytest.raises(engine.Fenced):
        engine.record_process(old[1], 4242, 1.0)
    assert engine.finish(*old, outcome="failed", exit_code=1, now=T0 + 6) is None
    row = state("j")
    assert (row.state, row.attempts) == ("processing", 2)
    assert outcomes("j") == [(1, "lost"), (2, None)]
    assert engine.finish(job, attempt, outcome="completed", exit_code=0, now=T0 + 7) == "completed"


def test_a_job_retried_from_the_dlq_shows_its_running_attempt(add, worker):
    add("j", max_retries=0)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", error="exit code 1", now=T0)
    engine.dlq_retry(["j"], now=T0 + 1)
    job, attempt = engine.claim(worker, now=T0 + 2)
    assert (job.attempts, attempt.number) == (1, 2)
    running = engine.running_attempts()
    assert running["j"][1].seq == attempt.seq
    from queuectl_tui.run.monitor import WorkerMonitor

    [shown] = WorkerMonitor().sample(now=T0 + 3)
    assert shown.job_started_at == T0 + 2


def test_a_live_workers_job_is_left_alone(add, worker):
    add("j")
    engine.claim(worker, now=T0)
    assert engine.recover_lost(now=T0 + 1) == []
    assert state("j").state == "processing"


# --- explain, stats, JSON ------------------------------------------------------------------------


def test_explain_says_why_a_job_waits(add, worker):
    add("sched", delay=3600)
    assert explain(state("sched"), now=T0) == f"scheduled for {spec.iso(T0 + 3600)}"

    add("flaky", max_retries=2, backoff_base=10, priority=9)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", error="exit code 1", now=T0)
    assert explain(state("flaky"), now=T0 + 1) == (
        f"backing off until {spec.iso(T0 + 10)} after attempt 1 failed: exit code 1; "
        "retry budget 0 of 2 used"
    )

    add("due")
    assert "an idle worker will claim it next" in explain(state("due"), now=T0 + 1)
    engine.claim(worker, now=T0 + 1)
    assert "waiting for a free worker (1 of 1 busy)" in explain(state("flaky"), now=T0 + 11)
    # A worker elsewhere whose heartbeat is older than the lease: nobody is alive to run it.
    Worker.update(host="elsewhere").execute()
    text = explain(state("flaky"), now=T0 + 100)
    assert "no worker alive" in text


def test_explain_of_finished_and_running_jobs(add, worker):
    add("r")
    engine.claim(worker, now=T0)
    assert explain(state("r"), now=T0 + 1).startswith(f"running on worker {worker.id}")
    Worker.update(host="elsewhere").execute()
    assert "that worker is lost" in explain(state("r"), now=T0 + 100)
    engine.finish(state("r"), engine.attempts_of(state("r"))[0], outcome="completed", now=T0 + 2)
    assert explain(state("r")) == f"completed at {spec.iso(T0 + 2)} after 1 attempt"


def test_attempt_numbers_continue_after_dlq_retry_and_the_budget_starts_over(add, worker):
    add("f", max_retries=1, backoff_base=10, command="exit 1")
    for now in (T0, T0 + 10):
        engine.finish(
            *engine.claim(worker, now=now), outcome="failed", error="exit code 1", now=now
        )
    assert explain(state("f")) == "in the DLQ after 2 attempts: exit code 1"
    assert present.retries(state("f")) == "1/1"
    engine.dlq_retry(["f"], now=T0 + 20)
    assert present.budget(state("f")) == "0 of 1 used"
    engine.finish(
        *engine.claim(worker, now=T0 + 20), outcome="failed", error="exit code 1", now=T0 + 20
    )
    assert explain(state("f"), now=T0 + 21) == (
        f"backing off until {spec.iso(T0 + 30)} after attempt 3 failed: exit code 1; "
        "retry budget 0 of 1 used"
    )
    engine.finish(
        *engine.claim(worker, now=T0 + 30), outcome="failed", error="exit code 1", now=T0 + 30
    )
    assert outcomes("f") == [(1, "failed"), (2, "failed"), (3, "failed"), (4, "failed")]
    assert explain(state("f")) == "in the DLQ after 4 attempts: exit code 1"


def test_stats_counts_states_workers_and_oldest_pending(add, worker):
    add("a", now=T0)
    add("b", now=T0 + 5)
    engine.claim(worker, now=T0 + 10)
    data = engine.stats(now=T0 + 10)
    assert data["jobs"]["pending"] == 1 and data["jobs"]["processing"] == 1 and data["total"] == 2
    assert data["workers"] == {"alive": 1, "busy": 1}
    assert data["oldest_pending_age"] == 5
    add("later", now=T0, delay=60)  # scheduled: not waiting for a worker yet
    assert engine.stats(now=T0 + 10)["oldest_pending_age"] == 5
    engine.claim(worker, now=T0 + 10)
    assert engine.stats(now=T0 + 10)["oldest_pending_age"] is None
    assert engine.stats(now=T0 + 70)["oldest_pending_age"] == 10


def test_job_dict_carries_the_documented_fields_in_utc(add):
    add("j", priority=3)
    data = present.job_dict(state("j"))
    assert set(data) >= JOB_KEYS
    check_job_json(data)
    assert data["created_at"] == spec.iso(T0) == "2027-01-15T08:00:00.000Z"


# --- what holds a due job back (the When column) -------------------------------------------------


def test_holds_say_what_each_waiting_job_of_a_page_waits_for_in_a_few_reads(add, worker, db):
    add("build", queue="ci")
    add("test", queue="ci")
    add("deploy", queue="ci", after=["build", "test"])
    add("gpu1", queue="gpu")
    add("gpu2", queue="gpu")
    add("held", queue="frozen")
    add("free")
    engine.set_limit("gpu", 1)
    engine.pause(["frozen"])
    engine.claim(engine.register_worker(["gpu"], now=T0), now=T0 + 1)  # gpu1 runs
    page, _, _ = engine.jobs_window(limit=100)
    statements = []
    db.execute_sql = _counting(db.execute_sql, statements)
    try:
        holds = engine.holds(page)
    finally:
        del db.execute_sql
    assert 1 <= len(statements) <= 4  # deps, paused_all, queues, running counts: not per row
    said = {job.id: present.when(job, T0 + 2, holds.get(job.seq)) for job in page}
    assert said == {
        "build": "due",
        "test": "due",
        "deploy": "after build +1",
        "gpu1": "running 1s",
        "gpu2": "limit 1/1",
        "held": "paused",
        "free": "due",
    }
    by_id = {job.id: job for job in page}
    assert holds[by_id["deploy"].seq].after == (("build", "pending"), ("test", "pending"))
    # explain says the same, in words
    assert "dependencies not completed yet: build (pending), test (pending)" in explain(
        by_id["deploy"], now=T0 + 2
    )
    assert "at its limit (1 of 1 running)" in explain(by_id["gpu2"], now=T0 + 2)
    # a job not yet due says when, whatever holds it
    assert present.when(by_id["held"], T0 - 60, holds[by_id["held"].seq]) == "in 1m00s"


def _counting(execute, statements):
    def run(sql, *args, **kwargs):
        statements.append(sql)
        return execute(sql, *args, **kwargs)

    return run


# --- log file names -------------------------------------------------------------------------------


def test_log_files_are_named_by_their_job_not_like_another_jobs_id(add, worker, tmp_path):
    """``job1-1.log`` once belonged to internal number 1, whatever its id: a job named job1
    had someone else's log name. The name now starts with the job's own id (made safe)."""
    add("first")  # internal number 1
    add("job1")  # internal number 2
    add("../a%b/c")
    names = {}
    for _ in range(3):
        job, attempt = engine.claim(worker, now=T0 + 1)
        names[job.id] = attempt.log_file
        engine.finish(job, attempt, outcome="completed", exit_code=0, now=T0 + 2)
    assert names == {
        "first": "first@1-1.log",
        "job1": "job1@2-1.log",
        "../a%b/c": "%2E.%2Fa%25b%2Fc@3-1.log",
    }
    assert engine.log_path(Attempt.get(Attempt.log_file == names["../a%b/c"])).parent == (
        engine.logs_dir()
    )


def test_an_old_databases_log_names_are_still_read(add, worker, cli):
    """Attempts keep the name their row records: those of before stay readable."""
    add("j")
    job, attempt = engine.claim(worker, now=T0 + 1)
    engine.finish(job, attempt, outcome="completed", exit_code=0, now=T0 + 2)
    Attempt.update(log_file="job1-1.log").where(Attempt.seq == attempt.seq).execute()
    (engine.logs_dir() / "job1-1.log").write_text("from an older release\n")
    result = cli("logs", "j")
    assert (result.code, result.out) == (0, "from an older release\n")
