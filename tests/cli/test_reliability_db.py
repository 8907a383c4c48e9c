"""Database faults: corrupt files, newer schemas, read-only places, a full disk, long locks.

Every failure must be one line naming the problem (and the file), exit 1, never a traceback,
and leave the database as it was: no half-written change.

"Full disk" is simulated honestly without root tricks: the command runs under RLIMIT_FSIZE
(setrlimit in the child), so any write that would grow a file past the limit fails with EFBIG,
which SQLite reports exactly as it reports a full disk (SQLITE_FULL). What it does not
simulate is a disk that fills while other files shrink; the code path is the same.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import (
    Result,
    cli_env,
    ok,
    permission_preexec,
    run_cli,
    run_command,
    tree_digest,
    user_error,
    wait_for,
)

# reap (conftest.py): kills whatever a test leaves running, even when it fails half-way.
pytestmark = pytest.mark.usefixtures("reap")

COMMANDS = [
    ("status",),
    ("list",),
    ("show", "a"),
    ("enqueue", "true"),
    ("config", "list"),
    ("config", "set", "max_retries", "2"),
    ("worker", "list"),
    ("worker", "start"),
    ("worker", "start", "--foreground", "--burst"),
    ("recover",),
    ("dlq", "list"),
    ("retry", "a"),
    ("cancel", "a"),
    ("delete", "a"),
]


def run_as(home: Path, *args: str, preexec=None, input: str | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "queuectl_tui", *args],
        input=input or "",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home.parent.parent,
        env=cli_env(home),
        preexec_fn=preexec,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def rows(db: Path) -> dict:
    """Every row, read from a copy: even a read-only connection would leave SQLite side files
    next to the original, which changes what a read-only directory allows."""
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal"):
            if Path(f"{db}{suffix}").exists():
                shutil.copyfile(f"{db}{suffix}", Path(tmp) / f"copy.db{suffix}")
        con = sqlite3.connect(Path(tmp) / "copy.db")
        try:
            return {
                t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("job", "attempt", "setting", "environment", "meta")
            }
        finally:
            con.close()


def db_digest(home: Path) -> dict[str, str]:
    """The database's own files only (``worker start`` may legitimately create its log)."""
    return {k: v for k, v in tree_digest(home).items() if k.startswith("queuectl.db")}


def populate(home: Path, jobs: int = 3) -> None:
    ok(run_command(home, "enqueue", "--id", "a", "true"))
    for n in range(1, jobs):
        ok(run_command(home, "enqueue", "--id", f"job{n}", f"echo {n}"))


# --- corrupt and foreign files ---------------------------------------------------------------


def test_random_bytes_are_refused_naming_the_file(cli, home):
    home.mkdir()
    db = home / "queuectl.db"
    db.write_bytes(b"\x00not sqlite\xff" + os.urandom(64 * 1024))
    before = tree_digest(home)
    for args in COMMANDS:
        line = user_error(cli(*args), 1)
        assert str(db) in line and "corrupt" in line, (args, line)
    assert tree_digest(home) == before


def test_damaged_pages_give_a_clear_error_never_a_traceback(home, tmp_path):
    populate(home, 60)
    db = home / "queuectl.db"
    data = bytearray(db.read_bytes())
    page = 4096
    data[2 * page : 6 * page] = os.urandom(4 * page)  # keep the header, wreck the tables
    db.write_bytes(bytes(data))
    failed = []
    for args in COMMANDS:  # each on a fresh copy of the damaged directory
        copy = tmp_path / f"copy{len(failed)}-{args[0]}" / "qhome"
        shutil.copytree(home, copy)
        before = db_digest(copy)
        result = run_command(copy, *args)
        assert "Traceback" not in result.err, (args, result.err)
        if result.code != 0:
            line = user_error(result, 1)
            assert str(copy / "queuectl.db") in line, (args, line)
            if args[:2] != ("worker", "start"):  # a worker registers before it meets the damage
                assert db_digest(copy) == before, args
            failed.append(args)
        shutil.rmtree(copy.parent)
    assert ("status",) in failed


