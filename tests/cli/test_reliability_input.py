"""Bad input through the CLI (in this process; workers in their own): one clear line on stderr,
the documented exit code, and the data directory (database and logs) byte-for-byte unchanged.

Exit 2 is input that fails validation; exit 1 an operation that found nothing (unknown job id).
Every case runs against a copy of one populated database with jobs in every state.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import (
    needs_process,
    ok,
    run_cli,
    run_command,
    run_in_process,
    tree_digest,
    user_error,
    wait_for,
)

# reap (conftest.py): kills whatever a test leaves running, even when it fails half-way.
pytestmark = pytest.mark.usefixtures("reap")

MB = 1024 * 1024


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A data directory with jobs in every state: done (completed), dead1 (dead), flaky (failed,
    backing off), waiting (pending), later (scheduled), and one whose id looks like a path."""
    home = tmp_path_factory.mktemp("input-template") / "qhome"

    def cli(*args, **kw):
        run = run_cli if needs_process(args) else run_in_process
        return ok(run(home, *args, **kw))

    cli("enqueue", "--id", "done", "--queue", "setup", "echo hello")
    cli("enqueue", "--id", "dead1", "--queue", "setup", "--max-retries", "0", "exit 3")
    cli(
        "enqueue",
        "--id",
        "flaky",
        "--queue",
        "setup",
        "--max-retries",
        "3",
        "--backoff-base",
        "100",
        "exit 4",
    )
    cli("worker", "start", "--foreground", "--burst", "--queue", "setup")
    cli("enqueue", "--id", "waiting", "true")
    cli("enqueue", "--id", "later", "--delay", "3600", "true")
    cli("enqueue", "--id", "../../etc/passwd", "true")
    cli("config", "set", "max_retries", "4")
    states = {j["id"]: j["state"] for j in json.loads(cli("list", "--json").out)}
    assert states == {
        "done": "completed",
        "dead1": "dead",
        "flaky": "failed",
        "waiting": "pending",
        "later": "pending",
        "../../etc/passwd": "pending",
    }
    return home


@pytest.fixture
def populated(template, home) -> Path:
    shutil.copytree(template, home)
    return home


def run(home: Path, args: tuple, stdin: bytes | str | None, files: dict[str, bytes], tmp: Path):
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    args = tuple(a.replace("{dir}", str(tmp)) for a in args)
    return run_in_process(home, *args, input=stdin)  # bytes: e.g. invalid UTF-8, as piped


def case(*args, stdin=None, files=None, id):
    return pytest.param(args, stdin, files or {}, id=id)


def spec_file(data, id) -> object:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return case("enqueue", "-f", "{dir}/spec.json", files={"spec.json": raw}, id=id)


