"""Control and scripting through the real CLI: wait, enqueue --after/--wait, logs --follow,
restart, pause/resume, queue list/limit, edit; and the races with real worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from helpers import cli_env, ok, snapshot, user_error, wait_for
from queuectl_tui.store.models import STATES

BURST = ("worker", "start", "--foreground", "--burst")


def show(cli, job_id: str) -> dict:
    return ok(cli("show", job_id, "--json")).json()


def popen(home, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", *args],
        cwd=home.parent,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def procs():
    """Processes a test starts in the background: reaped after it."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# --- enqueue --after ----------------------------------------------------------------------------


def test_after_holds_a_job_until_its_dependencies_complete(cli, home):
    ok(cli("enqueue", "--id", "a", "echo a >> order"))
    ok(cli("enqueue", "--id", "b", "echo b >> order"))
    ok(
        cli(
            "enqueue",
            "--id",
            "c",
            "--after",
            "a",
            "--after",
            "b",
            "--priority",
            "9",
            "echo c >> order",
        )
    )
    job = show(cli, "c")
    assert job["dependencies"] == [{"id": "a", "state": "pending"}, {"id": "b", "state": "pending"}]
    assert "dependencies not completed yet: a (pending), b (pending)" in job["why"]
    text = ok(cli("show", "c")).out
    assert "a (pending), b (pending)" in text
    ok(cli(*BURST))
    assert [show(cli, i)["state"] for i in "abc"] == ["completed"] * 3
    assert (home.parent / "order").read_text() == "a\nb\nc\n"  # c last despite its priority


def test_after_an_unknown_job_is_refused_and_nothing_changes(cli, home):
    ok(cli("enqueue", "--id", "a", "true"))
    before = snapshot(home / "queuectl.db")
    assert "no job with id 'nope'" in user_error(cli("enqueue", "--after", "nope", "true"), 2)
    lines = (
        '{"id": "x", "command": "true", "after": ["a"]}\n'
        '{"id": "y", "command": "true", "after": ["z"]}\n'
    )
    line = user_error(cli("enqueue", "-f", "-", input=lines), 2)
    assert "line 2" in line and "'z'" in line
    assert "after" in user_error(cli("enqueue", '{"command": "true", "after": "a"}'), 2)
    assert snapshot(home / "queuectl.db") == before


def test_after_in_a_file_may_name_a_job_earlier_in_it(cli):
    lines = '{"id": "x", "command": "echo x"}\n{"id": "y", "command": "echo y", "after": ["x"]}\n'
    assert ok(cli("enqueue", "-f", "-", input=lines)).out == "x\ny\n"
    assert show(cli, "y")["dependencies"] == [{"id": "x", "state": "pending"}]


def test_after_a_dead_job_goes_to_the_dlq_and_says_so(cli):
    ok(cli("enqueue", "--id", "bad", "--max-retries", "0", "exit 1"))
    ok(cli(*BURST))
    result = ok(cli("enqueue", "--id", "next", "--after", "bad", "true"))
    assert result.out == "next\n"
    assert "next went to the DLQ: dependency bad failed" in result.err
    assert (show(cli, "next")["state"], show(cli, "next")["last_error"]) == (
        "dead",
        "dependency bad failed",
    )
    result = ok(
        cli("enqueue", "-f", "-", input='{"id": "n2", "command": "true", "after": ["bad"]}\n')
    )
    assert "n2 went to the DLQ" in result.err


def test_a_dependency_that_dies_sends_its_dependents_to_the_dlq_exactly_once(cli, db, home):
    from queuectl_tui import engine
    from queuectl_tui.store.models import Attempt, Job

    ok(cli("enqueue", "--id", "root", "--max-retries", "0", "sleep 0.2; exit 1"))
    for n in range(6):
        ok(cli("enqueue", "--id", f"d{n}", "--after", "root" if n < 3 else f"d{n - 3}", "true"))
    ok(cli("worker", "start", "-n", "3", "--burst"))
    wait_for(lambda: engine.counts()["dead"] == 7, message="root and its dependents dead")
    rows = {j.id: (j.state, j.last_error) for j in Job.select()}
    assert rows == {
        "root": ("dead", "exit code 1"),
        **{f"d{n}": ("dead", "dependency root failed") for n in range(3)},
        **{f"d{n}": ("dead", f"dependency d{n - 3} failed") for n in range(3, 6)},
    }
    assert Attempt.select().count() == 1  # none of the dependents ran
    assert engine.counts() == {
        "pending": 0,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "dead": 7,
    }