def test_a_database_from_a_newer_schema_is_refused(cli, home):
    populate(home)
    con = sqlite3.connect(home / "queuectl.db")
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    before = tree_digest(home)
    for args in COMMANDS:
        line = user_error(cli(*args), 1)
        assert "schema version 99" in line and "newer" in line, (args, line)
    assert tree_digest(home) == before


def test_an_sqlite_file_that_is_not_ours_is_refused(cli, home):
    home.mkdir()
    con = sqlite3.connect(home / "queuectl.db")
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    con.execute("INSERT INTO photos (path) VALUES ('holiday.jpg')")
    con.commit()
    con.close()
    before = tree_digest(home)
    line = user_error(cli("enqueue", "true"), 1)
    assert "not a queuectl one" in line
    assert tree_digest(home) == before


def _foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    con.commit()
    con.close()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_foreign_sqlite, id="foreign-sqlite"),
        pytest.param(lambda path: path.write_bytes(os.urandom(8192)), id="random-bytes"),
        pytest.param(lambda path: path.mkdir(), id="directory"),
    ],
)
def test_nothing_is_created_beside_a_refused_database(tmp_path, make):
    place = tmp_path / "place"
    place.mkdir()
    make(place / "data.db")
    before = sorted(os.listdir(place))
    for args in (("status",), ("enqueue", "true"), ("worker", "start", "--foreground", "--burst")):
        line = user_error(
            run_command(tmp_path / "unused", "--db", str(place / "data.db"), *args), 1
        )
        assert str(place / "data.db") in line
        assert sorted(os.listdir(place)) == before, args  # no logs/, no journal


def test_a_device_is_not_a_database(tmp_path):
    """``--db /dev/null`` (as root) wrote a world-readable /dev/null-journal and made /dev/logs."""
    beside = [Path("/dev/logs"), Path("/dev/null-journal")]
    existed = [p for p in beside if os.path.lexists(p)]
    try:
        line = user_error(
            run_command(tmp_path / "unused", "--db", "/dev/null", "enqueue", "true"), 1
        )
        assert "/dev/null" in line and "not a database file" in line
        assert [p for p in beside if os.path.lexists(p)] == existed
    finally:  # put /dev back as it was if the refusal failed
        for path in beside:
            if path not in existed and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path not in existed and os.path.lexists(path):
                path.unlink()


# --- read-only places ------------------------------------------------------------------------


@pytest.fixture
def as_user():
    return permission_preexec()


def test_a_read_only_data_directory_refuses_writes_cleanly(home, as_user):
    populate(home)
    db = home / "queuectl.db"
    before, before_rows = tree_digest(home), rows(db)
    home.chmod(0o500)
    try:
        for args in [
            ("enqueue", "true"),
            ("config", "set", "max_retries", "1"),
            ("retry", "a"),
            ("worker", "start", "--foreground", "--burst"),
        ]:
            line = user_error(run_as(home, *args, preexec=as_user), 1)
            assert str(db) in line and ("write" in line or "read-only" in line), (args, line)
        # Reading needs the write-ahead log's index file: it works if that exists, else the
        # same clean refusal.
        status = run_as(home, "status", preexec=as_user)
        if status.code:
            assert str(db) in user_error(status, 1)
    finally:
        home.chmod(0o700)
    assert tree_digest(home) == before and rows(db) == before_rows


def test_a_read_only_database_file_can_be_read_but_not_written(home, as_user):
    populate(home)
    db = home / "queuectl.db"
    before_rows = rows(db)
    db.chmod(0o400)
    try:
        status = ok(run_as(home, "status", "--json", preexec=as_user)).json()
        assert status["total"] == 3
        for args in [("enqueue", "true"), ("config", "set", "max_retries", "1"), ("cancel", "a")]:
            line = user_error(run_as(home, *args, preexec=as_user), 1)
            assert str(db) in line and "write" in line, (args, line)
    finally:
        db.chmod(0o600)
    assert rows(db) == before_rows