BAD_INPUT = [
    # invalid JSON
    case("enqueue", '{"command": "echo hi"', id="json-unterminated"),
    case("enqueue", '{"command": "echo hi",}', id="json-trailing-comma"),
    case("enqueue", stdin='{"command": ', id="json-stdin-truncated"),
    spec_file(b'{"command": "echo hi"', id="json-file-truncated"),
    spec_file(b'{"command": "a"}\n{"command":\n', id="jsonl-bad-line"),
    spec_file(b'\xff\xfe{"command": "x"}', id="file-not-utf8"),
    case("enqueue", stdin=b"echo \xff\xfe", id="stdin-not-utf8"),
    # a JSON array (or other non-object) where an object is needed
    case("enqueue", '[{"command": "echo hi"}]', id="array-as-spec-argument"),
    spec_file([[{"command": "a"}]], id="array-of-arrays"),
    spec_file([1, 2], id="array-of-numbers"),
    spec_file(b'"echo hi"', id="json-string"),
    spec_file(b"42", id="json-number"),
    spec_file(b"null", id="json-null"),
    spec_file(b"[]", id="empty-array"),
    spec_file(b'{"command": "a"}\n[{"command": "b"}]\n', id="jsonl-array-line"),
    # wrong types
    case("enqueue", '{"command": 5}', id="command-int"),
    case("enqueue", '{"command": ["echo", "hi"]}', id="command-list"),
    case("enqueue", '{"command": null}', id="command-null"),
    case("enqueue", '{"command": "x", "priority": "high"}', id="priority-string"),
    case("enqueue", '{"command": "x", "max_retries": 1.5}', id="retries-fraction"),
    case("enqueue", '{"command": "x", "max_retries": true}', id="retries-bool"),
    case("enqueue", '{"command": "x", "timeout": "ten"}', id="timeout-string"),
    case("enqueue", '{"command": "x", "run_at": 1767225600}', id="run-at-number"),
    case("enqueue", '{"command": "x", "queue": 5}', id="queue-int"),
    case("enqueue", '{"command": "x", "queue": "a b"}', id="queue-space"),
    case("enqueue", '{"command": "x", "id": 42}', id="id-int"),
    case("enqueue", '{"command": "x", "backoff_base": "2"}', id="backoff-string"),
    case("enqueue", '{"command": "x", "delay": [1]}', id="delay-list"),
    case("enqueue", "--priority", "high", "x", id="option-priority-string"),
    case("enqueue", "--timeout", "soon", "x", id="option-timeout-string"),
    # unknown keys
    case("enqueue", '{"command": "x", "colour": "red"}', id="unknown-key"),
    case("enqueue", '{"cmd": "x"}', id="misspelt-command"),
    case("enqueue", '{"command": "x", "Priority": 1}', id="key-wrong-case"),
    # empty or whitespace command
    case("enqueue", "", id="empty-argument"),
    case("enqueue", "   ", id="blank-argument"),
    case("enqueue", "--command", "", id="empty-option"),
    case("enqueue", '{"command": ""}', id="empty-json"),
    case("enqueue", '{"command": " \\t\\n "}', id="whitespace-json"),
    case("enqueue", stdin="", id="empty-stdin"),
    case("enqueue", stdin="  \n\t\n", id="blank-stdin"),
    spec_file(b"", id="empty-file"),
    spec_file(b"   \n", id="blank-file"),
    # NUL bytes
    case("enqueue", '{"command": "echo a\\u0000b"}', id="nul-in-command"),
    case("enqueue", '{"command": "x", "id": "a\\u0000b"}', id="nul-in-id"),
    case("enqueue", stdin="echo a\x00b", id="nul-in-stdin"),
    spec_file(b'{"command": "x"}\x00', id="nul-in-file"),
    # oversized command
    case("enqueue", stdin="echo " + "x" * MB, id="1mb-stdin"),
    spec_file({"command": "echo " + "x" * MB}, id="1mb-json"),
    case("enqueue", "--command", "x" * 100_000, id="100kb-option"),
    # negative or absurd numbers
    case("enqueue", "--timeout", "-1", "x", id="timeout-negative"),
    case("enqueue", "--timeout", "0", "x", id="timeout-zero"),
    case("enqueue", "--timeout", "nan", "x", id="timeout-nan"),
    case("enqueue", "--timeout", "inf", "x", id="timeout-inf"),
    case("enqueue", "--timeout", "1e12", "x", id="timeout-huge"),
    case("enqueue", "--max-retries", "-1", "x", id="retries-negative"),
    case("enqueue", "--max-retries", "1000000", "x", id="retries-huge"),
    case("enqueue", "--priority", "10000000000", "x", id="priority-huge"),
    case("enqueue", "--delay", "-5", "x", id="delay-negative"),
    case("enqueue", "--delay", "1e20", "x", id="delay-huge"),
    case("enqueue", "--backoff-base", "0", "x", id="backoff-zero"),
    case("enqueue", "--backoff-base", "1e9", "x", id="backoff-huge"),
    case("enqueue", '{"command": "x", "timeout": -5}', id="json-timeout-negative"),
    case("enqueue", '{"command": "x", "timeout": 1e308}', id="json-timeout-huge"),
    case("enqueue", '{"command": "x", "priority": 1e400}', id="json-priority-infinite"),
    case("enqueue", '{"command": "x", "priority": NaN}', id="json-priority-nan"),
    case("enqueue", '{"command": "x", "max_retries": -Infinity}', id="json-retries-minus-infinity"),
    case("enqueue", '{"command": "x", "max_retries": 1e30}', id="json-retries-huge"),
    # unparseable or impossible run_at
    case("enqueue", "--run-at", "tomorrow", "x", id="run-at-word"),
    case("enqueue", "--run-at", "", "x", id="run-at-empty"),
    case("enqueue", "--run-at", "2030-13-01T00:00:00", "x", id="run-at-month-13"),
    case("enqueue", "--run-at", "2030-02-30T10:00:00", "x", id="run-at-feb-30"),
    case("enqueue", "--run-at", "2030-01-01T25:00:00", "x", id="run-at-hour-25"),
    case("enqueue", "--run-at", "2030-01-01T00:00:00+25:00", "x", id="run-at-bad-zone"),
    case("enqueue", "--run-at", "0001-01-01T00:00:00", "x", id="run-at-year-1"),
    case("enqueue", "--run-at", "9999-12-31T23:59:59-12:00", "x", id="run-at-year-10000-utc"),
    case(
        "enqueue",
        '{"command": "x", "run_at": "2030-01-01T00:00:00Z", "delay": 5}',
        id="run-at-and-delay",
    ),
    # duplicate ids
    case("enqueue", "--id", "done", "true", id="dup-existing"),
    case("enqueue", '{"id": "waiting", "command": "true"}', id="dup-existing-json"),
    spec_file(
        [
            {"id": "n1", "command": "true"},
            {"id": "n2", "command": "true"},
            {"id": "n1", "command": "true"},
        ],
        id="dup-within-file",
    ),
    spec_file(
        [{"id": "n1", "command": "true"}, {"id": "done", "command": "true"}],
        id="dup-file-vs-existing",
    ),
    spec_file(
        b'{"id": "n1", "command": "a"}\n{"id": "n1", "command": "b"}\n', id="dup-within-jsonl"
    ),
    spec_file([{"id": "n1", "command": "true"}, {"id": "n2", "command": ""}], id="one-bad-in-file"),
    # ids that are not data
    case("enqueue", "--id", "a\nb", "true", id="id-newline"),
    case("enqueue", '{"id": "a\\nb", "command": "true"}', id="id-newline-json"),
    case("enqueue", "--id", "a b", "true", id="id-space"),
    case("enqueue", '{"id": "", "command": "true"}', id="id-empty"),
    case("enqueue", "--id", "x" * 129, "true", id="id-too-long"),
    # numbers beyond Python's integer digit limit, nesting beyond json's recursion limit
    case("enqueue", '{"command": "x", "priority": ' + "9" * 5000 + "}", id="int-5000-digits"),
    spec_file(b'{"command": "x", "priority": ' + b"9" * 5000 + b"}", id="int-5000-digits-file"),
    spec_file(
        b'{"command": "a"}\n{"command": "x", "timeout": ' + b"9" * 5000 + b"}\n",
        id="int-5000-digits-jsonl",
    ),
    case(
        "enqueue",
        stdin='{"command": "x", "priority": ' + "9" * 5000 + "}",
        id="int-5000-digits-stdin",
    ),
    case(
        "enqueue", '{"command": ' + "[" * 50_000 + "]" * 50_000 + "}", id="nested-spec"
    ),  # < 128 KiB
    case("enqueue", "[" * 50_000 + "]" * 50_000, id="nested-array-argument"),
    spec_file(b"[" * 100_000, id="nested-file"),
    spec_file(b'{"command": "a"}\n' + b"[" * 100_000 + b"\n", id="nested-jsonl"),
    case("enqueue", stdin="[" * 100_000, id="nested-stdin"),
    case("enqueue", "-f", "-", stdin='{"command": ' + "[" * 100_000, id="nested-file-stdin"),
    # a key given twice (json would keep the last silently)
    case("enqueue", '{"command": "rm -rf /tmp/x", "command": "true"}', id="duplicate-key"),
    spec_file(
        b'{"command": "a"}\n{"id": "x", "command": "b", "id": "y"}\n', id="duplicate-key-jsonl"
    ),
    spec_file(b'[{"command": "a", "queue": "q", "queue": "r"}]', id="duplicate-key-array"),
    case(
        "enqueue", stdin='{"command": "a", "priority": 1, "priority": 2}', id="duplicate-key-stdin"
    ),
    # settings
    case("config", "set", "colour", "red", id="config-unknown-set"),
    case("config", "get", "colour", id="config-unknown-get"),
    case("config", "reset", "colour", id="config-unknown-reset"),
    case("config", "set", "max_retries", "-1", id="config-negative"),
    case("config", "set", "max_retries", "1.5", id="config-fraction"),
    case("config", "set", "max_retries", " ", id="config-blank"),
    case("config", "set", "lease", "abc", id="config-word"),
    case("config", "set", "poll_interval", "nan", id="config-nan"),
    case("config", "set", "heartbeat_interval", "inf", id="config-inf"),
    case("config", "set", "max_log_bytes", "1e99", id="config-huge"),
    case("config", "set", "default_timeout", "-5", id="config-timeout-negative"),
]