def test_a_job_whose_dependency_completes_is_claimed_by_the_finishing_worker_at_once(cli, db):
    from queuectl_tui.store.models import Attempt, Job

    ok(cli("enqueue", "--id", "first", "sleep 0.2"))
    ok(cli("enqueue", "--id", "second", "--after", "first", "true"))
    ok(cli("worker", "start", "-n", "2", "--burst"))
    wait_for(lambda: Job.get(Job.id == "second").state == "completed", message="second done")
    [a] = Attempt.select().join(Job).where(Job.id == "first")
    [b] = Attempt.select().join(Job).where(Job.id == "second")
    # Claimed in the transaction that recorded the first's end: by the same worker (the other
    # one, idle, would be woken only by that commit), and started after the first ended.
    assert b.worker_id == a.worker_id and b.started_at >= a.finished_at


# --- wait, enqueue --wait -----------------------------------------------------------------------


def test_wait_exit_codes_and_lines(cli):
    ok(cli("enqueue", "--id", "good", "true"))
    ok(cli("enqueue", "--id", "bad", "--max-retries", "0", "echo nope; exit 4"))
    ok(cli(*BURST))
    assert ok(cli("wait", "good")).out == "good: completed\n"
    result = cli("wait", "good", "bad")
    assert (result.code, result.out) == (1, "good: completed\nbad: dead (exit code 4)\n")
    result = cli("wait", "good", "ghost")
    assert (result.code, result.out, result.err) == (
        1,
        "good: completed\n",
        "error: no job with id 'ghost'\n",
    )
    lines = [json.loads(line) for line in cli("wait", "--all", "--json").out.splitlines()]
    assert lines == []  # nothing was left unfinished: --all waits for jobs not ended yet
    ok(cli("enqueue", "--id", "later", "--delay", "3600", "true"))
    result = cli("wait", "later", "--timeout", "0.2")
    assert (result.code, result.out) == (124, "")
    assert "timed out" in result.err
    assert "give job ids" in user_error(cli("wait"), 2)
    assert "give job ids" in user_error(cli("wait", "good", "--all"), 2)
    assert user_error(cli("wait", "good", "--timeout", "nan"), 2)


def sleeping_on_the_wal(proc: subprocess.Popen) -> bool:
    """Has ``proc`` (a ``wait``) made its first look? It then sleeps on an inotify watch of
    the database's -wal file (``wake``), made at its first sleep."""
    fds = f"/proc/{proc.pid}/fd"
    try:
        return any(os.readlink(f"{fds}/{fd}") == "anon_inode:inotify" for fd in os.listdir(fds))
    except OSError:  # it exited, or closed a descriptor as we looked
        return False


def test_wait_for_a_queue_includes_jobs_added_meanwhile(cli, home, procs):
    ok(cli("enqueue", "--id", "q1", "--queue", "q", "true"))
    ok(cli("enqueue", "--id", "other", "--queue", "r", "--delay", "3600", "true"))
    waiter = popen(home, "wait", "--queue", "q", "--timeout", "60")
    procs.append(waiter)
    # A job that ended before wait's first look is no news to it: the worker starts after.
    wait_for(lambda: sleeping_on_the_wal(waiter), timeout=30, message="wait's first look")
    ok(cli("enqueue", "--id", "q2", "--queue", "q", "--max-retries", "0", "exit 1"))
    ok(cli("worker", "start", "--burst", "--queue", "q"))
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 1, err
    assert sorted(out.splitlines()) == ["q1: completed", "q2: dead (exit code 1)"]


