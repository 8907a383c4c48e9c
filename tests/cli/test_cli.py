"""The CLI contract, as a user types and sees it: the command in this process (the `cli` fixture)
or, where a real process matters (workers, signals, its environment), in a subprocess."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import helpers
from helpers import (
    all_gone,
    check_job_json,
    cli_env,
    marked_command,
    ok,
    parse_iso,
    run_cli,
    run_command,
    snapshot,
    user_error,
    wait_for,
)

BURST = ("worker", "start", "--foreground", "--burst")


def show(cli, job_id: str) -> dict:
    return ok(cli("show", job_id, "--json")).json()


# --- enqueue: every way in -----------------------------------------------------------------------


def test_enqueue_plain_command_and_json_spec(cli):
    job_id = ok(cli("enqueue", "echo hi")).out.strip()
    assert len(job_id) >= 8 and show(cli, job_id)["command"] == "echo hi"
    assert (
        ok(cli("enqueue", '{"id": "j1", "command": "make test", "max_retries": 2}')).out == "j1\n"
    )
    job = show(cli, "j1")
    assert (job["command"], job["max_retries"], job["state"], job["attempts"]) == (
        "make test",
        2,
        "pending",
        0,
    )
    data = ok(
        cli(
            "enqueue",
            "--json",
            "--id",
            "j2",
            "--priority",
            "4",
            "--queue",
            "q",
            "--timeout",
            "9",
            "--backoff-base",
            "3",
            "--command",
            "true",
        )
    ).json()
    check_job_json(data)
    assert (data["id"], data["priority"], data["queue"], data["timeout"], data["backoff_base"]) == (
        "j2",
        4,
        "q",
        9,
        3,
    )


@pytest.mark.parametrize(
    "args, stdin, expected",
    [
        (("-",), '{"id": "a", "command": "echo a"}', [("a", "echo a")]),
        ((), '{"id": "a", "command": "echo a"}', [("a", "echo a")]),
        (
            (),
            '{"id": "a", "command": "echo a"}\n{"id": "b", "command": "echo b"}\n',
            [("a", "echo a"), ("b", "echo b")],
        ),
        (
            (),
            '[{"id": "a", "command": "echo a"}, {"id": "b", "command": "echo b"}]',
            [("a", "echo a"), ("b", "echo b")],
        ),
        ((), "echo plain && echo command\n", [(None, "echo plain && echo command")]),
        (("-",), "echo plain\n", [(None, "echo plain")]),
        (
            ("-f", "-"),
            '{"id": "a", "command": "echo a"}\n{"id": "b", "command": "echo b"}',
            [("a", "echo a"), ("b", "echo b")],
        ),
    ],
)
def test_enqueue_reads_specs_from_stdin(cli, args, stdin, expected):
    ids = ok(cli("enqueue", *args, input=stdin)).out.split()
    jobs = ok(cli("list", "--json")).json()[::-1]  # newest first
    assert [j["command"] for j in jobs] == [c for _, c in expected]
    assert [j["id"] for j in jobs] == ids
    for (want_id, _), job in zip(expected, jobs, strict=False):
        assert want_id is None or job["id"] == want_id


def test_enqueue_from_a_file_in_order(cli, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"f{i}", "command": f"echo {i}"}) + "\n" for i in range(3))
    )
    assert ok(cli("enqueue", "-f", str(path))).out.split() == ["f0", "f1", "f2"]
    assert [j["id"] for j in ok(cli("list", "--json")).json()] == ["f2", "f1", "f0"]  # newest first


def test_duplicate_id_is_rejected_and_nothing_changes(cli, home, tmp_path):
    ok(cli("enqueue", "--id", "dup", "echo first"))
    before = snapshot(home / "queuectl.db")
    assert "'dup' already exists" in user_error(cli("enqueue", "--id", "dup", "echo second"), 2)
    # A file where one job clashes with an existing id: nothing of the file is enqueued.
    clash = tmp_path / "clash.jsonl"
    clash.write_text(
        '{"id": "new1", "command": "true"}\n{"id": "dup", "command": "true"}\n'
        '{"id": "new2", "command": "true"}\n'
    )
    assert "nothing enqueued" in user_error(cli("enqueue", "-f", str(clash)), 2)
    # A file that repeats an id within itself.
    twice = tmp_path / "twice.json"
    twice.write_text(
        '[{"id": "x", "command": "true"}, {"id": "y", "command": "true"}, '
        '{"id": "x", "command": "true"}]'
    )
    assert "duplicate job id 'x'" in user_error(cli("enqueue", "-f", str(twice)), 2)
    assert snapshot(home / "queuectl.db") == before
    assert [j["id"] for j in ok(cli("list", "--json")).json()] == ["dup"]


BAD_INPUTS = [
    (("enqueue", '{"command": "echo hi",'), "invalid JSON"),
    (("enqueue", '{"command": "x", "colour": "red"}'), "unknown key 'colour'"),
    (("enqueue", '{"command": 5}'), "command must be a string"),
    (("enqueue", '{"command": "x", "priority": "high"}'), "priority"),
    (("enqueue", '{"command": "x", "max_retries": 1.5}'), "max_retries"),
    (("enqueue", '{"command": "x", "priority": Infinity}'), "priority"),
    (("enqueue", '{"command": "x", "max_retries": NaN}'), "max_retries"),
    (("enqueue", '{"command": "x", "timeout": true}'), "timeout"),
    (("enqueue", '{"command": "x", "state": "completed"}'), "state"),
    (("enqueue", '{"command": ""}'), "command is empty"),
    (("enqueue", ""), "command is empty"),
    (("enqueue", "   "), "command is empty"),
    (("enqueue",), "empty input"),
    (("enqueue", "--run-at", "tomorrow", "true"), "not an ISO-8601 time"),
    (("enqueue", "--run-at", "1900-01-01T00:00:00Z", "true"), "before 1970"),
    (("enqueue", "--max-retries", "-1", "true"), "max_retries"),
    (("enqueue", "--max-retries", "1000", "true"), "max_retries"),
    (("enqueue", "--timeout", "0", "true"), "timeout"),
    (("enqueue", "--timeout", "abc", "true"), "--timeout"),
    (("enqueue", "--delay", "-5", "true"), "delay"),
    (("enqueue", "--priority", "1.5", "true"), "--priority"),
    (("enqueue", "--id", "has space", "true"), "whitespace"),
    (("enqueue", "--queue", "bad queue", "true"), "bad queue"),
    (("enqueue", "--command", "true", "echo other"), "not both"),
    (("enqueue", "-f", "/nonexistent/jobs.json"), "No such file"),
    (("enqueue", '{"command": "x", "run_at": "2030-01-01T00:00:00Z", "delay": 5}'), "not both"),
    (("dlq", "retry"), "give job ids or --all"),
    (("dlq", "retry", "--max-retries", "-1", "--all"), "max_retries"),
    (("dlq", "retry", "--timeout", "0", "--all"), "timeout"),
    (("list", "--state", "sleeping"), "--state"),
    (("list", "--limit", "-1"), "--limit"),
    (("worker", "start", "--count", "0"), "--count"),
    (("clear",), "without --yes"),
    (("clear", "--state", "processing", "--yes"), "--state"),
    (("dlq", "clear"), "without --yes"),
    (("no-such-command",), "No such command"),
]


def test_bad_inputs_exit_2_with_one_line_and_the_database_unchanged(cli, db, home, tmp_path):
    from queuectl_tui import engine, settings, spec

    engine.enqueue([spec.normalize({"id": "keep", "command": "true"})], cwd=str(tmp_path), env={})
    settings.set_value("max_retries", "4")
    before = snapshot(home / "queuectl.db")
    bad_file = tmp_path / "bad.jsonl"
    bad_file.write_text('{"id": "ok1", "command": "true"}\n{"id": "bad", "command": ""}\n')
    cases = BAD_INPUTS + [
        (("enqueue", "-f", str(bad_file)), "line 2: command is empty; nothing enqueued")
    ]
    for args, words in cases:
        line = user_error(cli(*args), 2)
        assert line.startswith("error: ") and words in line, (args, line)
        assert snapshot(home / "queuectl.db") == before, f"{args} changed the database"


@pytest.mark.parametrize(
    "args",
    [
        ("show", "ghost"),
        ("logs", "ghost"),
        ("retry", "ghost"),
        ("cancel", "ghost"),
        ("delete", "ghost"),
        ("dlq", "retry", "ghost"),
        ("delete", "real", "ghost"),
        ("cancel", "real", "ghost"),
    ],
)
def test_unknown_job_ids_exit_1_with_one_line(cli, home, args):
    ok(cli("enqueue", "--id", "real", "true"))
    before = snapshot(home / "queuectl.db")
    assert user_error(cli(*args), 1) == "error: no job with id 'ghost'"
    assert snapshot(home / "queuectl.db") == before


@pytest.mark.parametrize(
    "args, words",
    [
        (("retry", "p"), "is pending; only failed or dead jobs can be retried"),
        (("dlq", "retry", "p"), "is pending, not in the DLQ"),
        (("logs", "p"), "has not run yet"),
    ],
)
def test_operations_on_the_wrong_state_exit_1(cli, home, args, words):
    ok(cli("enqueue", "--id", "p", "true"))
    before = snapshot(home / "queuectl.db")
    assert words in user_error(cli(*args), 1)
    assert snapshot(home / "queuectl.db") == before


def test_several_ids_are_all_or_nothing(cli, home):
    ok(cli("enqueue", "--id", "done", "true"))
    ok(cli("enqueue", "--id", "flaky", "--max-retries", "3", "--backoff-base", "100", "false"))
    ok(cli(*BURST))
    ok(cli("enqueue", "--id", "waiting", "true"))
    before = snapshot(home / "queuectl.db")
    assert "'done' is already completed" in user_error(cli("cancel", "waiting", "done"), 1)
    assert "'done' is completed" in user_error(cli("retry", "flaky", "done"), 1)
    assert snapshot(home / "queuectl.db") == before
    assert ok(cli("cancel", "waiting", "flaky")).out == "waiting: dead\nflaky: dead\n"


# --- running jobs through a foreground burst worker ----------------------------------------------


def test_success_is_recorded_with_output(cli, home):
    ok(cli("enqueue", "--id", "ok", "echo hello; echo oops >&2"))
    ok(cli(*BURST))
    job = show(cli, "ok")
    assert (job["state"], job["attempts"], job["exit_code"]) == ("completed", 1, 0)
    assert job["output_tail"] == "hello\noops\n" and job["why"].startswith("completed at")
    assert ok(cli("logs", "ok")).out == "hello\noops\n"


def test_failures_go_to_the_dlq_after_backoff_and_come_back(cli, db, home):
    from queuectl_tui.store.models import Attempt, Job

    count = 'n=$(($(cat runs 2>/dev/null || echo 0)+1)); echo $n > runs; echo "run $n"; exit 3'
    ok(cli("enqueue", "--id", "flaky", "--max-retries", "2", "--backoff-base", "1", count))
    ok(cli(*BURST))
    job = show(cli, "flaky")
    assert (job["state"], job["attempts"], job["exit_code"], job["last_error"]) == (
        "dead",
        3,
        3,
        "exit code 3",
    )
    assert [(a["number"], a["outcome"], a["exit_code"]) for a in job["attempt_list"]] == [
        (1, "failed", 3),
        (2, "failed", 3),
        (3, "failed", 3),
    ]
    assert (home.parent / "runs").read_text() == "3\n"
    rows = list(Attempt.select().join(Job).where(Job.id == "flaky").order_by(Attempt.number))
    for previous, following in zip(rows, rows[1:], strict=False):
        assert following.started_at >= previous.finished_at + 1.0  # backoff_base ** k with base 1
    assert job["why"] == "in the DLQ after 3 attempts: exit code 3"
    # Each attempt keeps its own output.
    assert ok(cli("logs", "flaky", "--attempt", "2")).out == "run 2\n"
    assert ok(cli("logs", "flaky")).out == "run 3\n"
    assert "no attempt 4" in user_error(cli("logs", "flaky", "--attempt", "4"), 1)

    dead = ok(cli("dlq", "list", "--json")).json()
    assert [d["id"] for d in dead] == ["flaky"] and dead[0]["last_error"] == "exit code 3"
    back = ok(cli("dlq", "retry", "flaky", "--max-retries", "0", "--timeout", "5", "--json")).json()
    assert [(b["state"], b["attempts"], b["max_retries"], b["timeout"]) for b in back] == [
        ("pending", 0, 0, 5)
    ]
    assert ok(cli("dlq", "list", "--json")).json() == []
    ok(cli(*BURST))
    job = show(cli, "flaky")
    assert (job["state"], job["attempts"], len(job["attempt_list"])) == ("dead", 1, 4)
    assert (home.parent / "runs").read_text() == "4\n"
    # One numbering: the fourth run is attempt 4 everywhere; the budget is shown as such.
    assert job["why"] == "in the DLQ after 4 attempts: exit code 3"
    text = ok(cli("show", "flaky")).out
    assert re.search(r"^attempts\s+4$", text, re.M) and re.search(
        r"^retry budget\s+0 of 0 used$", text, re.M
    )
    assert ok(cli("logs", "flaky", "--attempt", "4")).out == "run 4\n"
    assert "numbered 1 to 4" in user_error(cli("logs", "flaky", "--attempt", "5"), 1)


def test_retry_runs_a_backing_off_job_now(cli):
    ok(cli("enqueue", "--id", "slow", "--max-retries", "1", "--backoff-base", "100", "exit 1"))
    ok(cli(*BURST))  # one failure, then a 100 s backoff: the burst worker does not wait for it
    job = show(cli, "slow")
    assert (job["state"], job["attempts"]) == ("failed", 1)
    assert job["why"] == (
        f"backing off until {job['run_at']} after attempt 1 failed: exit code 1; "
        "retry budget 0 of 1 used"
    )
    assert parse_iso(job["run_at"]) - parse_iso(
        job["attempt_list"][0]["finished_at"]
    ) == pytest.approx(100, abs=0.01)
    assert ok(cli("retry", "slow")).out == "slow: failed\n"
    assert parse_iso(show(cli, "slow")["run_at"]) <= time.time()
    ok(cli(*BURST))
    job = show(cli, "slow")
    assert (job["state"], job["attempts"]) == ("dead", 2)


def test_command_not_found_is_a_readable_failure(cli):
    ok(cli("enqueue", "--id", "typo", "--max-retries", "0", "no_such_command_qx arg"))
    ok(cli(*BURST))
    job = show(cli, "typo")
    assert (job["state"], job["exit_code"], job["last_error"]) == (
        "dead",
        127,
        "command not found (exit code 127)",
    )
    assert "no_such_command_qx" in ok(cli("logs", "typo")).out


def test_timeout_kills_grandchildren(cli, mark):
    ok(
        cli(
            "enqueue",
            "--id",
            "long",
            "--timeout",
            "1",
            "--max-retries",
            "0",
            marked_command(mark, "sh -c 'sleep 60 & sleep 60'"),
        )
    )
    ok(cli(*BURST))
    all_gone(mark)
    job = show(cli, "long")
    assert (job["state"], job["last_error"]) == ("dead", "timed out after 1s")
    assert job["attempt_list"][0]["outcome"] == "timeout"


def test_scheduled_jobs_wait_until_due(cli, home):
    before = time.time()
    ok(cli("enqueue", "--id", "delayed", "--delay", "3600", "echo delayed >> ran"))
    ok(cli("enqueue", "--id", "at", "--run-at", "2100-01-01T00:00:00Z", "echo at >> ran"))
    ok(
        cli(
            "enqueue",
            '{"id": "sched", "command": "echo sched >> ran", '
            '"scheduled_at": "2100-01-02T00:00:00Z"}',
        )
    )
    ok(
        cli(
            "enqueue",
            '{"id": "past", "command": "echo past >> ran", "run_at": "2001-01-01T00:00:00Z"}',
        )
    )
    ok(cli("enqueue", "--id", "now", "echo now >> ran"))
    ok(cli(*BURST))
    assert (home.parent / "ran").read_text() == "past\nnow\n"
    delayed = show(cli, "delayed")
    assert delayed["state"] == "pending" and delayed["attempts"] == 0
    assert (
        before + 3600 - 0.001 <= parse_iso(delayed["run_at"]) <= time.time() + 3600
    )  # ISO keeps ms
    assert delayed["why"] == f"scheduled for {delayed['run_at']}"
    assert show(cli, "at")["run_at"] == "2100-01-01T00:00:00.000Z"
    assert show(cli, "sched")["why"] == "scheduled for 2100-01-02T00:00:00.000Z"


def test_run_at_without_a_zone_is_local_time(home):
    env = cli_env(home, TZ="XXX-05:30")
    ok(
        run_command(
            home, "enqueue", "--id", "local", "--run-at", "2100-01-01T00:00:00", "true", env=env
        )
    )
    shown = ok(run_command(home, "show", "local", "--json")).json()
    assert shown["run_at"] == "2099-12-31T18:30:00.000Z"


def test_priority_then_fifo(cli, home):
    for job_id, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", -2), ("f", 0)]:
        ok(cli("enqueue", "--id", job_id, "--priority", str(priority), f"echo {job_id} >> order"))
    ok(cli(*BURST))
    assert (home.parent / "order").read_text().split() == ["b", "d", "a", "c", "f", "e"]


def test_show_says_no_worker_is_alive(cli):
    ok(cli("enqueue", "--id", "due", "true"))
    assert "no worker alive" in show(cli, "due")["why"]


# --- cancel, delete, clear -----------------------------------------------------------------------


def test_cancel_a_pending_job(cli):
    ok(cli("enqueue", "--id", "p", "true"))
    assert ok(cli("cancel", "p")).out == "p: dead\n"
    job = show(cli, "p")
    assert (job["state"], job["last_error"], job["attempts"]) == ("dead", "cancelled", 0)
    assert "already dead" in user_error(cli("cancel", "p"), 1)


def test_delete_removes_the_job_and_its_logs(cli, home):
    ok(cli("enqueue", "--id", "gone", "echo bye"))
    ok(cli("enqueue", "--id", "kept", "true"))
    ok(cli(*BURST))
    log = Path(show(cli, "gone")["attempt_list"][0]["log_file"])
    assert log.read_text() == "bye\n"
    assert ok(cli("delete", "gone")).out == "deleted 1 job(s)\n"
    user_error(cli("show", "gone"), 1)
    assert not log.exists()
    assert [j["id"] for j in ok(cli("list", "--json")).json()] == ["kept"]


def test_clear_by_state_and_only_with_yes(cli, home):
    ok(cli("enqueue", "--id", "done", "true"))
    ok(cli("enqueue", "--id", "dead", "--max-retries", "0", "false"))
    ok(cli(*BURST))
    ok(cli("enqueue", "--id", "waiting", "true"))
    before = snapshot(home / "queuectl.db")
    assert "refusing" in user_error(cli("clear", "--state", "completed"), 2)
    assert "refusing" in user_error(cli("dlq", "clear"), 2)
    assert snapshot(home / "queuectl.db") == before
    assert ok(cli("clear", "--state", "completed", "--yes")).out == "deleted 1 job(s)\n"
    assert {j["id"] for j in ok(cli("list", "--json")).json()} == {"dead", "waiting"}
    assert ok(cli("dlq", "clear", "--yes", "--json")).json() == {"deleted": 1}
    assert ok(cli("clear", "--yes", "--json")).json() == {"deleted": 1}
    assert ok(cli("list", "--json")).json() == []


# --- JSON output ---------------------------------------------------------------------------------


def test_json_outputs_parse_and_carry_job_fields(cli):
    ok(cli("enqueue", "--id", "p", "true"))
    ok(cli("enqueue", "--id", "d", "--max-retries", "0", "false"))
    ok(cli("worker", "start", "--foreground", "--burst"))
    ok(cli("enqueue", "--id", "p2", "true"))
    status = ok(cli("status", "--json")).json()
    assert status["jobs"] == {"pending": 1, "processing": 0, "completed": 1, "failed": 0, "dead": 1}
    assert status["total"] == 3 and status["workers"] == {"alive": 0, "busy": 0}
    assert status["oldest_pending_age"] >= 0
    listed = ok(cli("list", "--json")).json()
    assert [j["id"] for j in listed] == ["p2", "d", "p"]  # newest first
    for job in listed + [show(cli, "d")] + ok(cli("dlq", "list", "--json")).json():
        check_job_json(job)
    assert [j["id"] for j in ok(cli("list", "--state", "dead", "--json")).json()] == ["d"]
    assert [j["id"] for j in ok(cli("list", "--search", "p", "--limit", "1", "--json")).json()] == [
        "p2"
    ]
    attempt = show(cli, "d")["attempt_list"][0]
    parse_iso(attempt["started_at"])
    parse_iso(attempt["finished_at"])
    assert ok(cli("worker", "list", "--json")).json() == []
    assert isinstance(ok(cli("config", "list", "--json")).json(), dict)


@pytest.mark.parametrize("command", [("list",), ("dlq", "list")])
def test_limit_zero_or_huge_means_all(cli, command):
    for n in range(3):
        ok(cli("enqueue", "--id", f"j{n}", "--max-retries", "0", "false"))
    ok(cli(*BURST))
    for limit, count in [("2", 2), ("0", 3), ("99999999999999999999999", 3)]:
        assert len(ok(cli(*command, "--limit", limit, "--json")).json()) == count


def test_human_output_is_not_json_and_mentions_the_jobs(cli):
    ok(cli("enqueue", "--id", "visible-job", "true"))
    assert "visible-job" in ok(cli("list")).out
    out = ok(cli("show", "visible-job")).out
    assert "visible-job" in out and "no worker alive" in out
    assert "workers: 0 alive, 0 busy" in ok(cli("status")).out


# --- the bare command, storage, imports ----------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("--no-ui",)])
def test_without_a_terminal_prints_the_status(cli, args):
    ok(cli("enqueue", "true"))
    out = ok(cli(*args)).out
    assert "pending" in out and "workers: 0 alive, 0 busy" in out


def test_no_ui_on_a_terminal_prints_the_status(home):
    assert b"workers: 0 alive, 0 busy" in _on_a_terminal(home, "--no-ui")


@pytest.mark.sqlite_only
def test_files_are_private_whatever_the_umask(home):
    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "queuectl_tui", *args],
            capture_output=True,
            text=True,
            env=cli_env(home),
            cwd=home.parent,
            preexec_fn=lambda: os.umask(0),
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    run("enqueue", "--id", "j", "echo private")
    run("worker", "start", "--burst")  # detached: writes logs/workers.log too
    wait_for(
        lambda: json.loads(run("show", "j", "--json").stdout)["state"] == "completed",
        message="job done",
    )
    wait_for(
        lambda: json.loads(run("worker", "list", "--json").stdout) == [],
        message="burst worker exit",
    )
    files = sorted(p for p in home.rglob("*"))
    names = {p.relative_to(home).as_posix() for p in files}
    assert {"queuectl.db", "logs", "logs/workers.log", "logs/j@1-1.log"} <= names
    assert home.stat().st_mode & 0o777 == 0o700
    for path in files:
        want = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == want, f"{path} is {oct(path.stat().st_mode & 0o777)}"


def test_queuectl_db_and_db_option_point_elsewhere(home, tmp_path):
    other = tmp_path / "elsewhere" / "other.db"
    third = tmp_path / "third" / "q.db"
    env = cli_env(home, QUEUECTL_DB=str(other))
    ok(run_command(home, "enqueue", "--id", "there", "echo there", env=env))
    ok(run_cli(home, "worker", "start", "--foreground", "--burst", env=env))
    assert other.exists() and not home.exists()
    assert (other.parent / "logs").is_dir() and list((other.parent / "logs").glob("there@*.log"))
    shown = ok(run_command(home, "show", "there", "--json", env=env)).json()
    assert shown["state"] == "completed"
    # --db wins over QUEUECTL_DB
    ok(run_command(home, "--db", str(third), "enqueue", "--id", "third", "true", env=env))
    listed = ok(run_command(home, "--db", str(third), "list", "--json", env=env)).json()
    assert [j["id"] for j in listed] == ["third"]
    listed = ok(run_command(home, "list", "--json", env=env)).json()
    assert [j["id"] for j in listed] == ["there"]
    # and without either, the home database knows none of them
    assert ok(run_command(home, "list", "--json")).json() == []


def test_the_cli_never_imports_textual(home):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "queuectl_tui", "status"],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    modules = [
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert (
        "click" in modules and "queuectl_tui.engine" in modules
    )  # the report is what we think it is
    assert [m for m in modules if m.split(".")[0] == "textual"] == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="off Linux, liveness asks psutil")
def test_enqueue_and_status_load_neither_psutil_nor_migrations_nor_rich(home, db, backend):
    """A cold start pays only for what the command does: the liveness check of a worker on
    this host reads /proc, migrations load when an upgrade runs, rich (tables, progress bars)
    only on a terminal;
    paths are text (pathlib loads urllib and ipaddress); on a database file, the PostgreSQL
    driver peewee would import stays out. A database URL is read with urllib.parse, and its
    logs live under a home directory (pathlib)."""
    from queuectl_tui import engine

    engine.register_worker(pid=os.getpid())  # a live worker of this host: status checks it

    def imported(*args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *args],
            capture_output=True,
            text=True,
            env=cli_env(home),
            cwd=home.parent,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc, [
            line.rsplit("|", 1)[-1].strip()
            for line in proc.stderr.splitlines()
            if line.startswith("import time:")
        ]

    # What the interpreter loads before any of ours (an editable install's import hook loads
    # pathlib, say) is not the command's doing.
    _, startup = imported("-c", "pass")
    for args in (
        ("enqueue", "true"),
        ("status",),
        ("--db", str(home / "queuectl.db"), "status"),
        ("list",),
        ("clear", "--yes", "--state", "completed"),
    ):  # tables, bars: piped
        proc, modules = imported("-m", "queuectl_tui", *args)
        modules = [m for m in modules if m not in startup]
        assert "queuectl_tui.engine" in modules  # the report is what we think it is
        # each command loads its own module of commands (cli/__init__.py's COMMANDS) alone
        assert [
            m
            for m in modules
            if m
            in ("queuectl_tui.cli.admin", "queuectl_tui.cli.workers", "queuectl_tui.cli.schedule")
        ] == []
        on_file = backend == "sqlite" or args[0] == "--db"
        unwanted = ("psutil", "rich") + (("pathlib", "urllib") if on_file else ())
        if on_file:  # peewee's attempt is listed; the driver's own C module would load with it
            assert "psycopg2._psycopg" not in modules
        assert [m for m in modules if m.split(".")[0] in unwanted or m == "playhouse.migrate"] == []
        if args == ("status",):
            assert "workers: 1 alive, 0 busy" in proc.stdout


@pytest.mark.parametrize(
    "jobs",
    [
        {"pending": 1, "processing": 0, "completed": 0, "failed": 0, "dead": 0},
        {"pending": 123456789, "processing": 12, "completed": 98765432101, "failed": 0, "dead": 7},
    ],
)
def test_status_without_a_terminal_is_a_tab_separated_table_then_lines(monkeypatch, capsys, jobs):
    """Off a terminal status is the counts as a header line and a row, tab-separated (rich, a
    third of a cold start, is not loaded), then its lines; on any COLUMNS."""
    from queuectl_tui.cli import render

    data = {
        "jobs": jobs,
        "total": sum(jobs.values()),
        "workers": {"alive": 3, "busy": 12345},
        "oldest_pending_age": 3725.0,
    }
    for env in ({}, {"COLUMNS": "1"}, {"COLUMNS": "20"}, {"TTY_COMPATIBLE": "0"}):
        for key in ("COLUMNS", "TTY_COMPATIBLE", "FORCE_COLOR"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert render.piped()
        render.print_status(data, render.piped())
        assert capsys.readouterr().out.splitlines() == [
            "pending\tprocessing\tcompleted\tfailed\tdead\ttotal",
            "\t".join(
                str(jobs[s]) for s in ("pending", "processing", "completed", "failed", "dead")
            )
            + f"\t{sum(jobs.values())}",
            "workers: 3 alive, 12345 busy",
            "oldest pending: 1h02m",
        ], env


def test_piped_tables_keep_each_row_on_one_line_whole(cli, home):
    """`list | grep` and `show | grep` see whole rows: nothing cut, folded or padded."""
    long_id, command = "an-identifier-longer-than-a-narrow-column", "echo " + "x" * 300
    ok(cli("enqueue", "--id", long_id, command))
    ok(cli("enqueue", "--id", "short", "true"))
    lines = ok(cli("list", env={**cli_env(home), "COLUMNS": "80"})).out.splitlines()
    row = [line for line in lines if long_id in line]
    assert len(row) == 1 and command in row[0]
    assert any("short" in line and "true" in line for line in lines)
    assert all(line == line.rstrip() for line in lines)
    shown = ok(cli("show", long_id)).out.splitlines()
    assert any(line.split()[:1] == ["command"] and command in line for line in shown)


def test_wait_options_refuse_nan(cli):
    for args in (("worker", "stop", "--wait", "nan"), ("cancel", "x", "--wait", "nan")):
        result = cli(*args)
        assert result.code == 2 and "not a number of seconds" in result.err


def test_search_takes_like_wildcards_as_text(cli):
    for job_id in ("a_b", "axb", "50%", "500", "back\\slash"):
        ok(cli("enqueue", "--id", job_id, "true"))

    def found(text: str) -> list[str]:
        return sorted(j["id"] for j in ok(cli("list", "--search", text, "--json")).json())

    assert found("_") == ["a_b"]
    assert found("%") == ["50%"]
    assert found("\\") == ["back\\slash"]
    assert found("A_B") == ["a_b"]  # still case-insensitive


# --- user text is shown, never interpreted ------------------------------------------------------


def test_markup_in_ids_commands_and_errors_is_printed_as_text(cli, home):
    ok(cli("enqueue", "--id", "a[/x]", "--max-retries", "0", "echo '[bold red]out[/]'; exit 3"))
    ok(cli("enqueue", "--id", "[red]b", "--queue", "q", "sleep 30"))
    ok(cli(*BURST, "--queue", "default"))
    for args in (("list",), ("list", "--state", "dead"), ("show", "a[/x]"), ("dlq", "list")):
        out = ok(cli(*args)).out
        assert "a[/x]" in out, args
    assert "[bold red]out[/]" in ok(cli("show", "a[/x]")).out
    worker = ok(cli("worker", "start", "--queue", "q", "--json")).json()[0]
    try:
        wait_for(lambda: show(cli, "[red]b")["state"] == "processing", message="the job to start")
        assert "[red]b" in ok(cli("worker", "list")).out
    finally:
        ok(cli("worker", "stop", "--force", str(worker["id"])))


def _on_a_terminal(home, *args: str) -> bytes:
    """What a command writes to a terminal (a pty), read to its end."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(home, TERM="xterm", COLUMNS="200"),
        cwd=home.parent,
    )
    os.close(slave)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=30) == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return output


