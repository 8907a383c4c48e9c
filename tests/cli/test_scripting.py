"""What a script or a newcomer from pueue or task-spooler meets on the command line: piped
tables, ids only (-q), durations, 'none' for no time limit, labels, edit in $EDITOR, queue
limit's arguments, and the When column of blocked jobs. Run in this process (``run_here``)
unless a real process is the point."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from helpers import ROOT, cli_env, run_here

pytestmark = pytest.mark.both_backends


def here(*args: str, **kwargs):
    """run_here, which must exit 0."""
    result = run_here(*args, **kwargs)
    assert result.code == 0, (args, result)
    return result


def refused(code: int, *args: str, **kwargs) -> str:
    """run_here, which must exit ``code`` with one line on stderr; that line."""
    result = run_here(*args, **kwargs)
    assert result.code == code and result.err.count("\n") == 1, (args, result)
    return result.err.strip()


def job(job_id: str) -> dict:
    return here("show", job_id, "--json").json()


def rows(text: str) -> list[dict[str, str]]:
    """A piped table: its header line names the columns, each row is one line."""
    header, *lines = text.splitlines()
    names = header.split("\t")
    result = []
    for line in lines:
        cells = line.split("\t")
        assert len(cells) == len(names), (header, line)
        result.append(dict(zip(names, cells, strict=True)))
    return result


# --- piped tables (item 4) ----------------------------------------------------------------------


def test_a_piped_list_is_a_header_and_one_tab_separated_line_per_job(db, add, worker):
    add("multi", "echo one\necho\ttwo; printf '\x1b[2J'")
    add("plain", "true", label="nightly run")
    out = here("list").out
    assert not set(out) & set("│┃━─┏┗╇┡ "[:-1]) and "\x1b" not in out
    listed = rows(out)
    assert [row["id"] for row in listed] == ["plain", "multi"]
    assert listed[1]["command"] == "echo one\\necho\\ttwo; printf '^[[2J'"
    assert listed[0]["label"] == "nightly run" and listed[1]["label"] == "-"
    assert [line.split("\t")[1] for line in out.splitlines()] == ["label", "nightly run", "-"]
    # the other tables, the same way
    assert rows(here("worker", "list").out)[0]["id"] == str(worker.id)
    assert [row["queue"] for row in rows(here("queue", "list").out)] == ["default"]
    assert "max_retries" in [row["key"] for row in rows(here("config", "list").out)]
    status = [
        line for line in here("status").out.splitlines() if not line.startswith("database: ")
    ]  # (a server is named first)
    assert status[0].split("\t")[0] == "pending" and status[1].split("\t")[0] == "2"


def test_quiet_lists_print_the_ids_alone(db, add, worker, tmp_path):
    for n in range(3):
        add(f"d{n}", "false", max_retries=0)
    add("alive", "true")
    from queuectl_tui import engine

    for job_id in ("d0", "d1", "d2"):
        engine.cancel(job_id)
    assert here("list", "--state", "dead", "-q").out == "d2\nd1\nd0\n"
    assert here("dlq", "list", "--quiet", "--limit", "2").out == "d2\nd1\n"
    assert here("list", "-q", "--search", "ali").out == "alive\n"
    assert here("worker", "list", "-q").out == f"{worker.id}\n"


def test_quiet_ids_go_through_xargs(cli, home):
    """The pipeline from the README: dead jobs' ids into retry, one process after the other."""
    for n in range(2):
        cli("enqueue", "--id", f"d{n}", "true")
        cli("cancel", f"d{n}")
    command = f"{sys.executable} -m queuectl_tui"
    proc = subprocess.run(
        ["bash", "-c", f"{command} list --state dead -q | xargs {command} retry"],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, "d1: pending\nd0: pending\n"), proc.stderr


# --- arguments (item 5) -------------------------------------------------------------------------


