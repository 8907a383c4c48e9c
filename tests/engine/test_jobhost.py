"""Both launchers keep one contract (``launch.Launcher``): shared behaviour runs through
``ExecLauncher`` (``sh -c`` per job) and ``JobHost``; the rest is the host's own (isolation
between jobs, its shell's lifetime, its documented differences)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import psutil
import pytest

from helpers import all_gone, marked, marked_command, wait_for
from queuectl_tui import procs
from queuectl_tui.run.launch import CANCEL, INTERRUPT, TAIL_BYTES
from queuectl_tui.run.launch import host as host_module
from queuectl_tui.run.launch.exec import ExecLauncher
from queuectl_tui.run.launch.host import JobHost

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture(scope="module")
def host():
    with JobHost() as value:
        yield value


@pytest.fixture(params=["runner", "jobhost"])
def run(request, tmp_path):
    """``run(command, **options) -> (Result, log text)`` through either launcher."""
    launcher = ExecLauncher() if request.param == "runner" else request.getfixturevalue("host")
    function = launcher.run
    counter = iter(range(1000))

    def call(command: str, **kwargs):
        log = tmp_path / f"attempt{next(counter)}.log"
        options = {
            "cwd": str(tmp_path),
            "env": ENV,
            "log_path": log,
            "max_log_bytes": 1 << 20,
            "timeout": None,
        }
        options.update(kwargs)
        result = function(command, **options)
        return result, log.read_text(errors="replace") if log.exists() else None

    call.kind = request.param
    return call


def both_sleeps(mark: str):
    """True once the job's two sleeps have been seen running (scanning stops then)."""
    state = {"seen": False}

    def check() -> bool:
        state["seen"] = state["seen"] or len(marked(mark, "sleep")) == 2
        return state["seen"]

    return check


def killed(kind: str, sig: int) -> tuple[int, str]:
    """How each runner reports a job that a signal killed (the documented difference)."""
    if kind == "runner":
        return -sig, f"killed by {signal.Signals(sig).name}"
    return 128 + sig, f"exit code {128 + sig}"


# --- shared behaviour ------------------------------------------------------------------------


def test_output_exit_code_and_directory(run, tmp_path):
    result, log = run("echo out; echo err >&2; pwd; echo made > made.txt; exit 3")
    assert (result.outcome, result.exit_code, result.error) == ("failed", 3, "exit code 3")
    assert log == f"out\nerr\n{tmp_path}\n" and result.tail == log
    assert (tmp_path / "made.txt").read_text() == "made\n"
    assert os.stat(tmp_path / "attempt0.log").st_mode & 0o777 == 0o600


def test_sh_syntax_multiline_and_quotes(run):
    command = "x='a b'\nfor w in $x; do printf '[%s]' \"$w\"; done\necho ' \"q\" \\'"
    result, log = run(command)
    assert (result.outcome, log) == ("completed", '[a][b] "q" \\\n')


def test_command_not_found_is_127(run):
    result, log = run("no_such_command_qx --flag")
    assert (result.exit_code, result.error) == (127, "command not found (exit code 127)")
    assert "no_such_command_qx" in log and "not found" in log


def test_a_missing_directory_fails_with_runners_message_and_runs_nothing(run, tmp_path):
    result, log = run("touch ran", cwd=str(tmp_path / "gone"))
    message = f"cannot start: No such file or directory: {tmp_path / 'gone'}"
    assert (result.outcome, result.exit_code, result.error, log) == (
        "failed",
        None,
        message,
        message + "\n",
    )
    assert not (tmp_path / "ran").exists()


def test_exactly_the_given_environment(run, tmp_path):
    result, log = run("env | sort", env={**ENV, "FOO": "bar baz", "PWD": "/elsewhere"})
    # sh sets PWD to its directory when the inherited one names another; the only other addition
    # is the marker recovery finds the job's processes by (PID:start time of the job's leader).
    lines = log.splitlines(keepends=True)
    markers = [line for line in lines if line.startswith(procs.MARKER_VAR + "=")]
    assert len(markers) == 1 and re.fullmatch(rf"{procs.MARKER_VAR}=\d+:[\d.]+\n", markers[0])
    expected = {**ENV, "FOO": "bar baz", "PWD": str(tmp_path)}
    assert [line for line in lines if line not in markers] == sorted(
        f"{k}={v}\n" for k, v in expected.items()
    )