def test_escape_sequences_in_output_reach_a_terminal_visibly_and_a_pipe_as_they_were(cli, home):
    raw = b"\x1b]2;renamed\x07\x1b[2Jafter\ttab\n"
    ok(cli("enqueue", "--id", "esc", r"printf '\033]2;renamed\007\033[2Jafter\ttab\n'"))
    ok(cli(*BURST))
    piped = subprocess.run(
        [sys.executable, "-m", "queuectl_tui", "logs", "esc"],
        capture_output=True,
        env=cli_env(home),
        cwd=home.parent,
        timeout=60,
    )
    assert piped.returncode == 0 and piped.stdout == raw
    shown = _on_a_terminal(home, "logs", "esc")
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert b"^[]2;renamed^G^[[2Jafter\ttab" in shown
    tail = _on_a_terminal(home, "show", "esc")
    assert b"renamed" in tail and b"\x1b]2" not in tail and b"^[]2;renamed^G" in tail


def test_values_are_written_the_same_way_everywhere(cli):
    """`none` for no value (as the README and the console say), plain numbers, JSON spellings
    in errors: never null, 2.592e+06 or Python's True."""
    listed = ok(cli("config", "list")).out
    row = next(line for line in listed.splitlines() if "default_timeout" in line)
    assert "none" in row and "null" not in row
    assert ok(cli("config", "get", "default_timeout")).out == "none\n"
    assert ok(cli("config", "get", "default_timeout", "--json")).json() == {"default_timeout": None}
    err = user_error(cli("config", "set", "max_backoff", "99999999999"), 2)
    assert "2592000" in err and "e+" not in err
    assert "not true" in user_error(cli("enqueue", '{"command": "x", "timeout": true}'), 2)
    assert '"dead"' in user_error(cli("enqueue", '{"command": "x", "state": "dead"}'), 2)
    assert ok(cli("config", "set", "poll_interval", "0.25")).out == "poll_interval = 0.25\n"


