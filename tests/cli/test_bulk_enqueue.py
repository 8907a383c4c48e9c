"""Bulk enqueue (``enqueue -f FILE``, ``-f -``, JSON on standard input): streamed, all or nothing,
and a refusal names the line and the id. Speed and memory at 100k-1M lines: bench/bulk_enqueue.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli_env, ok, run_command, tree_digest, user_error, wait_for

pytestmark = [pytest.mark.usefixtures("reap"), pytest.mark.both_backends]

LINES = 20_000


def jsonl(path: Path, jobs) -> Path:
    path.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    return path


def many(n: int = LINES, prefix: str = "b"):
    return [{"id": f"{prefix}{i}", "command": f"echo {i}"} for i in range(n)]


@pytest.fixture
def queue(home):
    """A database holding one job, 'old'."""
    ok(run_command(home, "enqueue", "--id", "old", "true"))
    return home


def count(home: Path) -> int:
    return ok(run_command(home, "status", "--json")).json()["total"]


def test_a_large_file_is_enqueued_in_order(queue, tmp_path):
    jobs = many()
    for n in range(0, LINES, 7):  # some without an id: generated
        del jobs[n]["id"]
    path = jsonl(tmp_path / "jobs.jsonl", jobs)
    out = ok(run_command(queue, "enqueue", "-f", str(path))).out.split()
    assert len(out) == LINES == len(set(out))
    assert [i for i, job in zip(out, jobs, strict=False) if "id" in job] == [
        job["id"] for job in jobs if "id" in job
    ]
    listed = ok(run_command(queue, "list", "--limit", "0", "--json")).json()[::-1]  # newest first
    assert [j["id"] for j in listed] == ["old"] + out
    assert [j["command"] for j in listed[1:]] == [job["command"] for job in jobs]


@pytest.mark.parametrize(
    "bad, words",
    [
        pytest.param(
            lambda jobs: jobs.__setitem__(LINES - 2, {"command": ""}),
            f"line {LINES - 1}: command is empty; nothing enqueued",
            id="bad-line-near-the-end",
        ),
        pytest.param(
            lambda jobs: jobs.__setitem__(LINES - 2, "{oops"),
            f"invalid JSON on line {LINES - 1}",
            id="invalid-json-near-the-end",
        ),
        pytest.param(
            lambda jobs: jobs[LINES - 3].__setitem__("id", "b5"),
            f"line {LINES - 2}: duplicate job id 'b5' in the input (first on line 6); "
            "nothing enqueued",
            id="duplicate-within-the-file",
        ),
        pytest.param(
            lambda jobs: jobs[LINES - 4].__setitem__("id", "old"),
            f"line {LINES - 3}: job id 'old' already exists; nothing enqueued",
            id="id-already-in-the-database",
        ),
    ],
)
def test_one_bad_line_enqueues_nothing(queue, tmp_path, bad, words):
    jobs = many()
    bad(jobs)
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join((j if isinstance(j, str) else json.dumps(j)) + "\n" for j in jobs))
    before = tree_digest(queue)
    line = user_error(run_command(queue, "enqueue", "-f", str(path)), 2)
    assert words in line
    assert tree_digest(queue) == before
    assert count(queue) == 1


def test_standard_input_is_read_as_a_stream(queue):
    """A bad second line is refused while the input is still open: the lines are checked as
    they come, not after the whole input has been read into memory."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "enqueue", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=queue.parent,
        env=cli_env(queue),
    )
    try:
        proc.stdin.write(b'{"command": "true"}\n{"command": 5}\n')
        proc.stdin.flush()
        wait_for(lambda: proc.poll() is not None, message="enqueue to refuse line 2 before EOF")
        assert proc.returncode == 2
        assert b"line 2: command must be a string" in proc.stderr.read()
    finally:
        proc.kill()
        proc.communicate()
    assert count(queue) == 1


def test_json_output_of_a_bulk_enqueue_is_the_list_of_jobs(queue, tmp_path):
    path = jsonl(tmp_path / "jobs.jsonl", many(3))
    out = ok(run_command(queue, "enqueue", "-f", str(path), "--json")).out
    jobs = json.loads(out)
    assert [j["id"] for j in jobs] == ["b0", "b1", "b2"] and jobs[0]["state"] == "pending"
    assert out == json.dumps(jobs, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.sqlite_only  # randomblob(), SQLite's drawing of ids
def test_generated_ids_that_repeat_are_drawn_again(db, tmp_path):
    """Ids are 48 random bits: a repeat is rare but possible, with a job already stored or
    within the input. It is drawn again; it never fails the enqueue."""
    import random

    from queuectl_tui import engine, spec

    engine.enqueue([spec.normalize({"id": "00", "command": "true"})], cwd=str(tmp_path), env={})
    # randomblob() drawing from 4 values (00 to 03) for this connection: repeats are certain
    db.connection().create_function("randomblob", 1, lambda n: bytes([random.randrange(4)]))
    specs = [("", spec.normalize({"command": "true"})) for _ in range(3)]
    with engine.enqueue_stream(specs, cwd=str(tmp_path), env={}) as added:
        ids = list(added.ids())
    assert sorted(ids) == ["01", "02", "03"]


@pytest.mark.parametrize("stored", [False, True], ids=["within-the-input", "with-a-stored-job"])
def test_ids_drawn_by_the_process_that_repeat_are_drawn_again(db, tmp_path, monkeypatch, stored):
    """PostgreSQL's bulk enqueue draws the ids in the process (enqueueing._draw_ids) before
    it copies the lines in; a repeat within the input, or of a stored job's id, fails that
    copy: the lines are then staged, the repeats drawn again, and every line is enqueued."""
    import itertools

    from queuectl_tui import engine, spec
    from queuectl_tui.engine import enqueueing

    engine.enqueue(
        [spec.normalize({"id": "000000000001", "command": "true"})], cwd=str(tmp_path), env={}
    )
    drawn = itertools.chain(
        ["000000000001"] if stored else ["00000000000a", "00000000000a"], itertools.count()
    )
    monkeypatch.setattr(enqueueing, "_draw_ids", lambda n: [f"{next(drawn):012}" for _ in range(n)])
    specs = [(f"line {n}", spec.normalize({"command": f"echo {n}"})) for n in range(3)]
    specs.insert(1, ("line x", spec.normalize({"id": "given", "command": "echo given"})))
    with engine.enqueue_stream(specs, cwd=str(tmp_path), env={}) as added:
        ids = list(added.ids())
        jobs = [(job.id, job.command) for job in added.jobs()]
    assert len(set(ids)) == 4 and ids[1] == "given" and "000000000001" not in ids
    assert jobs == list(zip(ids, ["echo 0", "echo given", "echo 1", "echo 2"], strict=True))
    assert sorted(j.id for j in engine.list_jobs(limit=0)) == sorted(ids + ["000000000001"])