@pytest.mark.parametrize("args, stdin, files", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(populated, tmp_path, args, stdin, files):
    before = tree_digest(populated)
    line = user_error(run(populated, args, stdin, files, tmp_path), 2)
    assert line.startswith("error: ")
    assert tree_digest(populated) == before


UNKNOWN_IDS = [
    case("show", "nosuch", id="show"),
    case("show", "../../etc/shadow", id="show-path-like"),
    case("logs", "nosuch", id="logs"),
    case("logs", "done", "--attempt", "7", id="logs-unknown-attempt"),
    case("retry", "nosuch", id="retry"),
    case("retry", "flaky", "nosuch", id="retry-failed-and-unknown"),
    case("retry", "dead1", "nosuch", id="retry-dead-and-unknown"),
    case("cancel", "nosuch", id="cancel"),
    case("cancel", "waiting", "nosuch", id="cancel-pending-and-unknown"),
    case("delete", "nosuch", id="delete"),
    case("delete", "done", "nosuch", id="delete-done-and-unknown"),
    case("dlq", "retry", "nosuch", id="dlq-retry"),
    case("dlq", "retry", "dead1", "nosuch", id="dlq-retry-dead-and-unknown"),
]


@pytest.mark.parametrize("args, stdin, files", UNKNOWN_IDS)
def test_unknown_job_id_is_one_line_exit_1_and_changes_nothing(
    populated, tmp_path, args, stdin, files
):
    before = tree_digest(populated)
    line = user_error(run(populated, args, stdin, files, tmp_path), 1)
    assert "nosuch" in line or "shadow" in line or "attempt 7" in line
    assert tree_digest(populated) == before


def test_stopping_an_unknown_worker_id_signals_no_worker(populated):
    started = ok(run_cli(populated, "worker", "start", "--json")).json()[0]
    line = user_error(run_command(populated, "worker", "stop", str(started["id"]), "999"), 1)
    assert "999" in line
    # Had the known worker been signalled it would stop claiming and leave; it still works.
    ok(run_command(populated, "enqueue", "--id", "after-stop", "true"))
    wait_for(
        lambda: (
            run_command(populated, "show", "after-stop", "--json").json()["state"] == "completed"
        ),
        message="the worker to run a job after the refused stop",
    )
    workers = ok(run_command(populated, "worker", "list", "--json")).json()
    assert [(w["id"], w["alive"]) for w in workers] == [(started["id"], True)]
    stopped = ok(run_command(populated, "worker", "stop", "--json")).json()["stopped"]
    assert stopped == [started["id"]]


def test_a_path_like_id_is_just_data(populated):
    """Accepted as data (it has no whitespace or control characters), shown and run like any
    other id; where its output goes never depends on it (see the security tests)."""
    job = ok(run_command(populated, "show", "../../etc/passwd", "--json")).json()
    assert job["id"] == "../../etc/passwd" and job["state"] == "pending"


def test_enqueue_from_a_directory_whose_name_is_not_utf8(populated, tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))  # Latin-1, not UTF-8
    odd.mkdir()
    before = tree_digest(populated)
    line = user_error(run_command(populated, "enqueue", "true", cwd=odd), 2)
    assert "not UTF-8" in line
    assert tree_digest(populated) == before