def test_queue_limit_takes_a_negative_number_as_a_bad_limit(db, add):
    before = here("queue", "list", "--json").out
    assert refused(2, "queue", "limit", "gpu", "-1") == (
        "error: bad limit '-1': expected a whole number >= 0 or 'none'"
    )
    assert here("queue", "list", "--json").out == before


def test_queue_limit_of_a_queue_nothing_names_warns_and_sets_it(db, add):
    from queuectl_tui import engine

    add("g", "true", queue="gpu")
    engine.register_worker(["render"])
    result = here("queue", "limit", "nosuchqueue", "2")
    assert result.err == (
        "warning: queue 'nosuchqueue' has no jobs and no worker names it "
        "(the limit is set all the same)\n"
    )
    assert result.out == "queue nosuchqueue: at most 2 running\n"
    assert engine.queue_state("nosuchqueue")["limit"] == 2
    for named in ("gpu", "render"):  # a job's queue, a worker's queue: no warning
        assert here("queue", "limit", named, "1").err == ""


def test_a_job_can_have_no_timeout_when_a_default_is_set(db, tmp_path):
    here("config", "set", "default_timeout", "1h")
    here("enqueue", "--id", "default", "true")
    here("enqueue", "--id", "none-option", "--timeout", "none", "true")
    here("enqueue", '{"id": "null-spec", "command": "true", "timeout": null}')
    here("enqueue", '{"id": "none-spec", "command": "true", "timeout": "none"}')
    bulk = tmp_path / "jobs.jsonl"
    bulk.write_text(
        '{"id": "bulk-null", "command": "true", "timeout": null}\n'
        '{"id": "bulk-default", "command": "true"}\n'
    )
    here("enqueue", "-f", str(bulk))
    assert {
        name: job(name)["timeout"]
        for name in (
            "default",
            "none-option",
            "null-spec",
            "none-spec",
            "bulk-null",
            "bulk-default",
        )
    } == {
        "default": 3600,
        "none-option": None,
        "null-spec": None,
        "none-spec": None,
        "bulk-null": None,
        "bulk-default": 3600,
    }


def test_edit_clears_the_optional_fields(db):
    here("enqueue", "--id", "e", "--timeout", "30", "--label", "first", "true")
    assert here("edit", "e", "--timeout", "none", "--label", "").out == "e: edited\n"
    assert (job("e")["timeout"], job("e")["label"]) == (None, None)
    here("edit", "e", "--timeout", "2h30m", "--label", "second")
    assert (job("e")["timeout"], job("e")["label"]) == (9000, "second")


def test_errors_write_whole_numbers_whole(db):
    assert refused(2, "enqueue", "--timeout", "-5", "true") == (
        "error: timeout must be between 0.001 and 2592000, not -5"
    )
    assert refused(2, "enqueue", '{"command": "x", "max_retries": 500.0}') == (
        "error: max_retries must be between 0 and 100, not 500"
    )
    assert "'soon' is not a number of seconds or a duration" in refused(
        2, "enqueue", "--timeout", "soon", "true"
    )


# --- pueue and task-spooler habits (item 9) -----------------------------------------------------


def test_qctl_is_installed_beside_queuectl_tui():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = project["project"]["scripts"]
    assert scripts["qctl"] == scripts["queuectl-tui"] == "queuectl_tui.__main__:main"


def test_durations_wherever_seconds_are_taken(db):
    before = time.time()
    here("enqueue", "--id", "later", "--delay", "2h30m", "--timeout", "15m", "true")
    later = job("later")
    from helpers import parse_iso

    # --json shows times to the millisecond, cut (not rounded): up to 1 ms before the instant
    assert 9000 - 0.001 <= parse_iso(later["run_at"]) - before <= 9000 + (time.time() - before)
    assert later["timeout"] == 900
    here("edit", "later", "--delay", "1d")
    assert parse_iso(job("later")["run_at"]) - before >= 86400
    assert here("config", "set", "lease", "5m").out == "lease = 300\n"
    assert here("config", "set", "max-backoff", "1h30m").out == "max_backoff = 5400\n"
    assert here("stats", "--since", "2h30m", "--json").json()["window_seconds"] == 9000
    result = run_here("wait", "later", "--timeout", "0.1s")
    assert result.code == 124 and "not finished: later" in result.err
    assert "is not a number of seconds or a duration" in refused(
        2, "cancel", "later", "--wait", "5 minutes"
    )
    assert refused(2, "config", "set", "lease", "5x").startswith("error: bad value '5x' for lease")


