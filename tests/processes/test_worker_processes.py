"""Detached workers as a user runs them: start, wake-up, stop (graceful, forced), crash recovery,
restarts, and the 3-workers-over-300-jobs acceptance run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from helpers import (
    T0,
    all_gone,
    cli_env,
    marked,
    marked_command,
    ok,
    parse_iso,
    user_error,
    wait_for,
    worker_pids,
)
from queuectl_tui import engine
from queuectl_tui.store.models import Attempt, Job

#: A job with grandchildren that writes "started" once they exist, then waits for them.
TREE = "sh -c 'sleep 60 & sleep 60 & touch started; wait'"


def job(job_id: str) -> Job:
    return Job.get(Job.id == job_id)


def running_with_pid(job_id: str) -> bool:
    row = Job.get_or_none(Job.id == job_id)
    if row is None or row.state != "processing":
        return False
    return any(a.pid for a in engine.attempts_of(row))


def start_workers(cli, count: int = 1) -> list[dict]:
    rows = ok(cli("worker", "start", "--count", str(count), "--json")).json()
    assert len(rows) == count and all(r["alive"] and r["pid"] for r in rows)
    return rows


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.both_backends  # PostgreSQL: woken by LISTEN/NOTIFY
def test_an_idle_worker_is_woken_by_a_new_job(cli, db, home):
    # Neither polling nor heartbeats would bring the worker round within the deadline below.
    for key, value in [("poll_interval", "60"), ("heartbeat_interval", "60"), ("lease", "600")]:
        ok(cli("config", "set", key, value))
    [worker] = start_workers(cli)
    listed = ok(cli("worker", "list", "--json")).json()
    assert [(w["id"], w["pid"], w["alive"]) for w in listed] == [
        (worker["id"], worker["pid"], True)
    ]
    parse_iso(listed[0]["heartbeat_at"])
    for n in range(3):  # after the first, the worker is certainly idle when the job arrives
        ok(cli("enqueue", "--id", f"wake{n}", f"echo {n} > wake{n}"))
        wait_for(
            lambda n=n: job(f"wake{n}").state == "completed", timeout=20, message=f"wake{n} to run"
        )
    assert (home.parent / "wake2").read_text() == "2\n"
    assert "stopped worker(s)" in ok(cli("worker", "stop")).out
    assert gone(worker["pid"])


def test_sigterm_lets_the_running_job_finish(cli, db, home):
    [worker] = start_workers(cli)
    ok(
        cli(
            "enqueue",
            "--id",
            "j",
            "touch started; while [ ! -e go ]; do sleep 0.02; done; sleep 1; echo done > out",
        )
    )
    ok(cli("enqueue", "--id", "next", "--priority", "-1", "true"))
    wait_for(
        lambda: (home.parent / "started").exists() and running_with_pid("j"), message="j to start"
    )
    os.kill(worker["pid"], signal.SIGTERM)
    (home.parent / "go").touch()
    wait_for(lambda: gone(worker["pid"]), message="the worker to exit")
    assert (home.parent / "out").read_text() == "done\n"
    assert (job("j").state, job("j").attempts) == ("completed", 1)
    assert job("next").state == "pending"
    assert ok(cli("worker", "list", "--json")).json() == []


def test_forced_stop_kills_the_job_and_hands_it_back(cli, db, home, mark):
    [worker] = start_workers(cli)
    ok(cli("enqueue", "--id", "j", "--max-retries", "2", marked_command(mark, TREE)))
    wait_for(
        lambda: (home.parent / "started").exists() and running_with_pid("j"), message="j to start"
    )
    wait_for(lambda: len(marked(mark, "sleep")) == 2, message="both sleeps")
    assert ok(cli("worker", "stop", "--force")).out == f"stopped worker(s) {worker['id']}\n"
    assert gone(worker["pid"])
    all_gone(mark)
    row = job("j")
    assert (row.state, row.attempts, row.max_retries) == ("pending", 0, 2)
    [attempt] = engine.attempts_of(row)
    assert attempt.outcome == "interrupted"
    assert ok(cli("show", "j", "--json")).json()["attempt_list"][0]["outcome"] == "interrupted"


def test_a_killed_workers_job_is_recovered_by_the_next_worker(cli, db, home, mark):
    [first] = start_workers(cli)
    script = "if [ -e first-run ]; then echo second > out; else touch first-run; sleep 60; fi"
    ok(
        cli(
            "enqueue",
            "--id",
            "j",
            "--max-retries",
            "2",
            "--backoff-base",
            "1",
            marked_command(mark, script),
        )
    )
    wait_for(
        lambda: (
            (home.parent / "first-run").exists() and running_with_pid("j") and marked(mark, "sleep")
        ),
        message="j to start",
    )
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: gone(first["pid"]), message="the first worker to die")
    assert job("j").state == "processing"  # nobody knows yet
    [second] = start_workers(cli)
    wait_for(lambda: job("j").state == "completed", message="j to be recovered and rerun")
    assert (home.parent / "out").read_text() == "second\n"
    all_gone(mark)  # the orphaned first run was killed
    attempts = engine.attempts_of(job("j"))
    assert [(a.number, a.outcome) for a in attempts] == [(1, "lost"), (2, "completed")]
    assert (
        attempts[0].error.startswith("worker lost") and f"pid {first['pid']}" in attempts[0].error
    )
    assert attempts[1].worker_id == second["id"]
    ok(cli("worker", "stop"))
    assert gone(second["pid"])


def test_cancel_of_a_running_job_kills_its_tree(cli, db, home, mark):
    [worker] = start_workers(cli)
    ok(cli("enqueue", "--id", "j", marked_command(mark, TREE)))
    wait_for(
        lambda: (home.parent / "started").exists() and running_with_pid("j"), message="j to start"
    )
    assert ok(cli("cancel", "j")).out == "j: dead\n"
    all_gone(mark)
    row = job("j")
    assert (row.state, row.last_error) == ("dead", "cancelled")
    assert engine.attempts_of(row)[0].outcome == "cancelled"
    # The worker carries on with the next job.
    ok(cli("enqueue", "--id", "after", "true"))
    wait_for(lambda: job("after").state == "completed", message="the next job")
    ok(cli("worker", "stop"))
    assert gone(worker["pid"])


def test_jobs_survive_worker_restarts_and_new_processes(cli, home):
    [first] = start_workers(cli)
    ok(cli("enqueue", "--id", "a", "echo a >> out"))
    wait_for(lambda: ok(cli("show", "a", "--json")).json()["state"] == "completed", message="a")
    ok(cli("worker", "stop"))
    assert gone(first["pid"])
    ok(cli("enqueue", "--id", "b", "echo b >> out"))
    ok(cli("enqueue", "--id", "c", "--priority", "1", "echo c >> out"))
    status = ok(cli("status", "--json")).json()
    assert status["jobs"]["pending"] == 2 and status["jobs"]["completed"] == 1
    assert status["workers"]["alive"] == 0
    [second] = start_workers(cli)
    wait_for(
        lambda: ok(cli("status", "--json")).json()["jobs"]["completed"] == 3, message="b and c"
    )
    assert (home.parent / "out").read_text() == "a\nc\nb\n"
    listed = ok(cli("list", "--json")).json()  # newest first
    assert [(j["id"], j["attempts"]) for j in listed] == [("c", 1), ("b", 1), ("a", 1)]
    ok(cli("worker", "stop"))
    assert gone(second["pid"])


def test_three_workers_run_300_jobs_exactly_once(cli, db, home, tmp_path):
    out = tmp_path / "ids.txt"
    specs = tmp_path / "jobs.jsonl"
    ids = [f"job{n:03d}" for n in range(300)]
    specs.write_text(
        "".join(json.dumps({"id": i, "command": f"echo {i} >> {out}"}) + "\n" for i in ids)
    )
    assert ok(cli("enqueue", "-f", str(specs))).out.split() == ids
    workers = start_workers(cli, 3)
    assert len({w["pid"] for w in workers}) == 3
    wait_for(lambda: engine.counts()["completed"] == 300, timeout=120, message="300 jobs")
    lines = out.read_text().splitlines()
    assert sorted(lines) == ids  # every id exactly once
    assert engine.counts() == {
        "pending": 0,
        "processing": 0,
        "completed": 300,
        "failed": 0,
        "dead": 0,
    }
    assert Attempt.select().count() == 300
    used = {a.worker_id for a in Attempt.select(Attempt.worker_id)}
    assert used <= {w["id"] for w in workers}
    stopped = ok(cli("worker", "stop", "--json")).json()
    assert sorted(stopped["stopped"]) == sorted(w["id"] for w in workers)
    assert all(gone(w["pid"]) for w in workers)
    assert worker_pids(home) == []
    assert ok(cli("worker", "list", "--json")).json() == []


NON_REAPING_PARENT = r"""
import ctypes, signal, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
subprocess.run([sys.executable, "-m", "queuectl_tui", "worker", "start"], check=True,
               stdout=subprocess.DEVNULL)