def test_a_symlinked_pwd_naming_the_directory_is_kept(run, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result, log = run(
        'echo "$PWD"; pwd; env | grep -c OLDPWD',
        cwd=str(tmp_path / "real"),
        env={**ENV, "PWD": str(tmp_path / "link")},
    )
    assert log == f"{tmp_path / 'link'}\n{tmp_path / 'link'}\n0\n"


def test_stdin_is_dev_null_and_only_three_descriptors(run):
    result, log = run("cat; ls /proc/self/fd | sort -n | tr '\\n' ' '")
    assert result.outcome == "completed"
    assert log == "0 1 2 3 "  # 3: the directory ls reads


def test_default_signal_dispositions_even_when_the_worker_ignores_them(run):
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        result, log = run(
            "grep SigIgn /proc/self/status; sleep 60 & kill -INT $!; wait $!; echo $?"
        )
    finally:
        signal.signal(signal.SIGHUP, previous)
    ignored = int(log.split()[1], 16)
    if run.kind == "runner":
        pytest.skip("runner.run passes the worker's ignored signals on (SIGHUP here)")
    assert ignored == 0, log
    assert log.split()[2] == "130"  # SIGINT reached the background sleep


def test_the_job_leads_its_own_group_and_on_start_gets_it_before_the_command(run, tmp_path):
    seen = {}

    def on_start(pid, started):
        proc = psutil.Process(pid)
        seen.update(
            pid=pid,
            pgid=os.getpgid(pid),
            created=proc.create_time(),
            started=started,
            ran=(tmp_path / "ran").exists(),
        )

    result, log = run("touch ran; ps -o pgid= -p $(sh -c 'echo $PPID')", on_start=on_start)
    assert seen["pgid"] == seen["pid"] and seen["created"] == seen["started"]
    assert not seen["ran"], "the command ran before on_start returned"
    assert int(log) == seen["pid"]


def test_if_on_start_raises_the_command_never_runs(run, tmp_path):
    def refuse(pid, started):
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError):
        run("touch ran", on_start=refuse)
    assert not (tmp_path / "ran").exists()
    result, log = run("echo next")  # and the next job is fine
    assert (result.outcome, log) == ("completed", "next\n")


def test_timeout_kills_the_whole_tree(run, mark):
    running = both_sleeps(mark)
    result, _ = run(marked_command(mark, "sh -c 'sleep 60 & sleep 60'"), timeout=1, tick=running)
    assert running(), "the job's two sleeps never ran"
    assert (result.outcome, result.error) == ("timeout", "timed out after 1s")
    assert result.exit_code == killed(run.kind, signal.SIGKILL)[0]
    all_gone(mark)


def test_cancel_and_interrupt_from_tick_kill_the_tree(run, mark):
    for answer, outcome, error in (
        (CANCEL, "cancelled", "cancelled"),
        (INTERRUPT, "interrupted", "interrupted: worker stopped by force"),
    ):
        running = both_sleeps(mark)
        result, _ = run(
            marked_command(mark, "sh -c 'sleep 60 & sleep 60'"),
            tick=lambda answer=answer, running=running: answer if running() else None,
        )
        assert (result.outcome, result.error) == (outcome, error)
        all_gone(mark)


def test_what_the_job_leaves_behind_dies_with_it(run, mark):
    result, log = run(marked_command(mark, "sleep 60 & echo left"))
    assert (result.outcome, log) == ("completed", "left\n")
    all_gone(mark)


def test_a_signal_kill_is_reported(run):
    result, _ = run("kill -TERM $(sh -c 'echo $PPID')")
    code, error = killed(run.kind, signal.SIGTERM)
    assert (result.outcome, result.exit_code, result.error) == ("failed", code, error)


