"""One attempt (runner) and the worker loop, in-process."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from helpers import all_gone, marked, marked_command, wait_for
from queuectl_tui import engine, runner, spec
from queuectl_tui.models import Job, Worker, database
from queuectl_tui.worker import WorkerLoop

#: A job with grandchildren that writes "started" once they exist.
TREE = "sh -c 'sleep 60 & sleep 60 & touch started; wait'"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def run(tmp_path: Path, command: str, **kwargs) -> tuple[runner.Result, Path]:
    log = tmp_path / "attempt.log"
    options = {
        "cwd": str(tmp_path),
        "env": ENV,
        "log_path": log,
        "max_log_bytes": 1 << 20,
        "timeout": None,
    }
    options.update(kwargs)
    return runner.run(command, **options), log


# --- runner ----------------------------------------------------------------------------------

def test_success_keeps_stdout_and_stderr_in_log_and_tail(tmp_path):
    result, log = run(tmp_path, "echo out; echo err >&2; echo made > made.txt")
    assert (result.outcome, result.exit_code, result.error) == ("completed", 0, None)
    assert log.read_text() == "out\nerr\n" and result.tail == "out\nerr\n"
    assert (tmp_path / "made.txt").read_text() == "made\n"
    assert log.stat().st_mode & 0o777 == 0o600


def test_failure_reports_the_exit_code(tmp_path):
    result, _ = run(tmp_path, "exit 3")
    assert (result.outcome, result.exit_code, result.error) == ("failed", 3, "exit code 3")


def test_command_not_found_is_exit_127_with_a_readable_error(tmp_path):
    result, log = run(tmp_path, "no_such_command_qx --flag")
    assert (result.outcome, result.exit_code) == ("failed", 127)
    assert result.error == "command not found (exit code 127)"
    assert "no_such_command_qx" in log.read_text() and "not found" in log.read_text()


def test_a_missing_working_directory_fails_the_attempt_with_a_reason(tmp_path):
    result, log = run(tmp_path, "true", cwd=str(tmp_path / "gone"))
    assert (result.outcome, result.exit_code) == ("failed", None)
    assert result.error.startswith("cannot start") and "gone" in result.error
    assert "cannot start" in log.read_text()


def test_the_job_gets_exactly_the_recorded_environment(tmp_path):
    result, log = run(tmp_path, 'echo "$FOO/${HOME:-nohome}"', env={**ENV, "FOO": "bar"})
    assert log.read_text() == "bar/nohome\n"


def test_timeout_kills_the_whole_tree(tmp_path, mark):
    seen = []
    result, _ = run(tmp_path, marked_command(mark, "sh -c 'sleep 60 & sleep 60'"), timeout=1,
                    tick=lambda: seen.append(len(marked(mark, "sleep"))))
    assert max(seen) == 2, "the job's two sleeps never ran"
    assert (result.outcome, result.error) == ("timeout", "timed out after 1s")
    all_gone(mark)


def test_what_the_shell_leaves_behind_dies_with_it(tmp_path, mark):
    result, log = run(tmp_path, marked_command(mark, "sleep 60 & echo left"))
    assert (result.outcome, log.read_text()) == ("completed", "left\n")
    all_gone(mark)


def test_cancel_from_tick_kills_the_tree(tmp_path, mark):
    def tick():
        return "cancel" if len(marked(mark, "sleep")) == 2 else None
    result, _ = run(tmp_path, marked_command(mark, "sh -c 'sleep 60 & sleep 60'"), tick=tick)
    assert (result.outcome, result.error) == ("cancelled", "cancelled")
    all_gone(mark)


def test_output_over_the_cap_is_dropped_and_counted(tmp_path):
    result, log = run(
        tmp_path, "head -c 100000 /dev/zero | tr '\\0' a; echo; echo END", max_log_bytes=2048
    )
    text = log.read_text()
    assert text.startswith("a" * 2048)
    assert "[queuectl: output over 2048 bytes; 97957 bytes not kept]" in text
    assert result.tail.endswith("a\nEND\n") and len(result.tail) == runner.TAIL_BYTES
    assert result.outcome == "completed"


# --- the worker loop -------------------------------------------------------------------------

def enqueue(tmp_path: Path, *specs: dict, env: dict | None = None) -> list[Job]:
    return engine.enqueue([spec.normalize(s) for s in specs], cwd=str(tmp_path),
                          env=ENV if env is None else env)


def test_burst_worker_runs_due_jobs_in_order_and_leaves(db, tmp_path):
    enqueue(tmp_path, {"id": "a", "command": "echo a >> order"},
            {"id": "b", "command": "echo b >> order", "priority": 1},
            {"id": "c", "command": "exit 4", "max_retries": 0},
            {"id": "later", "command": "echo later >> order", "delay": 3600})
    lines = []
    assert WorkerLoop(burst=True, echo=lines.append).run() == 0
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


def test_graceful_stop_lets_the_running_job_finish(db, tmp_path):
    enqueue(
        tmp_path,
        {
            "id": "j",
            "command": "touch started; while [ ! -e go ]; do sleep 0.02; done; echo done > out",
        },
        {"id": "next", "command": "true"},
    )
    worker = WorkerLoop()

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


def test_forced_stop_interrupts_the_job_and_keeps_its_retry_budget(db, tmp_path, mark):
    enqueue(tmp_path, {"id": "j", "max_retries": 2,
                       "command": marked_command(mark, TREE)})
    worker = WorkerLoop()
    thread = _in_thread(lambda: worker._on_force(None, None), tmp_path / "started")
    assert worker.run() == 0
    thread.join()
    all_gone(mark)
    job = Job.get(Job.id == "j")
    assert (job.state, job.attempts, job.max_retries) == ("pending", 0, 2)
    [attempt] = engine.attempts_of(job)
    assert attempt.outcome == "interrupted"


def test_a_cancel_from_another_connection_kills_the_running_job(db, tmp_path, mark):
    enqueue(tmp_path, {"id": "j", "command": marked_command(mark, TREE)})
    worker = WorkerLoop(burst=True)
    thread = _in_thread(lambda: engine.cancel("j"), tmp_path / "started")
    assert worker.run() == 0
    thread.join()
    all_gone(mark)
    job = Job.get(Job.id == "j")
    assert (job.state, job.last_error) == ("dead", "cancelled")
    assert engine.attempts_of(job)[0].outcome == "cancelled"


def test_transient_database_errors_neither_kill_the_worker_nor_lose_the_job(db, tmp_path,
                                                                            monkeypatch):
    """A lock held past the busy timeout (here: the first claim and the first two finishes
    fail) makes the worker wait and retry; every job still completes, once."""
    from peewee import OperationalError

    out = tmp_path / "runs"
    engine.enqueue([spec.normalize({"id": f"j{n}", "command": f"echo j{n} >> {out}"})
                    for n in range(3)])
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
