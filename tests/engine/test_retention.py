"""Retention: old ended jobs go (with attempts, dependency rows and log files) in short steps,
one worker at a time, leaving the stats of past windows and the current counts exact."""

from __future__ import annotations

import json
import time

import pytest

from helpers import T0, ok, wait_for
from queuectl_tui import engine, metrics, retention, settings
from queuectl_tui.store.models import Attempt, Dependency, Job, JobCount

DAY = 86400.0
CFG = settings.DEFAULTS._replace(keep_completed=7 * DAY, keep_dead=30 * DAY)


def run(worker, outcome: str, now: float, size: int = 0) -> Job:
    """Claim the next job at ``now`` and end it with ``outcome``; its log file is written
    (``size`` bytes more than its last line), the last line kept in the database."""
    job, attempt = engine.claim(worker, now=now)
    path = engine.log_path(attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x" * size + f"output of {job.id}\n")
    engine.finish(
        job,
        attempt,
        outcome=outcome,
        exit_code=0 if outcome == "completed" else 1,
        tail=f"output of {job.id}\n",
        now=now + 1,
    )
    return job


def figures(now: float) -> dict:
    overall = metrics.execution_stats(T0 - 3600, now=now)["overall"]
    return {key: overall[key] for key in ("attempts", "completed", "failed_attempts", "dead")}


def exact_counts() -> None:
    """job_count says what the rows say."""
    kept = {
        (q, s): n
        for q, s, n in JobCount.select(JobCount.queue, JobCount.state, JobCount.n).tuples()
        if n
    }
    rows: dict = {}
    for job in Job.select():
        rows[(job.queue, job.state)] = rows.get((job.queue, job.state), 0) + 1
    assert kept == rows


@pytest.mark.both_backends
def test_pruning_deletes_old_jobs_with_attempts_and_logs_and_keeps_past_stats(add, worker):
    for name in ("old1", "old2", "old3"):
        add(name, max_retries=0)
    add("dead1", max_retries=0)
    add("young", max_retries=0, now=T0 + 6 * DAY)
    old = [run(worker, "completed", T0) for _ in range(3)]
    run(worker, "failed", T0 + 10)
    run(worker, "completed", T0 + 6 * DAY)
    files = [engine.log_path(a) for j in old for a in engine.attempts_of(j)]
    assert all(f.exists() for f in files)
    at = T0 + 8 * DAY
    before = figures(at)
    assert before == {"attempts": 5, "completed": 4, "failed_attempts": 1, "dead": 1}

    assert retention.prune_step(CFG, holder="1", now=at) == 3

    left = sorted(j.id for j in Job.select())
    assert left == ["dead1", "young"]  # dead jobs are kept 30 days, the young one 7
    assert not Attempt.select().where(Attempt.job.in_([j.seq for j in old])).exists()
    assert not any(f.exists() for f in files)
    assert figures(at) == before  # the past windows keep what was pruned
    exact_counts()
    assert retention.prune_step(CFG, holder="1", now=at) == 0  # nothing more due

    assert retention.prune_step(CFG, holder="1", now=T0 + 14 * DAY) == 1  # the young one
    assert retention.prune_step(CFG, holder="1", now=T0 + 29 * DAY) == 0
    assert retention.prune_step(CFG, holder="1", now=T0 + 31 * DAY) == 1  # the DLQ's turn
    assert Job.select().count() == 0
    assert figures(at) == before
    exact_counts()


@pytest.mark.both_backends
def test_an_environment_goes_with_the_last_job_pruned_that_used_it(db, worker, tmp_path):
    from queuectl_tui import spec
    from queuectl_tui.store.models import Environment

    def enqueue(job_id: str, secret: str, now: float) -> None:
        engine.enqueue(
            [spec.normalize({"id": job_id, "command": "true"}, now=now)],
            cwd=str(tmp_path),
            env={"TOKEN": secret},
            now=now,
        )

    enqueue("a", "one", T0)
    enqueue("b", "two", T0)
    enqueue("c", "two", T0 + 20 * DAY)  # same environment as b, not due to go
    for _ in range(2):
        run(worker, "completed", T0)
    assert Environment.select().count() == 2
    assert retention.prune_step(CFG, holder="1", now=T0 + 8 * DAY) == 2
    assert [j.id for j in Job.select()] == ["c"]
    assert [json.loads(e.data) for e in Environment.select()] == [{"TOKEN": "two"}]


@pytest.mark.both_backends
def test_a_delete_by_hand_still_takes_jobs_out_of_past_stats(add, worker):
    add("a", max_retries=0)
    add("b", max_retries=0)
    run(worker, "completed", T0)
    run(worker, "failed", T0)
    engine.delete(["a", "b"])
    assert figures(T0 + DAY) == {"attempts": 0, "completed": 0, "failed_attempts": 0, "dead": 0}


@pytest.mark.both_backends
def test_none_keeps_forever(add, worker):
    add("a", max_retries=0)
    run(worker, "completed", T0)
    cfg = CFG._replace(keep_completed=None, keep_dead=None)
    assert retention.prune_step(cfg, holder="1", now=T0 + 3650 * DAY) == 0
    assert Job.select().count() == 1


@pytest.mark.both_backends
def test_a_job_others_wait_on_is_kept_until_they_end(add, worker):
    add("first", max_retries=0)
    add("then", max_retries=0, after=["first"], now=T0 + 9 * DAY)
    run(worker, "completed", T0)
    at = T0 + 8 * DAY
    assert retention.prune_step(CFG, holder="1", now=at) == 0  # "then" has not run yet
    assert Job.get_or_none(Job.id == "first") is not None
    run(worker, "completed", T0 + 9 * DAY)
    assert retention.prune_step(CFG, holder="1", now=T0 + 17 * DAY) == 2
    assert Job.select().count() == 0 and Dependency.select().count() == 0


@pytest.mark.both_backends
def test_one_worker_prunes_at_a_time(add, worker):
    for name in ("a", "b"):
        add(name, max_retries=0)
    for _ in range(2):
        run(worker, "completed", T0)
    at = T0 + 8 * DAY
    assert retention.prune_step(CFG, holder="1", now=at, rows=1) == 1
    assert retention.prune_step(CFG, holder="2", now=at) is None  # the lease is worker 1's
    assert Job.select().count() == 1
    later = at + retention.LEASE_SECONDS + 1  # worker 1 went quiet: its lease lapsed
    assert retention.prune_step(CFG, holder="2", now=later) == 1


@pytest.mark.both_backends
def test_a_worker_that_stops_gives_its_lease_back(add, worker):
    for name in ("a", "b"):
        add(name, max_retries=0)
    for _ in range(2):
        run(worker, "completed", T0)
    at = T0 + 8 * DAY
    assert retention.prune_step(CFG, holder="1", now=at, rows=1) == 1
    retention.release("2", now=at)  # not its lease: nothing changes
    assert retention.prune_step(CFG, holder="2", now=at) is None
    retention.release("1", now=at)
    assert retention.prune_step(CFG, holder="2", now=at) == 1


@pytest.mark.both_backends
def test_a_look_with_nothing_due_writes_nothing(add, worker, monkeypatch):
    add("a", max_retries=0)
    run(worker, "completed", T0)

    def no_write():
        raise AssertionError("a look with nothing due opened a write transaction")

    monkeypatch.setattr(retention, "write_transaction", no_write)
    assert retention.prune_step(CFG, holder="1", now=T0 + DAY) == 0


def test_bad_retention_values_are_refused_in_one_line(cli):
    for key, value in (("keep_completed", "soon"), ("keep_dead", "-1d"), ("max_logs_total", "10")):
        result = cli("config", "set", key, value)
        assert result.code == 2, result
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert ok(cli("config", "set", "keep-completed", "2d")).out.strip() == "keep_completed = 172800"
    assert ok(cli("config", "set", "keep_dead", "none")).out.strip() == "keep_dead = none"
    listed = ok(cli("config", "list", "--json")).json()
    assert listed["keep_completed"] == 172800 and listed["keep_dead"] is None


def test_clear_older_than_deletes_only_old_jobs_of_the_states_named(cli, db, add, worker):
    now = time.time()
    for name in ("old", "old-dead", "new"):
        add(name, max_retries=0, now=now - 3 * DAY)
    run(worker, "completed", now - 3 * DAY)
    run(worker, "failed", now - 3 * DAY)
    run(worker, "completed", now)
    refused = cli("clear", "--older-than", "2d")  # stdin is not a terminal: asks for --yes
    assert refused.code == 2 and "--yes" in refused.err
    assert ok(
        cli("clear", "--older-than", "2d", "--state", "completed", "--yes", "--json")
    ).json() == {"deleted": 1}
    assert ok(cli("clear", "--older-than", "2d", "--yes")).out.strip() == "deleted 1 job(s)"
    assert [j.id for j in Job.select()] == ["new"]
    bad = cli("clear", "--older-than", "soon", "--yes")
    assert bad.code == 2 and "duration" in bad.err


def test_workers_prune_in_steps_while_they_claim(cli, db, add, worker, home):
    """Old completed jobs go in many short steps while two workers run new ones: the database
    ends with the new jobs only, counts exact, the old log files gone, past stats unchanged."""
    old_at = time.time() - 10 * DAY
    n = retention.STEP_ROWS * 2 + 37
    for i in range(n):
        add(f"old{i}", max_retries=0, now=old_at)
    for _ in range(n):
        run(worker, "completed", old_at)
    files = list(engine.logs_dir().glob("old*.log"))
    assert len(files) == n
    engine.unregister_worker(worker.id)
    window = metrics.execution_stats(old_at - 3600, now=old_at + 3600)["overall"]
    for i in range(40):
        add(f"new{i}", "true", now=time.time())
    ok(cli("config", "set", "keep_completed", "1d"))
    ok(cli("worker", "start", "--count", "2"))
    try:
        wait_for(
            lambda: (
                Job.select().where(Job.id.startswith("old")).count() == 0
                and Job.select().where(Job.state == "completed").count() == 40
            ),
            timeout=60,
            message="the old jobs pruned and the new ones done",
        )
    finally:
        ok(cli("worker", "stop", "--wait", "20"))
    assert not any(f.exists() for f in files)
    exact_counts()
    after = metrics.execution_stats(old_at - 3600, now=old_at + 3600)["overall"]
    assert (after["attempts"], after["completed"]) == (window["attempts"], window["completed"])


@pytest.mark.both_backends
def test_past_the_logs_cap_the_oldest_logs_go_first_and_logs_says_so(cli, add, worker):
    for name in "abcd":
        add(name)
    jobs = [run(worker, "completed", T0 + i, size=600 * 1024) for i in range(4)]
    files = [engine.log_path(engine.attempts_of(j)[0]) for j in jobs]
    assert retention.cap_logs(2**22) == 0  # under the cap: nothing goes
    assert retention.cap_logs(2**20) == 3  # down to 90 % of 1 MiB: the three oldest
    assert [f.exists() for f in files] == [False, False, False, True]
    assert [a.log_dropped is not None for a in Attempt.select().order_by(Attempt.seq)] == [
        True,
        True,
        True,
        False,
    ]
    shown = cli("logs", "a")
    assert shown.code == 0 and shown.out == "output of a\n"
    assert "dropped" in shown.err and "max_logs_total" in shown.err
    assert ok(cli("logs", "d")).out.endswith("output of d\n")
    assert retention.cap_logs(2**20) == 0


# --- hooks -----------------------------------------------------------------------------------


def hook_record(path) -> str:
    """A hook command appending one line of its environment to ``path``."""
    fields = " ".join(
        f'"${name}"'
        for name in (
            "QUEUECTL_JOB_ID",
            "QUEUECTL_JOB_STATE",
            "QUEUECTL_JOB_EXIT_CODE",
            "QUEUECTL_JOB_ERROR",
            "QUEUECTL_JOB_QUEUE",
            "QUEUECTL_JOB_ATTEMPT",
        )
    )
    return f"printf '%s|%s|%s|%s|%s|%s\\n' {fields} >> {path}"


def test_hooks_run_once_per_change_with_the_documented_environment(cli, tmp_path):
    out = tmp_path / "hooks.txt"
    ok(cli("config", "set", "on_completed", hook_record(out)))
    ok(cli("config", "set", "on_dead", hook_record(out)))
    ok(cli("enqueue", "--id", "ok", "true"))
    ok(cli("enqueue", "--id", "bad", "--queue", "q2", "--max-retries", "1", "exit 3"))
    ok(cli("worker", "start", "--foreground", "--burst"))  # exits once its hooks have ended
    lines = sorted(out.read_text().splitlines())
    assert lines == ["bad|dead|3|exit code 3|q2|2", "ok|completed|0||default|1"]


def test_a_hook_never_holds_up_the_worker_and_its_failure_shows_in_status(cli, tmp_path, home):
    gate = tmp_path / "gate"
    ok(
        cli(
            "config",
            "set",
            "on_completed",
            f"while [ ! -e {gate} ]; do sleep 0.02; done; echo boom >&2; exit 7",
        )
    )
    for name in ("a", "b", "c"):
        ok(cli("enqueue", "--id", name, "true"))
    ok(cli("worker", "start"))
    try:
        # Every job ends while the hooks of the first ones still wait for the gate.
        wait_for(
            lambda: ok(cli("status", "--json")).json()["jobs"]["completed"] == 3,
            message="the three jobs done behind their waiting hooks",
        )
        assert ok(cli("status", "--json")).json()["hook_failure"] is None
        gate.touch()
        failure = wait_for(
            lambda: ok(cli("status", "--json")).json()["hook_failure"],
            message="a hook failure recorded",
        )
        assert failure["hook"] == "on_completed" and failure["why"] == "exit status 7: boom"
        shown = ok(cli("status")).out
        assert "hook failed: on_completed for " in shown and "exit status 7: boom" in shown
        log = home / "logs" / "workers.log"
        wait_for(
            lambda: log.read_text().count("hook on_completed for ") == 3,
            message="each failure logged in workers.log",
        )
    finally:
        ok(cli("worker", "stop", "--wait", "20"))


def test_a_hook_past_its_time_limit_is_killed_with_its_group(monkeypatch, tmp_path):
    from queuectl_tui import hooks

    monkeypatch.setattr(hooks, "TIME_LIMIT", 0.2)
    marker = tmp_path / "child-alive"
    failures = []
    runner = hooks.Hooks(lambda name, end, why: failures.append((name, end.job_id, why)))
    end = hooks.JobEnd("j", "dead", 1, "exit code 1", "default", 1)
    runner.fire("on_dead", f"(sleep 30; touch {marker}) & sleep 30", end)
    pid = runner.running[0].proc.pid
    wait_for(lambda: (runner.reap(), failures)[1], message="the hook killed")
    assert failures == [("on_dead", "j", "killed after its time limit of 0.2s")]
    assert not runner.running
    wait_for(
        lambda: not group_alive(pid),
        timeout=5,
        message="its whole group gone, the background sleep too",
    )


def group_alive(pgid: int) -> list:
    import os

    import psutil

    alive = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


def test_both_backends_delete_triggers_watch_the_same_pruning_marker():
    """The PostgreSQL functions (pgsql.py) spell the marker's check out for themselves: it must
    name the row retention inserts (db.PRUNING), or pruning there would take jobs out of past
    stats."""
    from queuectl_tui import store as dbmod
    from queuectl_tui.store import pgsql
    from queuectl_tui.store.sql import load

    marker = f"EXISTS (SELECT 1 FROM meta WHERE key = '{dbmod.PRUNING}')"
    assert marker == pgsql.PRUNING_NOW
    sqlite = load("sqlite", "schema")  # SQLite's delete triggers (schema.sql)
    assert pgsql.PRUNING_NOW in sqlite["attempt_minute_delete"]
    assert pgsql.PRUNING_NOW in sqlite["job_failed_delete"]
    assert pgsql.PRUNING_NOW in pgsql.JOBS_DELETE and pgsql.PRUNING_NOW in pgsql.MINUTE_DELETE