def test_an_id_given_twice_is_refused_like_a_command_given_twice(cli):
    assert "not both" in user_error(
        cli("enqueue", "--id", "a", '{"id": "b", "command": "true"}'), 2
    )
    assert ok(cli("list", "--json")).json() == []
    assert ok(cli("enqueue", "--id", "a", '{"command": "true"}')).out == "a\n"


def test_list_takes_several_states_and_says_how_many_more_there_are(cli, home):
    for n in range(4):
        ok(cli("enqueue", "--id", f"p{n}", "true"))
    ok(cli("enqueue", "--id", "c0", "--command", "false", "--max-retries", "0"))
    ok(cli(*BURST))
    ok(cli("enqueue", "--id", "late", "true"))
    both = ok(cli("list", "--state", "pending", "--state", "dead", "--json")).json()
    assert sorted(j["id"] for j in both) == ["c0", "late"]
    first = ok(cli("list", "--limit", "2"))
    assert "and 4 more" in first.err and "--limit 0" in first.err
    assert [j["id"] for j in ok(cli("list", "--limit", "2", "--json")).json()] == ["late", "c0"]
    assert "more" not in ok(cli("list", "--limit", "6")).err
    assert "and 1 more" in ok(cli("list", "--state", "completed", "--limit", "3")).err
    ok(cli("enqueue", "--id", "c1", "--command", "false", "--max-retries", "0"))
    ok(cli(*BURST))
    dead = ok(cli("dlq", "list", "--limit", "1", "--json"))
    assert [j["id"] for j in dead.json()] == ["c1"] and "and 1 more" in dead.err


