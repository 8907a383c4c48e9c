"""Real worker processes under signals, timeouts, SIGKILL, output floods and PID reuse.

Workers here are the detached ``worker start`` kind, stopped and killed with real signals; job
processes are found in the process table by a unique ``sleep`` argument, and every test checks
that none is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import cli_env, gone, kill_processes_with, ok, processes_with, token, wait_for

# reap (conftest.py): kills whatever a test leaves running, even when it fails half-way.
pytestmark = pytest.mark.usefixtures("reap")

MB = 1024 * 1024


@pytest.fixture
def tok():
    """A unique sleep duration: the job processes of this test are the ones that carry it."""
    value = token()
    yield value
    kill_processes_with(value)


def sleeps(tok: str) -> list[psutil.Process]:
    return [p for p in processes_with(tok) if p.name() == "sleep"]


def start_worker(cli) -> dict:
    return ok(cli("worker", "start", "--json")).json()[0]


def show(cli, job_id: str) -> dict:
    return ok(cli("show", job_id, "--json")).json()


def worker_status(cli, worker_id: int) -> str | None:
    rows = ok(cli("worker", "list", "--json")).json()
    return next((w["status"] for w in rows if w["id"] == worker_id), None)


def outcomes(job: dict) -> list[str]:
    return [a["outcome"] for a in job["attempt_list"]]


def tree_job(tmp_path: Path, tok: str) -> str:
    """First run: a shell whose child starts two grandchildren and waits. Later runs: note
    whether any process of an earlier run is still alive, then finish at once."""
    runs, once, overlap = tmp_path / "runs", tmp_path / "once", tmp_path / "overlap"
    return (
        f"echo run >> {runs}; "
        f"if [ -e {once} ]; then "
        f"  if pgrep -f '^sleep {tok}' >/dev/null; then touch {overlap}; fi; echo again; "
        f"else touch {once}; sh -c 'sleep {tok} & sleep {tok}'; fi"
    )


def run_count(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


# --- graceful and forced stops ---------------------------------------------------------------


def running_long_job(cli, tmp_path: Path) -> tuple[dict, Path]:
    """A detached worker running job "long", which prints "finished" once ``release`` exists."""
    worker = start_worker(cli)
    started, release = tmp_path / "started", tmp_path / "release"
    ok(
        cli(
            "enqueue",
            "--id",
            "long",
            f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done; echo finished",
        )
    )
    wait_for(started.exists, message="the job to start")
    return worker, release


def test_sigterm_lets_the_running_job_finish_and_claims_nothing_more(cli, tmp_path):
    ok(cli("config", "set", "heartbeat_interval", "0.2"))
    worker, release = running_long_job(cli, tmp_path)

    os.kill(worker["pid"], signal.SIGTERM)
    wait_for(
        lambda: worker_status(cli, worker["id"]) == "stopping",
        message="the worker to take the signal",
    )
    ok(cli("enqueue", "--id", "next", "true"))
    assert show(cli, "long")["state"] == "processing"  # the signal did not touch the job

    release.touch()
    wait_for(lambda: gone(worker["pid"]), message="the worker to exit after its job")
    job = show(cli, "long")
    assert (job["state"], job["attempts"], outcomes(job)) == ("completed", 1, ["completed"])
    assert job["output_tail"] == "finished\n"
    assert show(cli, "next")["state"] == "pending"  # a stopping worker takes no new job
    assert ok(cli("worker", "list", "--json")).json() == []


def test_a_repeated_normal_stop_still_lets_the_job_finish(cli, tmp_path):
    """`worker stop` twice (or the console's stop, then stop all) never kills the job, and the
    stopping worker still counts as busy while it finishes it."""
    worker, release = running_long_job(cli, tmp_path)

    os.kill(worker["pid"], signal.SIGTERM)
    wait_for(lambda: worker_status(cli, worker["id"]) == "stopping", message="the first stop")
    assert ok(cli("status", "--json")).json()["workers"] == {"alive": 1, "busy": 1}
    # The second normal stop: waits a second for the worker, which goes on with its job.
    again = ok(cli("worker", "stop", "--wait", "1", "--json")).json()
    assert again == {"stopped": [], "still_running": [worker["id"]], "gone": []}
    os.kill(worker["pid"], signal.SIGTERM)
    assert ok(cli("worker", "stop", "--wait", "0.5", "--json")).json()["still_running"] == [
        worker["id"]
    ]
    assert show(cli, "long")["state"] == "processing"

    release.touch()
    wait_for(lambda: gone(worker["pid"]), message="the worker to exit after its job")
    job = show(cli, "long")
    assert (job["state"], job["attempts"], outcomes(job)) == ("completed", 1, ["completed"])
    assert job["output_tail"] == "finished\n"


@pytest.mark.parametrize("how", ["second-sigint", "stop-force"])
def test_a_forced_stop_kills_the_job_tree_and_the_job_runs_again_later(cli, tmp_path, tok, how):
    ok(cli("config", "set", "heartbeat_interval", "0.2"))
    worker = start_worker(cli)
    ok(cli("enqueue", "--id", "tree", "--max-retries", "0", tree_job(tmp_path, tok)))
    wait_for(lambda: len(sleeps(tok)) == 2, message="the job's grandchildren")

    if how == "second-sigint":  # Ctrl+C twice on a foreground worker
        os.kill(worker["pid"], signal.SIGINT)
        wait_for(lambda: worker_status(cli, worker["id"]) == "stopping", message="the first signal")
        assert len(sleeps(tok)) == 2  # the first signal leaves the job alone
        os.kill(worker["pid"], signal.SIGINT)
    else:
        assert ok(cli("worker", "stop", "--force", "--json")).json()["stopped"] == [worker["id"]]
    wait_for(lambda: gone(worker["pid"]), message="the worker to exit")
    wait_for(lambda: not processes_with(tok), timeout=5, message="the job's whole tree to be gone")

    job = show(cli, "tree")
    # Back to pending, and the interrupted run did not use up the (zero) retries.
    assert (job["state"], job["attempts"], outcomes(job)) == ("pending", 0, ["interrupted"])

    ok(cli("worker", "start", "--foreground", "--burst"))
    job = show(cli, "tree")
    assert (job["state"], job["attempts"], outcomes(job)) == (
        "completed",
        1,
        ["interrupted", "completed"],
    )
    assert run_count(tmp_path) == 2 and not (tmp_path / "overlap").exists()


# --- nothing a job does may wedge its worker -------------------------------------------------

#: A worker of this test's database, in-process in a child, that claims two jobs at once.
BATCH_OF_TWO = """
import sys
from queuectl_tui.store import open_db
from queuectl_tui.run.loop import WorkerLoop
open_db()
worker = WorkerLoop(burst=True)
worker.install_signals()
worker.batch.size = 2
sys.exit(worker.run())
"""


@pytest.mark.parametrize("end", ["timeout", "stop-force"])
def test_a_held_job_larger_than_a_pipe_never_wedges_its_worker(cli, home, tmp_path, tok, end):
    """Held behind a running job, a command over 64 KiB once quoted is not sent ahead into the
    host's pipe (which nobody reads while the job runs): the running job's timeout fires and is
    recorded, and ``worker stop --force`` stops the worker."""
    started = tmp_path / "started"
    timeout = ["--timeout", "1"] if end == "timeout" else []
    ok(
        cli(
            "enqueue",
            "--id",
            "running",
            "--priority",
            "1",
            "--max-retries",
            "0",
            *timeout,
            f"touch {started}; sleep {tok}",
        )
    )
    # 14 KB as given (under the 64 KiB a command may have), 70 KB once quoted (each ' is 5).
    ok(cli("enqueue", "--id", "huge", f'touch {tmp_path / "ran"}; : "{chr(39) * 14_000}"'))
    worker = subprocess.Popen(
        [sys.executable, "-c", BATCH_OF_TWO],
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if end == "stop-force":
            wait_for(started.exists, message="the running job to start")
            stop = ok(cli("worker", "stop", "--force", "--wait", "20"))
            assert stop.out.startswith("stopped worker(s)") and "--force" not in stop.out
        assert worker.wait(timeout=60) == 0, worker.stderr.read()
    finally:
        worker.kill()
    running, huge = show(cli, "running"), show(cli, "huge")
    if end == "timeout":
        assert (running["state"], running["last_error"]) == ("dead", "timed out after 1s")
        assert huge["state"] == "completed" and (tmp_path / "ran").exists()
    else:
        assert (running["state"], outcomes(running)) == ("pending", ["interrupted"])
        assert (huge["state"], huge["attempts"]) == ("pending", 0)  # handed back, never run
    assert not processes_with(tok)


def test_a_job_that_stops_its_host_still_times_out_and_the_next_job_runs(cli, tok):
    """``kill -STOP`` of the job host's shell (the parent of the job's ``$$``): the host that
    does not answer is killed and replaced, and the job is recorded as timed out."""
    ok(
        cli(
            "enqueue",
            "--id",
            "stopper",
            "--timeout",
            "2",
            "--max-retries",
            "0",
            f"echo x; kill -STOP $(ps -o ppid= -p $$); sleep {tok}",
        )
    )
    ok(cli("enqueue", "--id", "next", "echo next"))
    ok(cli("worker", "start", "--foreground", "--burst", timeout=60))
    job = show(cli, "stopper")
    assert (job["state"], job["last_error"], job["output_tail"]) == (
        "dead",
        "timed out after 2s",
        "x\n",
    )
    assert (show(cli, "next")["state"], show(cli, "next")["output_tail"]) == ("completed", "next\n")
    assert not processes_with(tok)


def test_a_forced_stop_that_does_not_stop_a_worker_says_so_and_fails(cli):
    """Never "use --force" after --force: a worker that did not exit (here: frozen) within
    --wait is a failure, one line on stderr and exit 1."""
    worker = start_worker(cli)
    os.kill(worker["pid"], signal.SIGSTOP)
    try:
        result = cli("worker", "stop", "--force", "--wait", "0.5")
    finally:
        os.kill(worker["pid"], signal.SIGKILL)
    assert result.code == 1, result
    assert result.err == f"error: worker(s) {worker['id']} did not stop within 0.5s\n"
    assert "--force" not in result.out + result.err


# --- no orphans ------------------------------------------------------------------------------


def test_a_timeout_kills_the_grandchildren_too(cli, tok):
    ok(
        cli(
            "enqueue",
            "--id",
            "slow",
            "--timeout",
            "1",
            "--max-retries",
            "0",
            f"sh -c 'sleep {tok} & sleep {tok}'",
        )
    )
    ok(cli("worker", "start", "--foreground", "--burst"))
    job = show(cli, "slow")
    assert (job["state"], job["last_error"]) == ("dead", "timed out after 1s")
    wait_for(lambda: not processes_with(tok), timeout=5, message="no process of the job left")


@pytest.mark.parametrize("recovered_by", ["recover-command", "replacement-worker"])
def test_a_sigkilled_workers_job_tree_is_killed_before_the_job_runs_again(
    cli, tmp_path, tok, recovered_by
):
    ok(cli("config", "set", "backoff_base", "1"))
    worker = start_worker(cli)
    ok(cli("enqueue", "--id", "victim", tree_job(tmp_path, tok)))
    wait_for(
        lambda: len(sleeps(tok)) == 2 and show(cli, "victim")["attempt_list"][0]["pid"],
        message="the job's tree, recorded",
    )

    os.kill(worker["pid"], signal.SIGKILL)
    wait_for(lambda: gone(worker["pid"]), message="the worker to die")
    assert len(sleeps(tok)) == 2  # the job outlives its worker: only recovery can stop it

    if recovered_by == "recover-command":
        assert ok(cli("recover", "--json")).json() == {"recovered": ["victim"]}
        wait_for(lambda: not processes_with(tok), timeout=5, message="recovery to kill the tree")
        job = show(cli, "victim")
        assert job["state"] == "failed" and outcomes(job) == ["lost"]
        assert job["last_error"].startswith("worker lost")
    # A new worker recovers the job on start (when not done already), waits out the 1 s
    # backoff and runs it again; the second run checks that nothing of the first is alive.
    ok(cli("worker", "start", "--foreground", "--burst"))
    job = show(cli, "victim")
    assert (job["state"], job["attempts"], outcomes(job)) == ("completed", 2, ["lost", "completed"])
    assert job["attempt_list"][0]["error"].startswith("worker lost")
    assert run_count(tmp_path) == 2
    assert not (tmp_path / "overlap").exists(), "the retry ran while the first run was still alive"
    assert not processes_with(tok)


def test_a_job_whose_process_is_only_in_its_workers_journal_is_killed_and_charged(
    cli, tmp_path, tok
):
    """A worker notes each job's process in its journal before the command runs; the database
    gets the PID only at the next heartbeat. SIGKILLed in between, the worker leaves a job that
    did start: recovery must read the journal, kill the tree and charge the attempt ("lost"),
    not hand it back as never started (which would run it next to its live first run)."""
    for key, value in (("heartbeat_interval", "300"), ("lease", "900"), ("backoff_base", "1")):
        ok(cli("config", "set", key, value))  # the first beat is at start: no second one
    worker = start_worker(cli)
    ok(cli("enqueue", "--id", "victim", tree_job(tmp_path, tok)))
    wait_for(lambda: len(sleeps(tok)) == 2, message="the job's tree")
    assert show(cli, "victim")["attempt_list"][0]["pid"] is None  # only in the journal

    os.kill(worker["pid"], signal.SIGKILL)
    wait_for(lambda: gone(worker["pid"]), message="the worker to die")
    assert ok(cli("recover", "--json")).json() == {"recovered": ["victim"]}
    wait_for(lambda: not processes_with(tok), timeout=5, message="recovery to kill the tree")
    job = show(cli, "victim")
    assert job["state"] == "failed" and outcomes(job) == ["lost"]
    assert not list((tmp_path / "qhome" / "logs").glob("worker*.pids"))  # the dead one's is gone


@pytest.mark.parametrize("recovered_by", ["recover", "stop-force"])
def test_a_note_left_from_before_a_clear_never_hides_a_sigkilled_workers_job(
    cli, tmp_path, tok, recovered_by
):
    """Attempt seqs are given again after ``clear``, and a worker's journal is a ring of 64
    notes that outlives it. Worker notes 60 attempts, is cleared, runs 4 more (seqs 1-4 again)
    and the victim (seq 5, its note in slot 0): the note of the old seq 5 sits in slot 4. The
    worker SIGKILLed, recovery (``recover``, or ``worker stop --force`` finding it gone) must
    kill the victim's tree, not the old note's long-gone process, before the job runs again."""
    for key, value in (("heartbeat_interval", "300"), ("lease", "900"), ("backoff_base", "1")):
        ok(cli("config", "set", key, value))  # the database never gets the victim's PID
    specs = "".join(json.dumps({"id": f"old{i}", "command": "true"}) + "\n" for i in range(60))
    ok(cli("enqueue", "-f", "-", input=specs))
    worker = start_worker(cli)
    wait_for(
        lambda: ok(cli("status", "--json")).json()["jobs"]["completed"] == 60,
        message="the first 60 jobs",
    )
    ok(cli("clear", "--yes"))
    specs = "".join(json.dumps({"id": f"new{i}", "command": "true"}) + "\n" for i in range(4))
    ok(cli("enqueue", "-f", "-", input=specs))
    wait_for(
        lambda: ok(cli("status", "--json")).json()["jobs"]["completed"] == 4, message="4 more jobs"
    )
    ok(cli("enqueue", "--id", "victim", tree_job(tmp_path, tok)))
    wait_for(lambda: len(sleeps(tok)) == 2, message="the victim's tree")
    assert show(cli, "victim")["attempt_list"][0]["pid"] is None  # only in the journal

    os.kill(worker["pid"], signal.SIGKILL)
    wait_for(lambda: gone(worker["pid"]), message="the worker to die")
    if recovered_by == "recover":
        assert ok(cli("recover", "--json")).json() == {"recovered": ["victim"]}
    else:
        assert ok(cli("worker", "stop", "--force", "--json")).json()["gone"] == [worker["id"]]
    assert not processes_with(tok), "recovery returned with the victim's tree alive"
    job = show(cli, "victim")
    assert job["state"] == "failed" and outcomes(job) == ["lost"]
    ok(cli("worker", "start", "--foreground", "--burst"))
    job = show(cli, "victim")
    assert (job["state"], outcomes(job)) == ("completed", ["lost", "completed"])
    assert not (tmp_path / "overlap").exists(), "the retry ran while the first run was alive"
    assert not processes_with(tok)


@pytest.mark.parametrize("recovered_by", ["recover-command", "replacement-worker"])
def test_recovery_kills_the_group_of_a_job_whose_shell_has_already_exited(
    cli, tmp_path, tok, recovered_by
):
    """``(sleep 10; echo late >> f) & sleep 2`` with its worker SIGKILLed during the sleep: the
    shell ends, the background child lives on in the shell's process group. Recovery must kill
    it (and say so by returning only once it is gone) before the job can run again."""
    ok(cli("config", "set", "backoff_base", "1"))
    worker = start_worker(cli)
    runs, once, overlap = tmp_path / "runs", tmp_path / "once", tmp_path / "overlap"
    late, release = tmp_path / "late", tmp_path / "release"
    ok(
        cli(
            "enqueue",
            "--id",
            "j",
            (
                f"echo run >> {runs}; "
                f"if [ -e {once} ]; then if pgrep -f '^sleep {tok}' >/dev/null; "
                f"then touch {overlap}; fi; "
                f"else touch {once}; (sleep {tok}; echo late >> {late}) & "
                f"while [ ! -e {release} ]; do sleep 0.02; done; fi"
            ),
        )
    )
    wait_for(
        lambda: sleeps(tok) and show(cli, "j")["attempt_list"][0]["pid"],
        message="the job, recorded",
    )
    shell = show(cli, "j")["attempt_list"][0]["pid"]

    os.kill(worker["pid"], signal.SIGKILL)
    wait_for(lambda: gone(worker["pid"]), message="the worker to die")
    release.touch()  # the job's shell ends now, with no worker to see it
    wait_for(lambda: gone(shell), message="the job's shell to exit")
    assert len(sleeps(tok)) == 1  # its background child has not

    if recovered_by == "recover-command":
        assert ok(cli("recover", "--json")).json() == {"recovered": ["j"]}
        assert not processes_with(tok), "recovery returned with the job's group still running"
    ok(cli("worker", "start", "--foreground", "--burst"))
    job = show(cli, "j")
    assert (job["state"], outcomes(job)) == ("completed", ["lost", "completed"])
    assert run_count(tmp_path) == 2
    assert not overlap.exists(), "the retry ran while the first run's background child was alive"
    assert not processes_with(tok) and not late.exists()


def test_recovery_kills_what_a_sigkilled_workers_job_moved_out_of_its_group(cli, tmp_path, tok):
    """A job's ``setsid`` child leaves the group and, its worker SIGKILLed, is inherited by
    init: recovery still finds it, by the marker in its environment."""
    worker = start_worker(cli)
    pid_file = tmp_path / "orphan.pid"
    ok(
        cli(
            "enqueue",
            "--id",
            "j",
            "--max-retries",
            "0",
            f"(setsid sh -c 'echo $$ > {pid_file}; exec sleep {tok}' &); sleep {tok}",
        )
    )
    wait_for(
        lambda: pid_file.exists() and pid_file.read_text().strip() and len(sleeps(tok)) == 2,
        message="the job and its setsid child",
    )
    orphan = int(pid_file.read_text())
    os.kill(worker["pid"], signal.SIGKILL)
    wait_for(lambda: gone(worker["pid"]), message="the worker to die")

    assert ok(cli("recover", "--json")).json() == {"recovered": ["j"]}
    assert gone(orphan) and not processes_with(tok)


#: Job processes that leave the job's process group and its parentage: a double fork with
#: setsid, and coreutils ``timeout`` (which calls setpgid) likewise.
ESCAPES = {
    "setsid": "(setsid sh -c 'echo $$ > {pid_file}; exec sleep {tok}' &)",
    "timeout": "(timeout {tok} sh -c 'echo $$ > {pid_file}; exec sleep {tok}' &)",
}


@pytest.mark.parametrize("end", ["normal", "timeout", "cancel", "stop-force"])
@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_processes_that_left_the_jobs_group_die_with_the_job(cli, tmp_path, tok, escape, end):
    worker = start_worker(cli)
    pid_file, started, release = tmp_path / "orphan.pid", tmp_path / "started", tmp_path / "release"
    command = (
        ESCAPES[escape].format(pid_file=pid_file, tok=tok)
        + f"; while [ ! -s {pid_file} ]; do sleep 0.02; done; touch {started}; "
        f"while [ ! -e {release} ]; do sleep 0.02; done"
    )
    ok(
        cli(
            "enqueue",
            "--id",
            "j",
            "--max-retries",
            "0",
            *(["--timeout", "2"] if end == "timeout" else []),
            command,
        )
    )
    wait_for(started.exists, message="the job and its escaped child")
    orphan = int(pid_file.read_text())
    assert not gone(orphan)

    if end == "normal":
        release.touch()
    elif end == "cancel":
        ok(cli("cancel", "j"))
    elif end == "stop-force":
        assert ok(cli("worker", "stop", "--force", "--json")).json()["stopped"] == [worker["id"]]
    wanted = {"normal": "completed", "timeout": "dead", "cancel": "dead", "stop-force": "pending"}[
        end
    ]
    wait_for(lambda: show(cli, "j")["state"] == wanted, message=f"the job to be {wanted}")
    # Killed before the outcome was recorded: no wait here.
    assert gone(orphan), f"the job's {escape} child outlived it"
    assert not processes_with(tok)
    if end != "stop-force":
        assert worker_status(cli, worker["id"]) in ("idle", "busy")  # the worker carries on


def test_a_worker_kills_only_its_own_jobs_leftovers(cli, home, tmp_path, tok):
    """``worker start --count 2 --foreground``: one parent, two worker children. When one job
    ends, its worker kills what it left behind, and not the sibling worker's running job."""
    pid_file, b_started, b_release = (
        tmp_path / "orphan.pid",
        tmp_path / "b-started",
        tmp_path / "b-release",
    )
    ok(
        cli(
            "enqueue",
            "--id",
            "b",
            f"touch {b_started}; while [ ! -e {b_release} ]; do sleep 0.02; done",
        )
    )
    parent = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "worker", "start", "--count", "2", "--foreground"],
        env=cli_env(home),
        cwd=home.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(b_started.exists, message="b to start on one worker")
        ok(
            cli(
                "enqueue",
                "--id",
                "a",
                ESCAPES["setsid"].format(pid_file=pid_file, tok=tok)
                + f"; while [ ! -s {pid_file} ]; do sleep 0.02; done",
            )
        )
        wait_for(lambda: show(cli, "a")["state"] == "completed", message="a to run on the other")
        assert gone(int(pid_file.read_text()))
        assert show(cli, "b")["state"] == "processing"
        b_release.touch()
        wait_for(lambda: show(cli, "b")["state"] == "completed", message="b to finish")
        assert outcomes(show(cli, "b")) == ["completed"]
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)