print("ready", flush=True)
signal.pause()  # inherits the detached worker and never reaps it (killed by the test)
"""


def test_worker_stop_counts_an_exited_but_unreaped_worker_as_stopped(cli, home):
    # Where the process that inherits detached workers is slow to reap them (a container's
    # PID 1, a supervisor), an exited worker lingers as a zombie: it has still stopped.
    parent = subprocess.Popen(
        [sys.executable, "-c", NON_REAPING_PARENT],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
    )
    try:
        assert parent.stdout.readline() == "ready\n"
        [worker] = ok(cli("worker", "list", "--json")).json()
        assert psutil.Process(worker["pid"]).ppid() == parent.pid
        assert ok(cli("worker", "stop", "--wait", "5", "--json")).json() == {
            "stopped": [worker["id"]],
            "still_running": [],
            "gone": [],
        }
        assert gone(worker["pid"])
    finally:
        parent.kill()
        parent.wait()


def test_foreground_workers_drain_the_queue_together_and_exit(cli, home):
    """``--count 2 --foreground --burst``: two workers (forked from the command) run every job
    once, print their lines, and the command exits 0 when the queue is empty."""
    ok(
        cli(
            "enqueue",
            "-f",
            "-",
            input="".join(f'{{"id": "f{n}", "command": "echo f{n} >> ran"}}\n' for n in range(30)),
        )
    )
    result = ok(cli("worker", "start", "--count", "2", "--foreground", "--burst"))
    started = {line.split()[2] for line in result.out.splitlines() if "started" in line}
    stopped = {line.split()[2] for line in result.out.splitlines() if "stopped" in line}
    assert len(started) == 2 and stopped == started
    assert sorted((home.parent / "ran").read_text().split()) == sorted(f"f{n}" for n in range(30))
    assert {j["state"] for j in ok(cli("list", "--json")).json()} == {"completed"}
    assert ok(cli("worker", "list", "--json")).json() == []


def test_each_line_a_worker_prints_is_one_write_so_forked_workers_never_tear_lines(tmp_path):
    """Forked foreground workers share stdout and stderr. With PYTHONUNBUFFERED=1, print()
    wrote a line and its newline in two write(2)s, and two writers tore each other's lines
    (the drain test above failed about half the time with it set). Two writers, 3,000 echoed
    lines and 3,000 complaints each at the same time, on one pipe: every line arrives whole."""
    import re

    script = (
        "import os, pathlib, sys\n"
        "from queuectl_tui.run import echo, loop as worker\n"
        "name, here = sys.argv[1], pathlib.Path(sys.argv[2])\n"
        "loop = worker.WorkerLoop()\n"
        "loop.row = type('Row', (), {'id': name})\n"
        "(here / f'ready-{name}').touch()\n"
        "while not (here / 'go').exists():\n"
        "    pass\n"
        "for n in range(3000):\n"
        "    echo.print_line(f'{name} line {n:04d} ' + 'x' * 60)\n"
        "    loop._complain(f'complaint {n:04d} ' + 'y' * 60)\n"
    )
    read, write = os.pipe()
    env = cli_env(tmp_path, PYTHONUNBUFFERED="1")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, name, str(tmp_path)], stdout=write, stderr=write, env=env
        )
        for name in ("a", "b")
    ]
    os.close(write)
    try:
        wait_for(
            lambda: all((tmp_path / f"ready-{name}").exists() for name in ("a", "b")),
            message="both writers",
        )
    finally:
        (tmp_path / "go").touch()  # both write at once (each spins on the file until then)
    with os.fdopen(read, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    whole = re.compile(
        r"\d\d:\d\d:\d\d ((a|b) line \d{4} x{60}|worker (a|b): complaint "
        r"\d{4} y{60})"
    )
    torn = [line for line in lines if not whole.fullmatch(line)]
    assert not torn and len(lines) == 12000, torn[:5]


def test_detached_workers_log_one_line_per_job_as_foreground_ones_print(cli, home):
    ok(cli("enqueue", "--id", "logged-ok", "true"))
    ok(cli("enqueue", "--id", "logged-bad", "--max-retries", "0", "exit 3"))
    ok(cli("worker", "start", "--count", "2", "--burst"))
    log = home / "logs" / "workers.log"
    text = wait_for(
        lambda: (t := log.read_text()).count("stopped") == 2 and t, message="workers stop"
    )
    assert any("finish logged-ok" in line and "completed" in line for line in text.splitlines())
    assert any("finish logged-bad" in line and "exit 3" in line for line in text.splitlines())


def test_the_workers_log_turns_over_past_its_cap_and_every_writer_follows(tmp_path):
    """Writers share workers.log as their stdout: past the cap the one that notices moves it
    to workers.log.1, and a writer still holding the old file writes its next line to the new
    log, not to the old one."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    script = (
        "import sys\n"
        "from queuectl_tui.run.echo import WorkersLog\n"
        "log = WorkersLog(sys.argv[1], cap=2000)\n"
        "for n in range(int(sys.argv[3])):\n"
        "    log(f'{sys.argv[2]} line {n:03d} ' + 'x' * 40)\n"
    )
    shared = os.open(logs / "workers.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(name: str, lines: int) -> None:
        writer = subprocess.Popen(
            [sys.executable, "-c", script, str(logs / "workers.log"), name, str(lines)],
            stdout=shared,
            stderr=shared,
            env=cli_env(tmp_path),
        )
        assert writer.wait(timeout=60) == 0

    write("a", 50)  # about 33 lines fill 2,000 bytes: turned over once
    write("b", 1)  # its stdout is still the first file, now workers.log.1
    os.close(shared)
    current, old = (logs / "workers.log").read_text(), (logs / "workers.log.1").read_text()
    assert "a line 000" in old and "a line 049" in current and "b line 000" in current
    assert len(old) < 2000 + 100 and sorted(p.name for p in logs.iterdir()) == [
        "workers.log",
        "workers.log.1",
    ]


@pytest.mark.both_backends
def test_pause_and_resume_a_running_job_by_id(cli, db, home, tmp_path, mark):
    """``pause JOB_ID`` stops the job's processes (SIGSTOP), which is not its end: the job stays
    processing, shown as paused everywhere, until ``resume JOB_ID``; then it ends as it would
    have."""
    start_workers(cli)
    started, release = tmp_path / "started", tmp_path / "release"
    ok(
        cli(
            "enqueue",
            "--id",
            "long",
            "--timeout",
            "600",
            marked_command(
                mark, f"touch {started}; until [ -e {release} ]; do sleep 0.05; done; echo finished"
            ),
        )
    )
    wait_for(started.exists, message="the job to start")

    assert ok(cli("pause", "long")).out == "paused job long\n"
    assert marked(mark) and all(p.status() == psutil.STATUS_STOPPED for p in marked(mark))
    shown = ok(cli("show", "long", "--json")).json()
    assert (shown["state"], shown["paused"]) == ("processing", True)
    assert "paused" in shown["why"]
    assert "processing (paused)" in ok(cli("list")).out
    assert "  paused  " in ok(cli("ps")).out.splitlines()[0]
    release.touch()  # a paused job does not see it
    assert ok(cli("show", "long", "--json")).json()["state"] == "processing"

    assert ok(cli("resume", "long")).out == "resumed job long\n"
    wait_for(lambda: job("long").state == "completed", message="the resumed job to end")
    done = ok(cli("show", "long", "--json")).json()
    assert (done["exit_code"], done["output_tail"], done["paused"]) == (0, "finished\n", False)
    assert [a["outcome"] for a in done["attempt_list"]] == ["completed"]


def test_pause_of_a_job_that_is_not_running_here_changes_nothing(cli, db, add, worker):
    add("waiting")
    add("elsewhere", priority=1)
    _, claimed = engine.settle(worker, claim=1, max_backoff=60, now=T0 + 1)
    [(_, attempt)] = claimed
    Attempt.update(host="another-host", pid=12345, pid_started=1.0).where(
        Attempt.seq == attempt.seq
    ).execute()
    assert "job 'elsewhere' runs on host another-host" in user_error(cli("pause", "elsewhere"), 1)
    assert "job 'waiting' is not running (pending)" in user_error(
        cli("resume", "waiting", "elsewhere"), 1
    )
    assert "not both" in user_error(cli("pause", "waiting", "--queue", "default"), 2)
    assert not job("elsewhere").paused and job("elsewhere").state == "processing"


@pytest.mark.both_backends
def test_workers_forked_from_one_process_import_nothing_of_their_own(db, home):
    """``worker start --count N`` forks its workers: what a worker imports at its first claim,
    recovery and look for work is imported before the fork (``supervisor.preload``), not once
    per child. A worker run on an empty queue after the preload imports no module."""
    script = (
        "import os, sys\n"
        "from queuectl_tui.store import open_db\n"
        "open_db(os.environ.get('QUEUECTL_DB') or os.path.join(os.environ['QUEUECTL_HOME'], "
        "'queuectl.db'))\n"
        "from queuectl_tui.run.loop import run_worker\n"
        "from queuectl_tui.run.supervisor import preload\n"
        "preload()\n"
        "before = set(sys.modules)\n"
        "run_worker([], burst=True, echo=False)\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
