"""Long waits say something: a first Ctrl+C, ``worker stop`` while jobs finish, a ``wait`` that
times out; and long work shows a progress bar on a terminal (stderr), never when piped."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from helpers import cli_env, gone, ok, run_here, wait_for

pytestmark = pytest.mark.usefixtures("reap")


def gated(gate: Path, text: str = "done") -> str:
    """A job that runs until the test creates ``gate``."""
    return f"while [ ! -e {gate} ]; do sleep 0.05; done; echo {text}"


def read_until(stream, wanted: str, timeout: float = 30.0) -> str:
    """Lines of a text pipe up to the one containing ``wanted``."""
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert select.select([stream], [], [], max(0.0, deadline - time.monotonic()))[0], seen
        line = stream.readline()
        assert line, f"ended before {wanted!r}: {seen}"
        seen += line
    return seen


# --- long waits say something (item 6) ----------------------------------------------------------


def test_a_first_ctrl_c_says_the_worker_stops_after_the_running_job(cli, home, tmp_path):
    gate = tmp_path / "gate"
    ok(cli("enqueue", "--id", "slow", gated(gate)))
    worker = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "worker", "start", "--foreground"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
    )
    try:
        read_until(worker.stdout, "start  slow")
        worker.send_signal(signal.SIGINT)  # what Ctrl+C sends
        said = read_until(worker.stderr, "Ctrl+C")
        assert said.rstrip().endswith(": stopping after slow ends; Ctrl+C again kills it"), said
        gate.touch()  # the job goes on, and the worker stops after it
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    assert ok(cli("show", "slow", "--json")).json()["state"] == "completed"


def test_worker_stop_says_which_workers_still_run_which_job(cli, home, tmp_path):
    gate = tmp_path / "gate"
    ok(cli("enqueue", "--id", "long-one", gated(gate)))
    [worker] = ok(cli("worker", "start", "--json")).json()
    wait_for(
        lambda: ok(cli("show", "long-one", "--json")).json()["state"] == "processing",
        message="the job to start",
    )
    stop = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "worker", "stop", "--wait", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
    )
    try:
        said = read_until(stop.stderr, "to finish")  # while it waits
        assert re.fullmatch(
            rf"waiting up to [0-9ms]+ for worker {worker['id']} "
            r"\(running long-one\) to finish\n",
            said,
        ), said
        gate.touch()
        out, err = stop.communicate(timeout=60)
    finally:
        if stop.poll() is None:
            stop.kill()
            stop.communicate()
    assert (stop.returncode, out, err) == (0, f"stopped worker(s) {worker['id']}\n", "")
    assert gone(worker["pid"])


def test_a_wait_that_times_out_names_the_first_ten_jobs_left_and_counts_the_rest(db, add):
    for n in range(12):
        add(f"job-{n:02d}")
    result = run_here("wait", "--all", "--timeout", "0")
    assert result.code == 124
    assert result.err == (
        "error: timed out with 12 job(s) not finished: job-00, job-01, job-02, "
        "job-03, job-04, job-05, job-06, job-07, job-08, job-09 and 2 more\n"
    )
    named = run_here("wait", "job-03", "job-07", "--timeout", "0")
    assert named.err == "error: timed out with 2 job(s) not finished: job-03, job-07\n"


# --- progress on long work (item 10) ------------------------------------------------------------


def on_a_terminal(home: Path, *args: str, stdin=None) -> tuple[subprocess.Popen, int, Path]:
    """A command whose stderr is a terminal (a pty, 100 columns) and stdout a file."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    out = home.parent / f"stdout-{time.monotonic_ns()}"
    env = {
        k: v
        for k, v in cli_env(home, TERM="xterm", COLUMNS="100").items()
        if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    with open(out, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "queuectl_tui", *args],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=handle,
            stderr=slave,
            env=env,
            cwd=home.parent,
        )
    os.close(slave)
    return proc, master, out


def screen_until(master: int, wanted: bytes, timeout: float = 30.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        ready = select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]
        assert ready, f"no {wanted!r} on the terminal: {seen[-500:]!r}"
        seen += os.read(master, 65536)
    return seen


def drain(master: int) -> bytes:
    seen = b""
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return seen