def test_labels_are_shown_beside_the_id_and_found_by_search(db):
    here("enqueue", "--id", "b1", "--label", "backup nightly", "true")
    here("enqueue", "--id", "other", "true")
    listed = rows(here("list").out)
    assert [(row["id"], row["label"]) for row in listed] == [
        ("other", "-"),
        ("b1", "backup nightly"),
    ]
    assert here("list", "--search", "nightly", "-q").out == "b1\n"
    shown = here("show", "b1").out.splitlines()
    assert shown[:2] == ["id\tb1", "label\tbackup nightly"]
    assert job("b1")["label"] == "backup nightly"
    here("edit", "b1", "--label", "weekly")
    assert here("list", "--search", "weekly", "-q").out == "b1\n"
    assert "control characters" in refused(2, "enqueue", "--label", "a\x1bb", "true")


def test_edit_without_options_opens_the_command_in_the_editor(db, tmp_path):
    here("enqueue", "--id", "e", "echo old")
    editor = {"VISUAL": "", "EDITOR": "sed -i s/old/new/"}
    assert here("edit", "e", env=editor).out == "e: edited\n"
    assert job("e")["command"] == "echo new"
    result = here("edit", "e", env={"VISUAL": "", "EDITOR": "true"})  # saved as it was
    assert (result.out, result.err) == ("", "e: not changed\n")
    assert job("e")["command"] == "echo new"
    emptied = run_here("edit", "e", env={"VISUAL": "", "EDITOR": "sed -i d"})
    assert emptied.code == 2 and "command is empty" in emptied.err
    assert job("e")["command"] == "echo new"


def test_edit_in_the_editor_refuses_a_running_job_before_the_editor_opens(db, worker, tmp_path):
    from queuectl_tui import engine

    here("enqueue", "--id", "r", "echo old")
    engine.claim(worker)
    opened = tmp_path / "opened"
    line = refused(1, "edit", "r", env={"VISUAL": "", "EDITOR": f"touch {opened};"})
    assert line == "error: job 'r' is processing; only pending or failed jobs can be edited"
    assert not opened.exists() and job("r")["command"] == "echo old"


# --- the When column says what a due job waits for (item 2) -------------------------------------


def test_list_says_what_blocked_jobs_wait_for(db, add, worker):
    from queuectl_tui import engine

    now = time.time()
    for job_id, fields in [
        ("build", {"queue": "ci"}),
        ("deploy", {"queue": "ci", "after": ["build"]}),
        ("gpu1", {"queue": "gpu"}),
        ("gpu2", {"queue": "gpu"}),
        ("held", {"queue": "frozen"}),
        ("free", {}),
        ("later", {"queue": "frozen", "delay": 3600}),
    ]:
        add(job_id, "true", now=now, **fields)
    engine.set_limit("gpu", 1)
    engine.pause(["frozen"])
    engine.claim(engine.register_worker(["gpu"]))  # gpu1 runs: gpu is at its limit
    when = {row["id"]: row["when"] for row in rows(here("list").out)}
    assert when == {
        "build": "due",
        "deploy": "after build",
        "gpu1": when["gpu1"],
        "gpu2": "limit 1/1",
        "held": "paused",
        "free": "due",
        "later": when["later"],
    }
    assert when["later"].startswith("in 59m")  # not due yet: when, before what holds it
    assert when["gpu1"].startswith("running")