def test_a_job_whose_process_could_not_be_recorded_never_starts(tmp_path, tok):
    """The worker dies between starting the job's shell and recording its PID: recovery could
    not find that process, so the shell must not run the command at all."""
    ran = tmp_path / "ran"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from queuectl_tui.run.launch import exec as runner\n"
        "def die(pid, started):\n"
        "    print(pid, flush=True)\n"
        "    os._exit(9)\n"
        f"runner.run('touch {ran}; sleep {tok}', cwd={str(tmp_path)!r},\n"
        "           env={'PATH': os.environ['PATH']}, log_path=Path(%r), max_log_bytes=1 << 20,\n"
        "           timeout=None, on_start=die)\n" % str(tmp_path / "log")
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 9, proc.stderr
    shell = int(proc.stdout)
    wait_for(lambda: gone(shell), timeout=10, message="the unrecorded shell to give up")
    assert not ran.exists()
    assert not processes_with(tok)


# --- heartbeats ------------------------------------------------------------------------------


def test_a_lease_shorter_than_the_heartbeat_interval_does_not_lose_a_live_worker(cli, tmp_path):
    ok(cli("config", "set", "heartbeat_interval", "60"))
    ok(cli("config", "set", "lease", "2"))
    worker = start_worker(cli)
    started, release = tmp_path / "started", tmp_path / "release"
    ok(
        cli(
            "enqueue",
            "--id",
            "steady",
            f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done",
        )
    )
    wait_for(started.exists, message="the job to start")
    since = time.time()

    def beat_after_lease() -> bool:
        row = ok(cli("worker", "list", "--json")).json()[0]
        return row["alive"] and parse(row["heartbeat_at"]) > since + 2

    wait_for(beat_after_lease, timeout=20, message="a heartbeat later than a lease into the job")
    assert ok(cli("recover", "--json")).json() == {"recovered": []}
    release.touch()
    wait_for(lambda: show(cli, "steady")["state"] == "completed", message="the job to complete")
    assert outcomes(show(cli, "steady")) == ["completed"]
    assert worker_status(cli, worker["id"]) in ("idle", "busy")