def test_wait_on_a_terminal_shows_how_many_jobs_ended_and_stdout_stays_clean(cli, home, db):
    from queuectl_tui import engine

    for job_id in ("a", "b"):
        ok(cli("enqueue", "--id", job_id, "true"))
    proc, master, out = on_a_terminal(home, "wait", "a", "b")
    try:
        screen_until(master, b"0 of 2 ended")  # the bar, once the wait has lasted a moment
        engine.cancel("a")
        screen_until(master, b"1 of 2 ended")
        engine.cancel("b")
        assert proc.wait(timeout=60) == 1  # dead: cancelled
    finally:
        if proc.poll() is None:
            proc.kill()
        drain(master)
    assert out.read_text() == "a: dead (cancelled)\nb: dead (cancelled)\n"  # no bar in it


def test_a_job_that_ends_while_the_bar_appears_is_counted(monkeypatch):
    """The bar appears from a timer thread while the work goes on: a job that ended after the
    bar's first drawing, before that thread had handed the bar over, was never counted (the
    terminal said "0 of 2 ended" until the next job ended, and a wait on the last job stayed
    there for good). The timer thread is held at that moment here."""
    import io
    import threading

    from rich.console import Console
    from rich.progress import Progress

    from queuectl_tui import progress

    monkeypatch.setattr(progress, "AFTER", 0.01)
    drawn, ended = threading.Event(), threading.Event()
    start = Progress.start

    def start_then_hold(shown) -> None:  # the timer thread, just after the first drawing
        start(shown)
        drawn.set()
        ended.wait(30)

    monkeypatch.setattr(Progress, "start", start_then_hold)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    with progress._Drawn("waiting", 2, "ended", console=terminal) as shown:
        assert drawn.wait(30)
        assert "0 of 2 ended" in screen.getvalue()
        shown.advance()  # the waiting thread: a job ended
        ended.set()
        wait_for(
            lambda: "1 of 2 ended" in screen.getvalue(),
            timeout=10,
            message="the bar to count the job that ended",
        )


def test_enqueue_of_a_long_stream_shows_the_lines_read_on_a_terminal(home, db):
    proc, master, out = on_a_terminal(home, "enqueue", "-f", "-", stdin=subprocess.PIPE)
    try:
        proc.stdin.write(b"".join(b'{"command": "true"}\n' for _ in range(3000)))
        proc.stdin.flush()
        screen_until(master, b"3,000 lines")  # counted as they come, a thousand at a time
        proc.stdin.write(b'{"id": "last", "command": "true"}\n')
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        drain(master)
    ids = out.read_text().splitlines()
    assert len(ids) == 3001 and ids[-1] == "last"


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(cli, home):
    ok(cli("enqueue", "--id", "a", "true"))
    result = cli("wait", "a", "--timeout", "1")  # both streams piped
    assert result.code == 124 and result.err == ("error: timed out with 1 job(s) not finished: a\n")


@pytest.fixture
def drawn(monkeypatch):
    """Progress as on a terminal, drawn at once, into what run_here captures as stderr."""
    from queuectl_tui import progress

    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    monkeypatch.setattr(progress, "AFTER", 0)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws as on a terminal
    monkeypatch.setenv("COLUMNS", "120")


def test_clear_and_dlq_retry_all_show_the_jobs_moved(db, add, drawn):
    from queuectl_tui import engine

    for n in range(1200):
        add(f"j{n}")
    for n in range(0, 1200, 2):
        engine.cancel(f"j{n}")
    retried = run_here("dlq", "retry", "--all")
    assert retried.out == "600 dead job(s) back to pending\n"
    assert "moving to pending" in retried.err and "600 of 600 jobs" in retried.err
    cleared = run_here("clear", "--yes")
    assert cleared.out == "deleted 1200 job(s)\n"
    assert "deleting" in cleared.err and "1,200 of 1,200 jobs" in cleared.err


def test_a_schema_upgrade_shows_its_steps(tmp_path, drawn):
    from helpers import make_v1
    from queuectl_tui import store as dbmod

    old = make_v1(tmp_path / "old.db")
    try:
        result = run_here("--db", str(old), "status", "--json")
    finally:
        dbmod.close_db()
    assert result.code == 0 and result.json()["jobs"]["pending"] == 1  # the job of version 1
    steps = dbmod.SCHEMA_VERSION - 1
    assert f"upgrading the database to schema version {dbmod.SCHEMA_VERSION}" in result.err
    assert f"{steps} of {steps} steps" in result.err