def test_enqueue_wait_prints_the_id_then_waits(cli, home, procs):
    ok(cli("worker", "start"))
    result = ok(cli("enqueue", "--id", "w", "--wait", "echo hi"))
    assert result.out == "w\nw: completed\n"
    result = cli("enqueue", "--id", "w2", "--max-retries", "0", "--wait", "exit 2")
    assert (result.code, result.out) == (1, "w2\nw2: dead (exit code 2)\n")


@pytest.mark.alone  # it times wait's exit
def test_wait_returns_right_after_the_last_job_ends(cli, db, home, procs):
    """Woken by the database's change counter, as idle workers are, not by a 1 s poll: three
    times over, the gap from the job's end to wait's exit stays well under a second."""
    from queuectl_tui.store.models import Job

    ok(cli("worker", "start"))
    gaps = []
    for n in range(3):
        ok(cli("enqueue", "--id", f"j{n}", f"sleep 0.{5 + n}"))
        waiter = popen(home, "wait", f"j{n}")
        procs.append(waiter)
        waiter.wait(timeout=60)
        exited = time.time()
        assert waiter.returncode == 0, waiter.stderr.read()
        gaps.append(exited - Job.get(Job.id == f"j{n}").finished_at)
    assert max(gaps) < 0.5, gaps  # ~0.01-0.1 s unloaded: the end is seen within one WAKE_POLL


# --- logs --follow ------------------------------------------------------------------------------


def test_logs_follow_waits_for_the_start_and_follows_retries(cli, home, procs):
    flaky = "if [ -e ran ]; then echo second; else touch ran; echo first; exit 1; fi"
    ok(cli("enqueue", "--id", "f", "--max-retries", "1", "--backoff-base", "1", flaky))
    follower = popen(home, "logs", "f", "-f")
    procs.append(follower)
    ok(cli("worker", "start", "--burst"))
    out, err = follower.communicate(timeout=60)
    assert (follower.returncode, out) == (0, "first\nsecond\n"), err
    assert "--- attempt 2 ---" in err
    ok(cli("enqueue", "--id", "g", "--max-retries", "0", "echo bye; exit 3"))
    follower = popen(home, "logs", "g", "--follow")
    procs.append(follower)
    ok(cli(*BURST))
    out, err = follower.communicate(timeout=60)
    assert (follower.returncode, out) == (1, "bye\n")
    assert "job 'g' is dead: exit code 3" in err


# --- restart ------------------------------------------------------------------------------------


def test_restart_runs_a_finished_job_again_and_keeps_its_attempts(cli):
    ok(cli("enqueue", "--id", "r", "--max-retries", "0", "echo run >> runs"))
    ok(cli("enqueue", "--id", "bad", "--max-retries", "0", "exit 1"))
    ok(cli(*BURST))
    assert ok(cli("restart", "r", "bad")).out == "r: pending\nbad: pending\n"
    job = show(cli, "r")
    assert (job["state"], job["attempts"], len(job["attempt_list"])) == ("pending", 0, 1)
    ok(cli(*BURST))
    job = show(cli, "r")
    assert [a["number"] for a in job["attempt_list"]] == [1, 2] and job["state"] == "completed"
    ok(cli("enqueue", "--id", "p", "--delay", "3600", "true"))
    assert "'p' is pending" in user_error(cli("restart", "r", "p"), 1)
    assert show(cli, "r")["state"] == "completed"
    assert "no job" in user_error(cli("restart", "ghost"), 1)


# --- pause, resume, queues ----------------------------------------------------------------------


