"""The worker loop, in-process."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from helpers import all_gone, marked_command, wait_for
from queuectl_tui import engine, spec
from queuectl_tui.run.launch.exec import ExecLauncher
from queuectl_tui.run.launch.host import JobHost
from queuectl_tui.run.loop import WorkerLoop
from queuectl_tui.store.models import Job, Worker, database

#: A job with grandchildren that writes "started" once they exist.
TREE = "sh -c 'sleep 60 & sleep 60 & touch started; wait'"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


# --- the worker loop (one launched job: tests/test_jobhost.py, through both launchers) ---


@pytest.fixture(params=["host", "exec"])
def launcher(request):
    """Each ``launch.Launcher`` a worker may run its jobs with: its job host, or ``sh -c`` per
    job (where job control cannot be had)."""
    return JobHost() if request.param == "host" else ExecLauncher()


def enqueue(tmp_path: Path, *specs: dict, env: dict | None = None) -> list[Job]:
    return engine.enqueue(
        [spec.normalize(s) for s in specs], cwd=str(tmp_path), env=ENV if env is None else env
    )


def test_burst_worker_runs_due_jobs_in_order_and_leaves(db, tmp_path, launcher):
    enqueue(
        tmp_path,
        {"id": "a", "command": "echo a >> order"},
        {"id": "b", "command": "echo b >> order", "priority": 1},
        {"id": "c", "command": "exit 4", "max_retries": 0},
        {"id": "later", "command": "echo later >> order", "delay": 3600},
    )
    lines = []
    assert WorkerLoop(burst=True, echo=lines.append, launcher=launcher).run() == 0
    assert (tmp_path / "order").read_text() == "b\na\n"
    states = {j.id: (j.state, j.attempts) for j in Job.select()}
    assert states == {
        "a": ("completed", 1),
        "b": ("completed", 1),
        "c": ("dead", 1),
        "later": ("pending", 0),
    }
    assert Worker.select().count() == 0
    assert any("finish c" in line and "exit 4" in line and "-> dead" in line for line in lines)


def test_jobs_run_in_the_enqueuers_directory_and_environment(db, tmp_path, monkeypatch):
    monkeypatch.setenv("FOO", "from-the-worker")
    enqueue(
        tmp_path,
        {"command": 'echo "$FOO" > where; pwd >> where'},
        env={**ENV, "FOO": "from-enqueue"},
    )
    WorkerLoop(burst=True).run()
    assert (tmp_path / "where").read_text() == f"from-enqueue\n{tmp_path}\n"


def test_burst_worker_waits_out_a_short_backoff(db, tmp_path):
    enqueue(
        tmp_path,
        {
            "id": "flaky",
            "command": "n=$(($(cat n 2>/dev/null || echo 0)+1)); echo $n > n; [ $n -ge 2 ]",
            "max_retries": 1,
            "backoff_base": 1,
        },
    )
    WorkerLoop(burst=True).run()
    job = Job.get(Job.id == "flaky")
    assert (job.state, job.attempts) == ("completed", 2)
    first, second = engine.attempts_of(job)
    assert (first.outcome, second.outcome) == ("failed", "completed")
    assert second.started_at >= first.finished_at + 1.0  # the backoff: 1 ** 1 s


def _in_thread(action, gate: Path):
    """Run ``action`` once ``gate`` exists (the job writes it when it has started)."""

    def body():
        try:
            wait_for(gate.exists, timeout=30, message=str(gate))
            action()
        finally:
            database.close()  # this thread's own connection, if it opened one

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_graceful_stop_lets_the_running_job_finish(db, tmp_path, launcher):
    enqueue(
        tmp_path,
        {
            "id": "j",
            "command": "touch started; while [ ! -e go ]; do sleep 0.02; done; echo done > out",
        },
        {"id": "next", "command": "true"},
    )
    worker = WorkerLoop(launcher=launcher)

    def stop_then_release():
        worker._on_stop(None, None)
        (tmp_path / "go").touch()

    thread = _in_thread(stop_then_release, tmp_path / "started")
    assert worker.run() == 0
    thread.join()
    assert (tmp_path / "out").read_text() == "done\n"
    assert Job.get(Job.id == "j").state == "completed"
    assert Job.get(Job.id == "next").state == "pending"  # a stopping worker claims nothing more
    assert Worker.select().count() == 0


def test_forced_stop_interrupts_the_job_and_keeps_its_retry_budget(db, tmp_path, mark, launcher):
    enqueue(tmp_path, {"id": "j", "max_retries": 2, "command": marked_command(mark, TREE)})
    worker = WorkerLoop(launcher=launcher)
    thread = _in_thread(lambda: worker._on_force(None, None), tmp_path / "started")
    assert worker.run() == 0
    thread.join()
    all_gone(mark)
    job = Job.get(Job.id == "j")
    assert (job.state, job.attempts, job.max_retries) == ("pending", 0, 2)
    [attempt] = engine.attempts_of(job)
    assert attempt.outcome == "interrupted"


def test_a_cancel_from_another_connection_kills_the_running_job(db, tmp_path, mark, launcher):
    enqueue(tmp_path, {"id": "j", "command": marked_command(mark, TREE)})
    worker = WorkerLoop(burst=True, launcher=launcher)
    thread = _in_thread(lambda: engine.cancel("j"), tmp_path / "started")
    assert worker.run() == 0
    thread.join()
    all_gone(mark)
    job = Job.get(Job.id == "j")
    assert (job.state, job.last_error) == ("dead", "cancelled")
    assert engine.attempts_of(job)[0].outcome == "cancelled"


def test_transient_database_errors_neither_kill_the_worker_nor_lose_the_job(
    db, tmp_path, monkeypatch
):
    """A lock held past the busy timeout (here: the first claim and the first two finishes
    fail) makes the worker wait and retry; every job still completes, once."""
    from peewee import OperationalError

    out = tmp_path / "runs"
    engine.enqueue(
        [spec.normalize({"id": f"j{n}", "command": f"echo j{n} >> {out}"}) for n in range(3)]
    )
    failures = {"claim": 1, "finish": 2}
    real_settle = engine.settle

    def flaky(worker, ended=(), **kwargs):
        name = "finish" if ended else "claim"
        if failures[name]:
            failures[name] -= 1
            raise OperationalError("database is locked")
        return real_settle(worker, ended, **kwargs)

    monkeypatch.setattr(engine, "settle", flaky)
    assert WorkerLoop(burst=True).run() == 0
    assert failures == {"claim": 0, "finish": 0}
    assert sorted(out.read_text().split()) == ["j0", "j1", "j2"]
    assert {j.id: j.state for j in Job.select()} == {f"j{n}": "completed" for n in range(3)}
    assert Worker.select().count() == 0