NOT_UTF8 = os.fsdecode(b"caf\xe9")  # Latin-1 bytes in argv: Python holds them as surrogates

NON_UTF8_ARGS = [
    case("show", NOT_UTF8, id="show"),
    case("logs", NOT_UTF8, id="logs"),
    case("delete", NOT_UTF8, id="delete"),
    case("delete", "done", NOT_UTF8, id="delete-known-and-not-utf8"),
    case("cancel", NOT_UTF8, id="cancel"),
    case("retry", NOT_UTF8, id="retry"),
    case("dlq", "retry", NOT_UTF8, id="dlq-retry"),
    case("list", "--search", NOT_UTF8, id="list-search"),
    case("list", "--queue", NOT_UTF8, id="list-queue"),
]


@pytest.mark.parametrize("args, stdin, files", NON_UTF8_ARGS)
def test_a_non_utf8_id_or_filter_is_one_line_exit_2(populated, tmp_path, args, stdin, files):
    before = tree_digest(populated)
    line = user_error(run(populated, args, stdin, files, tmp_path), 2)
    assert "not UTF-8" in line and r"caf\xe9" in line
    assert tree_digest(populated) == before


@pytest.mark.parametrize(
    "args, stdin, files, words",
    [
        (
            *case("enqueue", '{"command": "a", "command": "b"}', id="x").values,
            "duplicate key 'command'",
        ),
        (
            *spec_file(
                b'{"command": "a"}\n{"command": "b", "queue": "q", "queue": "r"}\n', id="x"
            ).values,
            "line 2: duplicate key 'queue'",
        ),
        (
            *case("enqueue", stdin='{"command": "a", "id": "p", "id": "q"}', id="x").values,
            "duplicate key 'id'",
        ),
        (
            *case("enqueue", '{"command": "x", "priority": ' + "9" * 5000 + "}", id="x").values,
            "4300 digits",
        ),
        (
            *spec_file(b'{"command": "a"}\n' + b"[" * 100_000 + b"\n", id="x").values,
            "line 2: nested too deeply",
        ),
        (
            *spec_file(
                b'{"command": "a", "id": "p", "id": "q"}\n{"command": "b"}\n', id="x"
            ).values,
            "line 1: duplicate key 'id'",
        ),
    ],
)
def test_json_faults_name_the_cause(populated, tmp_path, args, stdin, files, words):
    line = user_error(run(populated, args, stdin, files, tmp_path), 2)
    assert words in line
    assert "--command" not in line  # that hint is for text that is not JSON at all


def test_a_command_that_only_looks_like_json_is_still_a_command(populated):
    """The rule for a SPEC starting with '[': JSON is refused (above), anything else is a shell
    command; input too deep for json to read is told apart without recursion."""
    command = "[" * 50_000  # deeper than json can recurse, shorter than a command may be
    job_id = ok(run_command(populated, "enqueue", command)).out.strip()
    assert ok(run_command(populated, "show", job_id, "--json")).json()["command"] == command