def test_pause_a_queue_shows_in_status_and_show_and_survives(cli):
    ok(cli("enqueue", "--id", "held", "--queue", "q", "true"))
    ok(cli("enqueue", "--id", "free", "--queue", "r", "true"))
    assert ok(cli("pause", "--queue", "q")).out == "paused queue(s) q\n"
    assert ok(cli("status", "--json")).json()["paused_queues"] == ["q"]
    assert "paused: q" in ok(cli("status")).out
    ok(cli(*BURST))
    job = show(cli, "held")
    assert job["state"] == "pending" and job["queue_paused"] is True
    assert "its queue 'q' is paused" in job["why"]
    assert show(cli, "free")["state"] == "completed"
    ok(cli("pause"))
    assert "paused: every queue" in ok(cli("status")).out
    ok(cli("resume", "--queue", "q"))
    assert "paused: every queue but q" in ok(cli("status")).out
    ok(cli(*BURST))
    assert show(cli, "held")["state"] == "completed"
    ok(cli("resume"))
    assert "paused" not in ok(cli("status")).out
    assert "bad queue" in user_error(cli("pause", "--queue", "a b"), 2)


def test_pausing_a_queue_by_its_name_alone_says_how(cli):
    """``pause gpu`` takes gpu for a job id (``pause JOB_ID`` pauses a running job): it fails
    without pausing anything, and says how to name the queue."""
    ok(cli("enqueue", "--id", "train", "--queue", "gpu", "true"))
    line = user_error(cli("pause", "gpu"), 1)
    assert "no job with id 'gpu'" in line and "pause --queue gpu" in line
    assert "resume --queue gpu" in user_error(cli("resume", "gpu"), 1)
    assert ok(cli("status", "--json")).json()["paused_queues"] == []


def test_pause_takes_effect_for_the_next_claim_of_every_worker(cli, db, tmp_path):
    from queuectl_tui.store.models import Job

    ok(cli("worker", "start", "-n", "2"))
    wait_for(lambda: len(ok(cli("worker", "list", "--json")).json()) == 2, message="2 workers")
    ok(cli("pause", "--queue", "held"))
    for n in range(3):
        ok(cli("enqueue", "--id", f"h{n}", "--queue", "held", "true"))
    # After the held jobs, all at once (one at a time, one worker could take each as it came):
    # every worker claims past the held jobs, again and again.
    lines = tmp_path / "open.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"id": f"o{n}", "queue": "open", "command": "sleep 0.3"}) + "\n"
            for n in range(8)
        )
    )
    ok(cli("enqueue", "-f", str(lines)))
    wait_for(
        lambda: Job.select().where(Job.queue == "open", Job.state == "completed").count() == 8,
        message="open queue drained",
    )
    assert {j.state for j in Job.select().where(Job.queue == "held")} == {"pending"}
    from queuectl_tui.store.models import Attempt

    runners = {a.worker_id for a in Attempt.select().join(Job).where(Job.queue == "open")}
    assert len(runners) == 2  # both workers claimed after the pause, neither took a held job
    ok(cli("resume", "--queue", "held"))
    wait_for(
        lambda: Job.select().where(Job.queue == "held", Job.state == "completed").count() == 3,
        message="held queue drained after resume",
    )


def test_queue_list_and_limit(cli):
    ok(cli("enqueue", "--queue", "q", "true"))
    ok(cli("enqueue", "--queue", "q", "--max-retries", "0", "exit 1"))
    ok(cli(*BURST))
    ok(cli("enqueue", "--queue", "q", "--delay", "3600", "true"))
    assert ok(cli("queue", "limit", "q", "2")).out == "queue q: at most 2 running\n"
    ok(cli("pause", "--queue", "idle"))
    rows = ok(cli("queue", "list", "--json")).json()
    assert [
        (
            r["name"],
            r["jobs"]["pending"],
            r["jobs"]["completed"],
            r["jobs"]["dead"],
            r["paused"],
            r["limit"],
        )
        for r in rows
    ] == [("idle", 0, 0, 0, True, None), ("q", 1, 1, 1, False, 2)]
    text = ok(cli("queue", "list")).out
    assert "idle" in text and "yes" in text
    # The states in the order of status and the console, and no limit said as it is typed.
    status = ok(cli("status")).out.splitlines()[0].split()
    header = next(line for line in text.splitlines() if "pending" in line)
    assert sorted(status[:5], key=header.index) == status[:5] == list(STATES)
    idle = next(line for line in text.splitlines() if "idle" in line)
    assert "none" in idle and "-" not in idle
    ok(cli("queue", "limit", "q", "none"))
    assert ok(cli("queue", "list", "--json")).json()[1]["limit"] is None
    for bad in ("-1", "two", "1.5"):
        assert "bad limit" in user_error(cli("queue", "limit", "q", "--", bad), 2)
    assert "bad queue" in user_error(cli("queue", "limit", "a b", "1"), 2)