def test_output_over_the_cap_is_dropped_and_counted(run):
    result, log = run("head -c 100000 /dev/zero | tr '\\0' a; echo; echo END", max_log_bytes=2048)
    assert log.startswith("a" * 2048) and len(log) == 2048 + len(
        "\n[queuectl: output over 2048 bytes; 97957 bytes not kept]\n"
    )
    assert log.endswith("[queuectl: output over 2048 bytes; 97957 bytes not kept]\n")
    assert result.tail.endswith("a\nEND\n") and len(result.tail) == TAIL_BYTES


def test_tick_is_called_about_every_50ms(run):
    calls = []
    result, _ = run("sleep 0.5", tick=lambda: calls.append(1))
    assert result.outcome == "completed" and 3 <= len(calls) <= 11


# --- the host's own ---------------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path):
    """A JobHost of its own and ``go(command, **options) -> (Result, log)`` on it."""
    host = JobHost()
    counter = iter(range(1000))

    def go(command: str, **kwargs):
        log = tmp_path / f"h{next(counter)}.log"
        options = {
            "cwd": str(tmp_path),
            "env": ENV,
            "log_path": log,
            "max_log_bytes": 1 << 20,
            "timeout": None,
        }
        options.update(kwargs)
        # a log is made at the job's first byte: no file, no output
        return host.run(command, **options), log.read_text() if log.exists() else ""

    go.host = host
    yield go
    host.close()


def test_nothing_of_one_job_reaches_the_next(fresh, tmp_path):
    (tmp_path / "sub").mkdir()
    first, _ = fresh(
        "x=1; export Y=2; f() { :; }; trap 'echo bye' EXIT; cd sub; umask 077;"
        "exec 7>/dev/null; set -eu; alias ll=ls"
    )
    assert first.outcome == "completed"
    result, log = fresh(
        'echo "${x-unset} ${Y-unset} $(pwd) $(umask)"; command -v f || echo nof;'
        "command -v ll || echo noalias; ls /proc/self/fd | sort -n | tr '\\n' ' '; "
        'echo "[$undefined]"; false; echo still'
    )
    assert (
        log == f"unset unset {tmp_path} {os.popen('umask').read().strip()}\n"
        "nof\nnoalias\n0 1 2 3 []\nstill\n"
    )


def test_a_background_writer_never_lands_in_the_next_log(fresh, tmp_path):
    """A writer that escaped the job's group (setsid) keeps writing; the next job's log holds
    only the next job's output."""
    result, log = fresh(
        "setsid sh -c 'while :; do echo leak || exit; sleep 0.01; done' & echo first"
    )
    assert log.startswith("first\n")
    result, log = fresh("sleep 0.2; echo second")
    assert log == "second\n"


def test_dollar_dollar_is_the_jobs_own_pid(fresh):
    """A job that mentions ``$$`` gets a shell of its own (exec'd by its subshell of the host,
    which is then its parent); any other job's ``$PPID`` is the worker, as under ``sh -c``."""
    started = []
    result, log = fresh("echo $$ $PPID", on_start=lambda pid, t: started.append(pid))
    shell, parent = map(int, log.split())
    assert shell == started[0] and parent == fresh.host.pid
    assert int(fresh("echo $PPID")[1]) == os.getpid()


def test_a_different_environment_restarts_the_host(fresh):
    fresh("true")
    first = fresh.host._proc.pid
    fresh("true")
    assert fresh.host._proc.pid == first
    result, log = fresh('echo "$A"', env={**ENV, "A": "1"})
    assert log == "1\n" and fresh.host._proc.pid != first


def test_a_killed_idle_host_is_replaced(fresh):
    fresh("true")
    os.kill(fresh.host._proc.pid, signal.SIGKILL)
    result, log = fresh("echo again")
    assert (result.outcome, log) == ("completed", "again\n")