def test_a_lease_changed_while_a_job_runs_applies_to_its_heartbeats(cli, tmp_path):
    ok(cli("config", "set", "heartbeat_interval", "300"))
    ok(cli("config", "set", "lease", "900"))  # a beat every 300 s
    start_worker(cli)
    started, release = tmp_path / "started", tmp_path / "release"
    ok(
        cli(
            "enqueue",
            "--id",
            "steady",
            f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done",
        )
    )
    wait_for(started.exists, message="the job to start")
    ok(cli("config", "set", "lease", "3"))
    since = time.time()

    def beat_since() -> bool:
        return parse(ok(cli("worker", "list", "--json")).json()[0]["heartbeat_at"]) > since

    wait_for(beat_since, timeout=15, message="a heartbeat at the new lease's pace")
    release.touch()
    wait_for(lambda: show(cli, "steady")["state"] == "completed", message="the job to complete")
    assert outcomes(show(cli, "steady")) == ["completed"]


def test_a_write_lock_held_past_the_lease_does_not_lose_a_working_worker(cli, home, tmp_path):
    """Another connection holds the write lock longer than the lease (a huge enqueue): the
    worker's heartbeats are late, but its process runs, so recovery leaves its job alone."""
    ok(cli("config", "set", "heartbeat_interval", "0.2"))
    ok(cli("config", "set", "lease", "1"))
    worker = start_worker(cli)
    started, release = tmp_path / "started", tmp_path / "release"
    ok(
        cli(
            "enqueue",
            "--id",
            "steady",
            f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done; echo done",
        )
    )
    wait_for(started.exists, message="the job to start")
    reader = sqlite3.connect(f"file:{home / 'queuectl.db'}?mode=ro", uri=True)
    shell = wait_for(
        lambda: reader.execute("SELECT pid FROM attempt").fetchone()[0],
        message="the job's process, recorded",
    )
    holder = sqlite3.connect(home / "queuectl.db", isolation_level=None, timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    try:
        wait_for(
            lambda: (
                time.time() - reader.execute("SELECT heartbeat_at FROM worker").fetchone()[0] > 2
            ),
            message="the heartbeat to be older than the lease",
        )
        recover = subprocess.Popen(
            [sys.executable, "-m", "queuectl_tui", "recover", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(home),
        )
        # Unfixed, recovery kills the job's tree and then waits for the lock to record it.
        wait_for(lambda: recover.poll() is not None or gone(shell), message="recovery to decide")
        assert not gone(shell), "recovery killed a working worker's job"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        reader.close()
    out, err = recover.communicate(timeout=60)
    assert recover.returncode == 0 and json.loads(out) == {"recovered": []}, err
    release.touch()
    wait_for(lambda: show(cli, "steady")["state"] == "completed", message="the job to complete")
    job = show(cli, "steady")
    assert (outcomes(job), job["output_tail"]) == (["completed"], "done\n")
    assert not gone(worker["pid"])


def parse(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- output flood ----------------------------------------------------------------------------


def test_a_200mb_flood_keeps_the_log_capped_the_row_small_and_the_worker_flat(cli, home):
    ok(cli("config", "set", "max_log_bytes", str(MB)))
    worker = start_worker(cli)
    proc = psutil.Process(worker["pid"])
    flood = 200 * MB
    ok(
        cli(
            "enqueue",
            "--id",
            "flood",
            f"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {flood}; echo; echo end-of-flood",
        )
    )
    db = sqlite3.connect(f"file:{home / 'queuectl.db'}?mode=ro", uri=True)
    baseline = proc.memory_info().rss
    peak = baseline

    def finished() -> bool:
        nonlocal peak
        peak = max(peak, proc.memory_info().rss)
        return db.execute("SELECT state FROM job WHERE id = 'flood'").fetchone()[0] == "completed"

    wait_for(finished, timeout=180, interval=0.01, message="the flood to end")
    job = show(cli, "flood")
    log = Path(job["attempt_list"][0]["log_file"])
    total = flood + len("\nend-of-flood\n")
    data = log.read_bytes()
    note = f"\n[queuectl: output over {MB} bytes; {total - MB} bytes not kept]\n".encode()
    assert data.startswith(b"0123456789abcdefghijklmnopqrstuvwxyz\n0123") and data.endswith(note)
    assert len(data) == MB + len(note)
    assert (
        job["output_tail"].endswith("\nend-of-flood\n") and len(job["output_tail"].encode()) <= 4096
    )
    row_bytes = db.execute(
        "SELECT sum(length(CAST(output_tail AS BLOB)) + length(command)"
        " + coalesce(length(last_error), 0)) FROM job"
    ).fetchone()[0]
    assert row_bytes < 8192
    db.close()
    assert (home / "queuectl.db").stat().st_size < 2 * MB
    print(
        f"\nflood: {total} bytes written, log {len(data)} bytes, tail "
        f"{len(job['output_tail'].encode())} bytes, job row {row_bytes} bytes, database "
        f"{(home / 'queuectl.db').stat().st_size} bytes, worker RSS {baseline / MB:.1f} MB "
        f"-> peak {peak / MB:.1f} MB (+{(peak - baseline) / MB:.1f} MB)"
    )
    assert peak - baseline < 50 * MB, f"worker RSS grew by {(peak - baseline) / MB:.1f} MB"


# --- PID reuse -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [("worker", "stop"), ("worker", "stop", "--force"), ("recover",)]
)
def test_a_worker_row_whose_pid_was_reused_is_dead_and_never_signalled(db, cli, tok, command):
    from queuectl_tui import engine, procs, spec
    from queuectl_tui.store.models import Worker

    stranger = subprocess.Popen(["sleep", tok])  # an unrelated process now owns the PID
    try:
        born = psutil.Process(stranger.pid).create_time()
        now = time.time()
        row = Worker.create(
            host=procs.hostname(),
            pid=stranger.pid,
            proc_started=born - 1000,
            started_at=now,
            heartbeat_at=now,
            status="busy",
        )
        engine.enqueue([spec.normalize({"id": "orphan", "command": "true"})], cwd="/", env={})
        job, attempt = engine.claim(row)
        engine.record_process(attempt, stranger.pid, born - 1000)  # the job's shell: reused too

        listed = ok(cli("worker", "list", "--json")).json()
        assert [(w["id"], w["alive"]) for w in listed] == [(row.id, False)]
        assert ok(cli("status", "--json")).json()["workers"]["alive"] == 0

        result = ok(cli(*command, "--json")).json()
        if command[0] == "worker":
            assert result == {"stopped": [], "still_running": [], "gone": [row.id]}
        else:
            assert result == {"recovered": ["orphan"]}
        assert stranger.poll() is None, "an unrelated process was signalled"
        job = show(cli, "orphan")
        assert job["state"] == "failed" and job["last_error"].startswith("worker lost")
        assert ok(cli("worker", "list", "--json")).json() == []
    finally:
        stranger.kill()
        stranger.wait()


# --- identities and fences -------------------------------------------------------------------


def test_a_frozen_worker_resumed_after_recovery_changes_nothing(cli, home, tmp_path):
    """Worker A is frozen past the lease, recovered, its job claimed again by worker B; A
    resumes. Its stale finish must not touch B's run, and A must come back as a new worker
    (never B's id), so that `worker stop --force` reaches both processes."""
    ok(cli("config", "set", "heartbeat_interval", "0.2"))
    ok(cli("config", "set", "lease", "1"))
    ok(cli("config", "set", "backoff_base", "1"))
    runs, release = tmp_path / "runs", tmp_path / "release"
    first = start_worker(cli)
    ok(
        cli(
            "enqueue",
            "--id",
            "j",
            f"echo run >> {runs}; while [ ! -e {release} ]; do sleep 0.02; done",
        )
    )
    wait_for(
        lambda: [a["pid"] for a in show(cli, "j")["attempt_list"] if a["pid"]],
        message="the job's process, recorded",
    )

    os.kill(first["pid"], signal.SIGSTOP)
    frozen = psutil.Process(first["pid"])
    try:
        wait_for(lambda: frozen.status() == psutil.STATUS_STOPPED, message="the worker to freeze")
        wait_for(
            lambda: not ok(cli("worker", "list", "--json")).json()[0]["alive"],
            message="the frozen worker to be presumed lost",
        )
        assert ok(cli("recover", "--json")).json() == {"recovered": ["j"]}
        second = start_worker(cli)
        assert second["id"] != first["id"]
        wait_for(lambda: run_count(tmp_path) == 2, message="the second run")
        ok(cli("enqueue", "--id", "after", "true"))  # only a free worker (A) takes it
    finally:
        os.kill(first["pid"], signal.SIGCONT)
    # A went back to its loop after its stale finish, and came back under a new id.
    wait_for(lambda: show(cli, "after")["state"] == "completed", message="A to claim again")

    def two_alive() -> list | None:
        rows = ok(cli("worker", "list", "--json")).json()
        return rows if len(rows) == 2 and all(w["alive"] for w in rows) else None

    workers = wait_for(two_alive, message="A to register again")
    ids = sorted(w["id"] for w in workers)
    assert len(set(ids)) == 2 and first["id"] not in ids and second["id"] in ids
    job = show(cli, "j")
    assert (job["state"], job["attempts"], outcomes(job)) == ("processing", 2, ["lost", None])
    assert run_count(tmp_path) == 2

    stopped = ok(cli("worker", "stop", "--force", "--json")).json()
    assert sorted(stopped["stopped"]) == ids
    assert gone(first["pid"]) and gone(second["pid"])
    job = show(cli, "j")
    assert (job["state"], outcomes(job)) == ("pending", ["lost", "interrupted"])


def test_a_foreground_worker_whose_reader_goes_away_keeps_working(cli, home, tmp_path):
    """`worker start --foreground | head -1`: the echo hits a closed pipe; the worker stops
    echoing and runs every job once, none is charged an attempt it never ran."""
    closed, out = tmp_path / "closed", tmp_path / "out"
    ok(
        cli(
            "enqueue",
            "--id",
            "one",
            f"while [ ! -e {closed} ]; do sleep 0.02; done; echo one >> {out}",
        )
    )
    ok(cli("enqueue", "--id", "two", f"echo two >> {out}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "worker", "start", "--foreground", "--burst"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(home),
        cwd=tmp_path,
    )
    try:
        assert b"started" in proc.stdout.readline()
        proc.stdout.close()  # the reader leaves, as `head -1` does
        closed.touch()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err
    assert out.read_text() == "one\ntwo\n"
    for job_id in ("one", "two"):
        job = show(cli, job_id)
        assert (job["state"], job["attempts"], outcomes(job)) == ("completed", 1, ["completed"])