def test_queue_limit_refuses_digits_that_are_not_ascii(cli):
    """``str.isdigit`` and ``int`` take Arabic-Indic, full-width and superscript digits: a
    limit must be written as the usage says (0-9), so each is refused and nothing is set."""
    for bad in ("\u0663", "\uff13", "\u00b2", "1\u0660"):  # ٣, ３, ², 1٠
        assert "bad limit" in user_error(cli("queue", "limit", "q", bad), 2)
    assert ok(cli("queue", "list", "--json")).json() == []


def test_two_workers_never_exceed_a_queue_limit(cli, home):
    """Stress: 3 workers, limit 2. Each job writes its start and end; at no instant do more
    than two of them run, and two do run side by side."""
    ok(cli("queue", "limit", "q", "2"))
    # one write(2) per line: print() writes its parts one by one when the job's Python is
    # unbuffered (PYTHONUNBUFFERED), and two jobs ending together then mix their lines
    stamp = 'python3 -c "import os, time; os.write(1, b\\"%s %%r\\\\n\\" %% time.time())" >> stamps'
    for _ in range(12):
        ok(cli("enqueue", "--queue", "q", f"{stamp % 'start'}; sleep 0.3; {stamp % 'end'}"))
    ok(cli("worker", "start", "-n", "3", "--burst"))
    wait_for(
        lambda: ok(cli("status", "--json")).json()["jobs"]["completed"] == 12,
        timeout=120,
        message="12 jobs done",
    )
    events = sorted(
        (float(t), kind == "start")
        for kind, t in (line.split() for line in (home.parent / "stamps").read_text().splitlines())
    )
    running = peak = 0
    for _, start in events:  # an end and a start at the same instant: the end first
        running += 1 if start else -1
        peak = max(peak, running)
    assert len(events) == 24 and peak == 2


# --- edit ---------------------------------------------------------------------------------------


def test_edit_changes_a_pending_job(cli):
    ok(cli("enqueue", "--id", "e", "--delay", "3600", "echo old"))
    data = ok(
        cli(
            "edit",
            "e",
            "--command",
            "echo new",
            "--priority",
            "5",
            "--max-retries",
            "1",
            "--timeout",
            "7",
            "--queue",
            "other",
            "--delay",
            "0",
            "--json",
        )
    ).json()
    assert (
        data["command"],
        data["priority"],
        data["max_retries"],
        data["timeout"],
        data["queue"],
    ) == ("echo new", 5, 1, 7, "other")
    assert ok(cli("edit", "e", "--run-at", "2030-01-01T00:00:00Z")).out == "e: edited\n"
    assert show(cli, "e")["run_at"] == "2030-01-01T00:00:00.000Z"


def test_edit_refuses_bad_input_and_a_running_job(cli, home, procs):
    ok(cli("enqueue", "--id", "e", "sleep 30"))
    before = snapshot(home / "queuectl.db")
    for args, words in [
        (("--priority", "x"), "priority"),
        (("--queue", "a b"), "bad queue"),
        (("--command", " "), "empty"),
        ((), "nothing to change"),
        (("--delay", "1", "--run-at", "2030-01-01T00:00:00Z"), "not both"),
        (("--max-retries", "-1"), "max_retries"),
    ]:
        assert words in user_error(cli("edit", "e", *args), 2)
    assert snapshot(home / "queuectl.db") == before
    ok(cli("worker", "start"))
    wait_for(lambda: show(cli, "e")["state"] == "processing", message="e running")
    assert "'e' is processing" in user_error(cli("edit", "e", "--command", "true"), 1)
    assert show(cli, "e")["command"] == "sleep 30"
    assert "no job" in user_error(cli("edit", "ghost", "--priority", "1"), 1)