def test_no_database_can_be_created_under_a_read_only_directory(tmp_path, as_user):
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o500)
    home = parent / "qhome"
    try:
        line = user_error(run_as(home, "enqueue", "true", preexec=as_user), 1)
        assert "cannot create database" in line and str(home / "queuectl.db") in line
    finally:
        parent.chmod(0o700)
    assert list(parent.iterdir()) == []


# --- full disk -------------------------------------------------------------------------------


def file_size_limit(limit: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_full_disk_fails_a_bulk_enqueue_whole_and_names_the_cause(home, tmp_path):
    populate(home)
    db = home / "queuectl.db"
    before, before_rows = tree_digest(home), rows(db)
    bulk = tmp_path / "bulk.json"
    bulk.write_text(
        json.dumps([{"id": f"big{n}", "command": "echo " + "x" * 4000} for n in range(300)])
    )
    limited = file_size_limit(db.stat().st_size)  # about 1.2 MB of jobs cannot fit
    line = user_error(run_as(home, "enqueue", "-f", str(bulk), preexec=limited), 1)
    assert "disk full" in line and str(db) in line, line
    assert rows(db) == before_rows
    assert tree_digest(home) == before
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_a_disk_with_no_room_at_all_refuses_every_write(home):
    populate(home)
    db = home / "queuectl.db"
    before_rows = rows(db)
    full = file_size_limit(0)
    for args in [
        ("enqueue", "true"),
        ("config", "set", "max_retries", "1"),
        ("cancel", "a"),
        ("delete", "job1"),
    ]:
        line = user_error(run_as(home, *args, preexec=full), 1)
        # A write refused outright is EFBIG, which SQLite reports as an I/O error (a real full
        # disk, ENOSPC, and a short write both say "full"): either way, named as such.
        assert ("disk full" in line or "is the disk full" in line) and str(db) in line, (args, line)
    status = run_as(home, "status", "--json", preexec=full)  # reading needs room for the WAL index
    assert status.json()["total"] == 3 if status.code == 0 else str(db) in user_error(status, 1)
    assert rows(db) == before_rows


def test_a_job_whose_log_hits_a_full_disk_still_finishes(home):
    """The log cannot grow past 2 MB; the job writes 4 MB. It must run to its end (not block on
    a pipe nobody drains) and say in its output tail why the log is short."""
    ok(
        run_command(
            home,
            "enqueue",
            "--id",
            "chatty",
            "--timeout",
            "60",
            "--max-retries",
            "0",
            "yes 0123456789 | head -c 4194304; echo done",
        )
    )
    limit = 2 * 1024 * 1024
    ok(run_as(home, "worker", "start", "--foreground", "--burst", preexec=file_size_limit(limit)))
    job = ok(run_command(home, "show", "chatty", "--json")).json()
    assert (job["state"], job["attempts"]) == ("completed", 1), job["last_error"]
    assert "the log stopped after 2097152 bytes (File too large)" in job["output_tail"]
    assert Path(job["attempt_list"][0]["log_file"]).stat().st_size == limit


# --- a database locked by another process ----------------------------------------------------

LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
con.execute("INSERT INTO job (id, command, queue, state, priority, attempts, max_retries,"
            " backoff_base, run_at, created_at, updated_at, cwd, cancel_requested)"
            " VALUES ('from-locker', 'true', 'default', 'pending', 0, 0, 0, 2, 0, 0, 0, '/', 0)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the fault: hold the write lock this long
con.execute("COMMIT")
print("released", flush=True)
"""


def test_commands_wait_out_a_lock_held_for_a_few_seconds(cli, home):
    populate(home)
    db = home / "queuectl.db"
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout.readline().strip() == "locked"
        # Reads are not blocked by a writer (WAL); writes queue behind it and then succeed.
        assert ok(cli("status", "--json")).json()["total"] == 3
        ok(cli("enqueue", "--id", "patient", "true"))
        ok(cli("config", "set", "max_retries", "5"))
        assert locker.stdout.readline().strip() == "released"
    finally:
        locker.kill()
        locker.wait()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    order = dict(con.execute("SELECT id, seq FROM job WHERE id IN ('from-locker', 'patient')"))
    con.close()
    assert order["patient"] > order["from-locker"]  # it was written after the lock was released
    assert ok(cli("config", "get", "max_retries")).out.strip() == "5"


#: A worker that freezes (SIGSTOP) inside its write transaction: it has registered and claimed
#: the job "held", and keeps the writers' lock and SQLite's write lock while stopped.
FROZEN_WRITER = """
import os, signal, sys
from queuectl_tui import engine
from queuectl_tui.store import open_db, write_transaction
open_db(sys.argv[1])
worker = engine.register_worker()
engine.claim(worker)
with write_transaction():
    engine.heartbeat(worker.id)
    print(worker.id, flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
"""


def frozen_writer(home: Path) -> tuple[subprocess.Popen, int]:
    """(its process, its worker id), once it is stopped with both locks held."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, "-c", FROZEN_WRITER, str(home / "queuectl.db")],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(home),
    )
    worker_id = int(proc.stdout.readline())
    wait_for(
        lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED,
        message="the writer to freeze",
    )
    return proc, worker_id


#: A command whose writers' lock wait is cut to 1 s (the real one is 15 s, as SQLite's).
SHORT_WAIT_COMMAND = """
import sys
from queuectl_tui.store import sqlite
sqlite.WRITERS_WAIT = 1.0
from queuectl_tui.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("where", ["command", "thread"])
def test_a_writer_frozen_with_the_writers_lock_holds_up_others_only_for_the_busy_timeout(
    home, monkeypatch, where
):
    """Ctrl+Z (or SIGSTOP) of a writer inside its transaction: every other writer gave up after
    the busy timeout on SQLite's own lock, but waited for the writers' lock (taken first) for
    good. Both waits are bounded now, and the error says who holds the lock: in a command (the
    main thread, woken by the kernel or a timer) and in another thread (which polls)."""
    import threading

    from queuectl_tui import engine, spec
    from queuectl_tui import store as database_module
    from queuectl_tui.store import describe_db_error, open_db

    ok(run_command(home, "config", "set", "lease", "600"))  # frozen but not lost: nobody kills it
    holder, _ = frozen_writer(home)
    try:
        if where == "command":
            proc = subprocess.run(
                [sys.executable, "-c", SHORT_WAIT_COMMAND, "enqueue", "true"],
                capture_output=True,
                text=True,
                timeout=60,
                env=cli_env(home),
                cwd=home,
            )
            line = user_error(Result(proc.returncode, proc.stdout, proc.stderr), 1)
        else:
            open_db(home / "queuectl.db")
            monkeypatch.setattr(database_module.sqlite, "WRITERS_WAIT", 1.0)
            outcome = []

            def write() -> None:
                try:
                    engine.enqueue([spec.normalize({"command": "true"})], cwd=str(home), env={})
                    outcome.append("written")
                except Exception as exc:  # noqa: BLE001 (what the writer met is the result)
                    outcome.append(exc)

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            writer.join(timeout=60)  # a hang detector, not a timing: the wait is 1 s here
            assert outcome, "the writer still waits for the frozen holder's lock"
            assert isinstance(outcome[0], database_module.OperationalError), outcome
            line = describe_db_error(outcome[0])
        assert "stayed locked by another process" in line, line
        assert f"by process {holder.pid} (stopped)" in line, line
    finally:
        holder.kill()
        holder.wait()
        database_module.close_db()
    ok(run_command(home, "enqueue", "true"))  # the holder gone, its locks are free


@pytest.mark.parametrize("recovered_by", ["recover", "new-worker"])
def test_recovery_takes_back_the_job_of_a_worker_frozen_holding_the_write_locks(home, recovered_by):
    """A worker frozen inside its write transaction keeps the writers' lock and SQLite's: once
    it is lost (stopped, heartbeat past the lease), recovery (``recover``, a worker's start, or
    a worker whose write failed) kills it, known by PID and start time, which frees both
    locks, and takes its job back; the job then runs."""
    import psutil

    ok(run_command(home, "config", "set", "lease", "1"))
    ok(run_command(home, "enqueue", "--id", "held", "true"))
    holder, worker_id = frozen_writer(home)
    try:
        wait_for(
            lambda: ok(run_command(home, "worker", "list", "--json")).json()[0]["alive"] is False,
            message="the frozen worker to be presumed lost",
        )
        if recovered_by == "recover":
            assert ok(run_command(home, "recover", "--json")).json() == {"recovered": ["held"]}
            job = ok(run_command(home, "show", "held", "--json")).json()
            assert job["state"] == "pending" and job["attempt_list"][0]["outcome"] == "interrupted"
        ok(run_cli(home, "worker", "start", "--foreground", "--burst", timeout=60))
        assert holder.wait(timeout=10) == -9 and not psutil.pid_exists(holder.pid)
        job = ok(run_command(home, "show", "held", "--json")).json()
        assert job["state"] == "completed"
        assert [a["outcome"] for a in job["attempt_list"]] == ["interrupted", "completed"]
        assert worker_id not in [
            w["id"] for w in ok(run_command(home, "worker", "list", "--json")).json()
        ]
    finally:
        holder.kill()
        holder.wait()


# --- logs directory gone or unwritable -------------------------------------------------------


def test_a_database_moved_without_its_logs_directory_still_runs_jobs(home):
    populate(home)
    shutil.rmtree(home / "logs")  # moved without it, or deleted to free space
    ok(run_cli(home, "worker", "start", "--foreground", "--burst"))
    jobs = ok(run_command(home, "list", "--json")).json()
    assert {j["state"] for j in jobs} == {"completed"}
    assert (home / "logs").stat().st_mode & 0o777 == 0o700


def test_a_database_reached_through_a_symlink_is_the_same_database_in_every_respect(home):
    """SQLite follows a link to the file (its -wal is beside the real one); so must everything
    else: the logs, the workers' log and journals, the writers' lock."""
    real, there = home / "real", home / "there"
    there.mkdir(parents=True)
    ok(run_command(home, "--db", str(real / "q.db"), "status"))
    (there / "q.db").symlink_to(real / "q.db")
    (home.parent / "alias").symlink_to(there)  # a link in the directory chain as well
    links = {"a": there / "q.db", "b": home.parent / "alias" / "q.db"}
    for job_id, link in links.items():
        ok(run_command(home, "--db", str(link), "enqueue", "--id", job_id, "echo hi"))
        ok(run_cli(home, "--db", str(link), "worker", "start", "--foreground", "--burst"))
    ok(run_cli(home, "--db", str(links["a"]), "worker", "start"))
    ok(run_command(home, "--db", str(links["a"]), "worker", "stop"))
    for job_id in links:  # by the real path, the logs written through either link
        assert ok(run_command(home, "--db", str(real / "q.db"), "logs", job_id)).out == "hi\n"
    assert (real / "logs" / "workers.log").exists()
    assert [p.name for p in there.iterdir()] == ["q.db"]  # no logs/, -wal, -shm beside the link
    assert not (home.parent / "logs").exists()


def test_a_log_that_cannot_be_created_fails_the_attempt_not_the_worker(home, as_user):
    ok(run_command(home, "enqueue", "--id", "nolog", "--max-retries", "0", "echo hi"))
    ok(run_command(home, "enqueue", "--id", "after", "--max-retries", "0", "echo hi"))
    (home / "logs").chmod(0o500)
    try:
        ok(run_as(home, "worker", "start", "--foreground", "--burst", preexec=as_user))
    finally:
        (home / "logs").chmod(0o700)
    for job_id in ("nolog", "after"):  # the worker survived the first and ran the second
        job = ok(run_command(home, "show", job_id, "--json")).json()
        assert job["state"] == "dead"
        assert (
            job["last_error"].startswith("cannot create the log file")
            and "Permission denied" in job["last_error"]
        )