def test_logs_of_an_attempt_on_another_host_say_where_and_show_the_tail_kept(cli, home, db):
    ok(cli("enqueue", "--id", "j", "echo from afar; echo line two"))
    ok(
        run_cli(
            home,
            "worker",
            "start",
            "--foreground",
            "--burst",
            env=cli_env(
                home / "afar",
                QUEUECTL_HOSTNAME="afar",
                QUEUECTL_DB=helpers.DB_URL or str(home / "queuectl.db"),
            ),
        )
    )
    for logs in (home / "logs", home / "afar" / "logs"):  # only on that machine's disk
        (logs / "j@1-1.log").unlink(missing_ok=True)
    shown = cli("logs", "j")
    assert ok(shown).out == "from afar\nline two\n"
    assert "is on host afar (j@1-1.log in the logs directory of the worker there)" in shown.err
    from queuectl_tui.tui import data

    [attempt] = data.read_detail("j", time.time()).attempts
    assert attempt["log_path"] is None and "on host afar" in attempt["log_note"]
    assert attempt["log_note"].endswith("from afar\nline two\n")


def test_a_job_that_writes_nothing_leaves_no_log_file_and_its_logs_are_empty(cli, home):
    """A log file is made at the job's first byte (an inode per job was most of a short
    job's cost in the worker): a silent job leaves none, and `logs` prints nothing for it,
    as for an empty log; a job that writes has its log as before."""
    ok(cli("enqueue", "--id", "quiet", "true"))
    ok(cli("enqueue", "--id", "loud", "echo hello"))
    ok(cli("worker", "start", "--foreground", "--burst"))
    for job_id in ("quiet", "loud"):
        assert ok(cli("show", job_id, "--json")).json()["state"] == "completed"
    assert sorted(p.name for p in (home / "logs").glob("*@*.log")) == ["loud@2-1.log"]
    assert ok(cli("logs", "quiet")).out == ""
    assert ok(cli("logs", "quiet", "--follow")).out == ""
    assert ok(cli("logs", "loud")).out == "hello\n"