def test_a_host_killed_mid_job_fails_the_job_and_kills_it(fresh, mark):
    def kill_host():
        if fresh.host._proc and marked(mark, "sleep"):
            os.kill(fresh.host._proc.pid, signal.SIGKILL)

    result, _ = fresh(marked_command(mark, "sleep 60"), tick=kill_host)
    assert result.outcome == "failed" and result.error.startswith("job host died")
    all_gone(mark)
    assert fresh("echo fine")[1] == "fine\n"


def test_close_ends_the_host(fresh):
    fresh("true")
    proc = psutil.Process(fresh.host._proc.pid)
    fresh.host.close()
    assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE


def test_files_another_thread_opens_while_a_job_ends_stay_open(fresh, tmp_path, monkeypatch):
    # The worker's heartbeat thread opens its database connection whenever it likes: a file
    # it opens while a job's output drains must stay its own. (The job's pipe was closed twice,
    # once before the drain and once after it: the second close took the number the other
    # thread had been given, and its database reads then reached a pipe: "disk I/O error".)
    opened: list[tuple[int, int]] = []

    def open_some() -> None:
        for i in range(64):  # enough to take any number freed below
            fd = os.open(tmp_path / f"other{i}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            opened.append((fd, os.fstat(fd).st_ino))

    drain = host_module._drain

    def drain_beside_another_thread(fd, sink):
        thread = threading.Thread(target=open_some)
        thread.start()
        thread.join()
        drain(fd, sink)

    monkeypatch.setattr(host_module, "_drain", drain_beside_another_thread)
    result, log = fresh("echo done")
    assert (result.outcome, log) == ("completed", "done\n")
    try:
        for fd, inode in opened:
            assert os.fstat(fd).st_ino == inode, f"descriptor {fd} was closed under its owner"
    finally:
        for fd, _ in opened:
            try:
                os.close(fd)
            except OSError:
                pass


# --- the next job, sent ahead -------------------------------------------------------------------


def test_a_job_sent_ahead_runs_when_asked_for_with_its_own_output(fresh, tmp_path):
    started = []
    nxt = ("echo second; exit 3", str(tmp_path), ENV)
    first, log1 = fresh("echo first", then=nxt)
    second, log2 = fresh(*nxt[:1], on_start=lambda pid, t: started.append(pid))
    assert (first.exit_code, log1) == (0, "first\n")
    assert (second.outcome, second.exit_code, log2) == ("failed", 3, "second\n")
    assert started and second.cost.pids == {started[0]}


def test_a_job_sent_ahead_but_not_asked_for_never_runs(fresh, tmp_path):
    fresh("true", then=("touch ran", str(tmp_path), ENV))
    result, log = fresh("echo other")
    assert (result.outcome, log) == ("completed", "other\n")
    assert not (tmp_path / "ran").exists()
    fresh("true", then=("touch ran", str(tmp_path), ENV))
    fresh.host.close()  # nothing asked for at all
    assert fresh("echo again")[1] == "again\n" and not (tmp_path / "ran").exists()


def test_a_host_lost_while_sending_the_next_job_still_ends_the_running_one(
    fresh, tmp_path, monkeypatch, mark
):
    """The running job is already let go when the next one is sent: if that send finds the
    host gone, the running job is still driven to its end (here: killed with its tree, as a
    job whose host died is), never left running unwatched."""
    from queuectl_tui.run.launch import host as jobhost

    def host_gone(*args):
        os.kill(fresh.host._proc.pid, signal.SIGKILL)
        raise jobhost._HostGone("broken pipe")

    monkeypatch.setattr(fresh.host, "_queue", host_gone)
    result, _ = fresh(marked_command(mark, "sleep 60"), then=("true", str(tmp_path), ENV))
    assert result.outcome == "failed" and result.error.startswith("job host died")
    all_gone(mark)
    assert fresh("echo fine")[1] == "fine\n"


def test_a_job_sent_ahead_waits_for_its_gate(fresh, tmp_path):
    """It is forked as soon as the job before it ends, but runs nothing until its process is
    noted: if noting it fails, it exits without running."""
    fresh("true", then=("touch ran", str(tmp_path), ENV))

    def refuse(pid, started):
        raise OSError("cannot note it")

    with pytest.raises(OSError):
        fresh("touch ran", on_start=refuse)
    assert not (tmp_path / "ran").exists()
    assert fresh("echo fine")[1] == "fine\n"


SCRIPT = """
import os, sys
from pathlib import Path
from queuectl_tui.run.launch.host import JobHost
host = JobHost()
opts = dict(cwd=sys.argv[1], env={'PATH': os.environ['PATH']}, log_path=Path(sys.argv[1]) / 'log',
            max_log_bytes=1 << 20, timeout=None)
host.run('true', **opts)
print(host._proc.pid, flush=True)
if sys.argv[2] == 'stopped':  # by a job, say: it would never read the end of its input
    os.kill(host._proc.pid, 19)
if sys.argv[2] in ('idle', 'stopped'):
    os.kill(os.getpid(), 9)
def die(pid, started):
    print(pid, flush=True)
    os._exit(9)
host.run('touch ran', on_start=die, **opts)
"""


@pytest.mark.parametrize("when", ["idle", "before-go", "stopped"])
def test_the_host_does_not_outlive_a_killed_worker(tmp_path, when):
    """A SIGKILLed worker's host ends (it reads end-of-file; a stopped one is killed by the
    kernel: its parent-death signal); a job not yet released by the worker exits without
    running its command."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), when],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode in (-9, 9), proc.stderr
    for pid in map(int, proc.stdout.split()):
        wait_for(
            lambda pid=pid: (
                not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            ),
            timeout=10,
            message=f"process {pid} to end",
        )
    assert not (tmp_path / "ran").exists()


# --- nothing a job does may wedge its worker (each in a process of its own, with a deadline) ---

HARNESS = """
import json, os, signal, sys
from pathlib import Path
from queuectl_tui.run.launch import CANCEL, INTERRUPT
from queuectl_tui.run.launch import host as host_module
from queuectl_tui.run.launch.exec import ExecLauncher
from queuectl_tui.run.launch.host import JobHost

tmp = Path(sys.argv[1])
ENV = {"PATH": os.environ["PATH"]}
counter = iter(range(1000))
host, sh_c = JobHost(), ExecLauncher()
results = []


def run(command, way="host", **options):
    log = tmp / f"job{next(counter)}.log"
    options = {"cwd": str(tmp), "env": ENV, "log_path": log, "max_log_bytes": 1 << 20,
               "timeout": None, **options}
    result = (host if way == "host" else sh_c).run(command, **options)
    results.append({"outcome": str(result.outcome), "code": result.exit_code,
                    "error": result.error,
                    "log": log.read_text(errors="replace") if log.exists() else "",
                    "peak": result.cost.peak_rss_bytes if result.cost else None})


def once(name, answer):
    # A tick that answers once the file ``name`` exists.
    stop = {"cancel": CANCEL, "interrupt": INTERRUPT}[answer]
    return lambda: stop if (tmp / name).exists() else None


exec(sys.argv[2])
host.close()
print(json.dumps(results))
"""


def scenario(tmp_path, body: str, timeout: float = 45) -> list[dict]:
    """Run ``body`` (Python with ``run``, ``host``, ``once``, ``ENV``, ``tmp``) in a process of
    its own: a worker that a job wedges fails the test at ``timeout`` instead of hanging the
    suite. Returns one dict per ``run`` (outcome, code, error, log, peak)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", HARNESS, str(tmp_path), body],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"wedged: the jobs had not all ended after {timeout}s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


#: A command over 64 KiB (a pipe's size) once quoted, which says it ran (as harness code).
HUGE = """(\"printf ran > huge.txt; : '\" + 'a' * 70_000 + \"'\")"""


@pytest.mark.parametrize("running", ["timeout", "flood", "force"])
def test_a_held_job_larger_than_a_pipe_never_wedges_the_one_running(tmp_path, mark, running):
    """The next job is sent ahead only if the pipe takes it at once: behind a running job the
    host reads nothing, and a blocked send would leave that job unwatched (its timeout, its
    output, a forced stop)."""
    command, options, expected = {
        "timeout": (marked_command(mark, "sleep 120"), "timeout=1", "timeout"),
        "flood": ("yes | head -c 1000000; echo end", "", "completed"),
        "force": (
            marked_command(mark, "touch started; sleep 120"),
            "tick=once('started', 'interrupt')",
            "interrupted",
        ),
    }[running]
    first, second = scenario(
        tmp_path, f"run({command!r}, then=({HUGE}, str(tmp), ENV), {options})\nrun({HUGE})"
    )
    assert first["outcome"] == expected, first
    if running == "flood":
        assert len(first["log"]) == 1_000_004 and first["log"].endswith("y\nend\n")
    assert second["outcome"] == "completed" and (tmp_path / "huge.txt").read_text() == "ran"
    all_gone(mark)


#: The job's shell is ``$$`` (it mentions it); the host is its parent.
STOP_HOST = "kill -STOP $(ps -o ppid= -p $$)"


@pytest.mark.parametrize("end", ["timeout", "cancel", "interrupt", "its-own"])
def test_a_job_that_stops_its_host_is_recorded_as_it_was_and_the_host_replaced(tmp_path, mark, end):
    """A host that does not answer counts as gone: killed, replaced, and the job recorded as
    what it was (timed out, cancelled, killed by a forced stop, or its own exit code)."""
    command, options, expected = {
        "timeout": (
            f"echo x; {STOP_HOST}; sleep 120",
            "timeout=2",
            ("timeout", "timed out after 2s"),
        ),
        "cancel": (
            f"echo x; {STOP_HOST}; touch stopped; sleep 120",
            "tick=once('stopped', 'cancel')",
            ("cancelled", "cancelled"),
        ),
        "interrupt": (
            f"echo x; {STOP_HOST}; touch stopped; sleep 120",
            "tick=once('stopped', 'interrupt')",
            ("interrupted", "interrupted: worker stopped by force"),
        ),
        "its-own": (f"echo x; {STOP_HOST}; exit 4", "", ("failed", "exit code 4")),
    }[end]
    body = (
        f"run('true')\nbefore = host.pid\nrun({marked_command(mark, command)!r}, {options})\n"
        "run('echo fine')\nresults.append(host.pid != before)"
    )
    _, job, after, replaced = scenario(tmp_path, body)
    assert ((job["outcome"], job["error"]), job["log"]) == (expected, "x\n"), job
    assert (after["outcome"], after["log"], replaced) == ("completed", "fine\n", True)
    all_gone(mark)


def test_a_stopped_idle_host_is_replaced(tmp_path):
    _, job = scenario(tmp_path, "run('true')\nos.kill(host.pid, signal.SIGSTOP)\nrun('echo again')")
    assert (job["outcome"], job["log"]) == ("completed", "again\n")


@pytest.mark.parametrize("way", ["host", "runner"])
def test_a_job_that_stops_itself_is_paused_until_its_timeout(tmp_path, way):
    [job] = scenario(tmp_path, f"run('echo x; kill -STOP $$', way={way!r}, timeout=2)")
    assert (job["outcome"], job["error"], job["log"]) == ("timeout", "timed out after 2s", "x\n")


@pytest.mark.parametrize("way", ["host", "runner"])
def test_dollar_dollar_and_self_signals_are_the_jobs_own(tmp_path, way):
    """As under ``sh -c``: ``$$`` is the job's shell, a signal it sends itself reaches it (its
    trap runs, or it dies of it), and files named with ``$$`` are its own."""
    body = "\n".join(
        f"run({command!r}, way={way!r}, timeout=20, on_start=lambda pid, t: "
        f"(tmp / 'pids').open('a').write(f'{{pid}}\\n'))"
        for command in (
            "echo $$ > pid; kill $$; echo survived",
            "trap 'echo caught; exit 0' USR1; kill -USR1 $$; sleep 10; echo missed",
            "kill -INT $$; echo survived",
            "set -C; : > lock.$$ && echo locked",
            "set -C; : > lock.$$ && echo locked",
        )
    )
    term, usr1, intr, lock1, lock2 = scenario(tmp_path, body)
    killed_by = {
        "host": lambda sig: (128 + sig, f"exit code {128 + sig}"),
        "runner": lambda sig: (-sig, f"killed by {signal.Signals(sig).name}"),
    }[way]
    assert ((term["outcome"], term["code"], term["error"]), term["log"]) == (
        ("failed", *killed_by(signal.SIGTERM)),
        "",
    )
    assert int((tmp_path / "pid").read_text()) == int((tmp_path / "pids").read_text().split()[0])
    assert (usr1["outcome"], usr1["log"]) == ("completed", "caught\n")
    assert ((intr["outcome"], intr["code"], intr["error"]), intr["log"]) == (
        ("failed", *killed_by(signal.SIGINT)),
        "",
    )
    assert [(j["outcome"], j["log"]) for j in (lock1, lock2)] == [("completed", "locked\n")] * 2


def test_no_shell_state_of_one_job_reaches_the_next_not_even_dollar_bang(tmp_path):
    """The next job sees what the first job of a fresh host sees: no ``$!`` (the previous
    job's subshell), ``$?``, options, traps, functions or aliases of an earlier job."""
    state = (
        'echo "[$?] [${OLDPWD-unset}] [$-]"; trap; set +o | sort | tr "\\n" " "; echo; '
        "alias; command -v f || echo nof"
    )
    body = (
        f"run({state!r})\nrun('echo \"[$!]\"')\n"
        "run(\"sleep 0 & wait; x=1; f() { :; }; alias ll=ls; trap 'echo bye' EXIT INT; "
        'set -o noglob -o errexit -o nounset; cd /; false")\n'
        f"run({state!r})\nrun('echo \"[$!]\"')"
    )
    fresh_state, fresh_bang, _, state_after, bang_after = scenario(tmp_path, body)
    assert state_after["log"] == fresh_state["log"] and "nof\n" in state_after["log"]
    assert bang_after["log"] == fresh_bang["log"] == "[]\n"


# --- paused, not ended ----------------------------------------------------------------------------


def test_a_job_stopped_by_sigstop_is_paused_and_runs_on_when_continued(run, tmp_path, mark):
    """A stopped job is paused, not ended (the host's ``wait`` returns 147 for it): the runner
    keeps waiting, says so to ``on_pause``, and the job ends as it would have."""
    pids, seen = [], []

    def tick():
        if not (tmp_path / "started").exists():
            return None
        if not seen:
            os.killpg(pids[0], signal.SIGSTOP)
        elif seen[-1]:
            os.killpg(pids[0], signal.SIGCONT)
        return None

    result, log = run(
        marked_command(mark, "touch started; sleep 0.3; echo done"),
        timeout=30,
        on_start=lambda pid, t: pids.append(pid),
        tick=tick,
        on_pause=lambda paused: seen.append(paused) if paused or seen else None,
    )
    assert (result.outcome, result.exit_code, log) == ("completed", 0, "done\n")
    assert seen[0] is True and seen[-1] is False


def test_a_paused_job_still_times_out(run, tmp_path, mark):
    pids = []

    def tick():
        if (tmp_path / "started").exists():
            os.killpg(pids[0], signal.SIGSTOP)

    result, _ = run(
        marked_command(mark, "touch started; sleep 60"),
        timeout=1,
        on_start=lambda pid, t: pids.append(pid),
        tick=tick,
    )
    assert (result.outcome, result.error) == ("timeout", "timed out after 1s")
    all_gone(mark)


# --- what a job cost ------------------------------------------------------------------------------


def test_a_job_of_true_has_a_peak_memory_figure_of_its_own(run):
    """Not empty, and not the worker's own size (a child of the worker starts out with it as
    its kernel peak)."""
    result, _ = run("true")
    peak = result.cost.peak_rss_bytes
    assert peak is not None and peak < 20 * 1024 * 1024, result.cost
    if run.kind == "jobhost":  # a job's shell that has run a builtin: about 1 MB
        assert peak >= 256 * 1024, result.cost