def test_logs_of_an_attempt_without_a_log_file_is_one_line(cli, home, db):
    """An attempt of this host that names no log file (the demo's generated ones): one line
    and exit 1, not a traceback."""
    from queuectl_tui import engine
    from queuectl_tui.store.models import Attempt

    ok(cli("enqueue", "--id", "j", "true"))
    job, attempt = engine.claim(engine.register_worker())
    engine.finish(job, attempt, outcome="completed", exit_code=0, tail="")
    Attempt.update(log_file=None).where(Attempt.seq == attempt.seq).execute()
    assert "attempt 1 has no log file" in user_error(cli("logs", "j"), 1)


def test_logs_follow_an_attempt_running_on_another_host_through_the_database(cli, home, db):
    """Its log file is on that host: ``logs`` says so and that it still runs (exit 1);
    ``logs -f`` (with or without --attempt) says where the log is, waits for the attempt to
    end and prints the last output kept in the database, instead of waiting for a local file
    that never comes; then it follows the next attempt as usual."""
    from queuectl_tui import engine
    from queuectl_tui.store.models import Attempt

    ok(cli("enqueue", "--id", "j", "--max-retries", "1", "true"))
    job, attempt = engine.claim(engine.register_worker())
    Attempt.update(host="afar").where(Attempt.seq == attempt.seq).execute()
    line = user_error(cli("logs", "j"), 1)
    assert "attempt 1 is on host afar" in line and "still running there" in line
    followers = [
        subprocess.Popen(
            [sys.executable, "-m", "queuectl_tui", "logs", *args, "j"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(home),
            cwd=home.parent,
        )
        for args in (("-f",), ("-f", "--attempt", "1"))
    ]
    try:
        said = []
        for proc in followers:  # each has seen the attempt running before it ends
            assert select.select([proc.stderr], [], [], 30)[0], "logs -f says nothing"
            said.append(proc.stderr.readline())
        engine.finish(job, attempt, outcome="failed", exit_code=1, tail="from afar\n")
        job, attempt = engine.claim(engine.register_worker(), now=time.time() + 60)  # the retry
        printed = []
        for proc in followers:  # attempt 1's output, kept until attempt 2 ends
            assert select.select([proc.stdout], [], [], 30)[0], "no output printed"
            printed.append(proc.stdout.readline())
        engine.finish(job, attempt, outcome="completed", exit_code=0, tail="")
        outs = [
            (first + out, line + err)
            for proc, first, line in zip(followers, printed, said, strict=True)
            for out, err in [proc.communicate(timeout=60)]
        ]
    finally:
        for proc in followers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in followers] == [0, 0], outs
    for out, err in outs:
        assert out == "from afar\n"
        assert "the log of attempt 1 is on host afar (j@1-1.log" in err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "path",
    [
        "q.db",
        "./q.db",
        "/a//b/./c/",
        "//x/y",
        "///x",
        "a/../b",
        ".",
        "/",
        "a/b/..",
        "./",
        "~user/x",
    ],
)
def test_database_paths_read_as_pathlib_reads_them(path):
    """The CLI keeps the database path as text (no pathlib at start-up), spelt as before."""
    from pathlib import Path

    from queuectl_tui import paths

    assert paths.clean(path) == str(Path(path))
    assert paths.logs_path(paths.clean(path)) == str(Path(path).parent / "logs")


@pytest.mark.sqlite_only  # "waiting" is seen as the database file open in the process
@pytest.mark.parametrize(
    "args", [("wait", "--all"), ("logs", "-f", "j"), ("enqueue", "--wait", "sleep 600")]
)
def test_ctrl_c_on_a_waiting_command_exits_130_without_a_traceback(cli, home, args):
    """Exit 1 is `wait`'s "a job died": an interrupted wait is 130 (128 + SIGINT), as shells
    expect of a command stopped by Ctrl+C."""
    ok(cli("enqueue", "--id", "j", "sleep 600"))  # no worker: it never ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", *args],
        env=cli_env(home),
        cwd=home.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        database = str(home / "queuectl.db")

        def waiting() -> bool:  # past its start: inside the command, with the database open
            try:
                return any(
                    os.readlink(f"/proc/{proc.pid}/fd/{fd}") == database
                    for fd in os.listdir(f"/proc/{proc.pid}/fd")
                )
            except OSError:
                return False

        wait_for(waiting, message="the command to wait")
        if args[0] == "enqueue":
            assert proc.stdout.readline().strip()  # its id, then it waits
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "aborted" not in err and not err.strip()
