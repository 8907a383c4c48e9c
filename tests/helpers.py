"""The test helpers (fixtures are in conftest.py): run the real CLI in a subprocess and check
what it printed, poll a condition with a deadline, snapshot a database (rows) or a data
directory (bytes), find the processes a test's jobs started (by a marker in their environment
or a token on their command line), and make file modes bind a root child."""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


#: The PostgreSQL URL of the running test (its own schema), or None on SQLite: set by the
#: ``home`` fixture (conftest.py), passed to every CLI the test starts.
DB_URL: str | None = None


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["QUEUECTL_HOME"] = str(home)
    if DB_URL:
        env["QUEUECTL_DB"] = DB_URL
    env.update(extra)
    return env


def run_cli(
    home: Path,
    *args: str,
    input: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run ``python -m queuectl_tui ARGS`` on the database in ``home`` (cwd: its parent)."""
    proc = subprocess.run(
        [sys.executable, "-m", "queuectl_tui", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or home.parent,
        env=env or cli_env(home),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


#: Commands that start or block on processes, or install signal handlers: ``cli`` runs them as a
#: real process whatever the test asks (in this process a foreground worker would run inside
#: pytest, a detached one would be pytest's child, ``metrics serve`` would take its SIGTERM).
PROCESS_COMMANDS = {
    ("worker", "start"),
    ("worker", "run"),
    ("metrics", "serve"),
    ("wait",),
    ("web",),
    ("demo",),
}


def needs_process(args: tuple[str, ...]) -> bool:
    """Whether ``queuectl-tui ARGS`` must run in a process of its own (``PROCESS_COMMANDS``,
    ``logs --follow``, ``enqueue --wait``)."""
    rest = list(args)
    while rest and rest[0].startswith("-"):  # the group's options: --db X, --no-ui
        rest = rest[2:] if rest[0] == "--db" else rest[1:]
    if not rest:
        return False
    command = tuple(rest[:2]) if rest[0] in ("worker", "metrics") else (rest[0],)
    if command in PROCESS_COMMANDS:
        return True
    if rest[0] == "logs" and ("-f" in rest or "--follow" in rest):
        return True
    return rest[0] == "enqueue" and "--wait" in rest


def run_in_process(
    home: Path,
    *args: str,
    input: str | bytes | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """``run_cli`` without a new interpreter (~0.3 s less a call): ``cli.main(ARGS)`` in this
    process, seeing what the real command would: the same environment (``env``, else
    ``cli_env(home)``, replacing ``os.environ`` for the call), working directory, an empty or
    given standard input that is not a terminal, stdout and stderr as pipes (click's
    ``CliRunner`` isolation), its exit code, and a database connection of its own, closed
    after it (the test's own connection, if it has one, is put back untouched). ``timeout``
    is accepted for ``run_cli``'s signature; a command that could block runs as a process
    (``needs_process``)."""
    from click.testing import CliRunner

    from queuectl_tui import store
    from queuectl_tui.cli import main
    from queuectl_tui.store.models import database

    wanted = env if env is not None else cli_env(home)
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in wanted}
    overrides.update(wanted)
    old_tz, old_cwd = os.environ.get("TZ"), os.getcwd()
    saved = database.obj
    database.initialize(None)  # the command opens its own, as a new process would
    code = 0
    try:
        os.chdir(cwd or home.parent)
        stdin = _Stdin(input.encode() if isinstance(input, str) else input or b"")
        with CliRunner().isolation(input=stdin, env=overrides) as (out, err, _):
            if os.environ.get("TZ") != old_tz:
                time.tzset()
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if isinstance(exc.code, str):
                    sys.stderr.write(exc.code + "\n")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                store.close_db()
            stdout, stderr = out.getvalue(), err.getvalue()
    finally:
        database.initialize(saved)
        os.chdir(old_cwd)
        if os.environ.get("TZ") != wanted.get("TZ"):
            time.tzset()
    return Result(code, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def run_command(home: Path, *args: str, **kwargs) -> Result:
    """What the ``cli`` fixture does: ``run_in_process``, or ``run_cli`` for a command that
    needs a process of its own (``needs_process``)."""
    return (run_cli if needs_process(args) else run_in_process)(home, *args, **kwargs)


class _Stdin(io.BytesIO):
    """Standard input as a pipe looks (``sys.stdin.buffer``, named as Python names it)."""

    name = "<stdin>"


def run_here(*args: str, input: str = "", env: dict[str, str] | None = None) -> Result:
    """``run_in_process`` in this test's environment as it is (``env`` added to it) and its
    working directory."""
    home = Path(os.environ.get("QUEUECTL_HOME") or Path.cwd())
    return run_in_process(
        home, *args, input=input, cwd=Path.cwd(), env={**os.environ, **(env or {})}
    )


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# --- the engine in-process, on a fixed clock (fixtures add and worker: conftest.py) ---------

#: The clock of in-process engine tests: every timing decision is driven by ``now=``.
T0 = 1_800_000_000.0


def state(job_id: str):
    """The job's row as it is now."""
    from queuectl_tui.store.models import Job

    return Job.get(Job.id == job_id)


def outcomes(job_id: str) -> list[tuple]:
    """(number, outcome) of each of the job's attempts."""
    from queuectl_tui import engine

    return [(a.number, a.outcome) for a in engine.attempts_of(state(job_id))]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def started(claimed) -> tuple:
    """Record a (finished) process for the claimed attempt: its command had started."""
    from queuectl_tui import engine

    job, attempt = claimed
    engine.record_process(attempt, dead_pid(), 0.0)
    return job, attempt


# --- results, JSON, snapshots ------------------------------------------------------------

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JOB_KEYS = {"id", "command", "state", "attempts", "max_retries", "created_at", "updated_at"}
MARK_VAR = "QT_TEST_MARK"


def _shown(result: Result) -> str:
    """The end of what a command printed, for a failed assertion's message."""
    return f"stdout: {result.out[-2000:]}\nstderr: {result.err[-2000:]}"


def ok(result: Result) -> Result:
    """The command succeeded and wrote no traceback."""
    assert result.code == 0, f"exit {result.code}\n{_shown(result)}"
    assert "Traceback" not in result.err, result.err
    return result


def user_error(result: Result, code: int) -> str:
    """A user error: the expected exit code, exactly one non-empty line on stderr, no
    traceback; returns the line."""
    assert result.code == code, f"exit {result.code} (wanted {code})\n{_shown(result)}"
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, f"wanted one line on stderr, got:\n{result.err}"
    assert lines[0].strip(), "the error line is empty"
    return lines[0]


def parse_iso(text: str) -> float:
    assert ISO_UTC.match(text), f"{text!r} is not ISO-8601 UTC with a Z"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_job_json(data: dict[str, Any]) -> None:
    missing = JOB_KEYS - set(data)
    assert not missing, f"job JSON lacks {missing}: {data}"
    for key in ("created_at", "updated_at"):
        parse_iso(data[key])
    assert isinstance(data["attempts"], int) and isinstance(data["max_retries"], int)


def snapshot(db_file: Path) -> dict[str, list[tuple]] | None:
    """Every row that a user-visible change would touch (workers excluded: they heartbeat).
    On PostgreSQL (DB_URL set), the test's schema instead of the file."""
    if DB_URL:
        import psycopg2

        con = psycopg2.connect(DB_URL)
        try:
            cur = con.cursor()
            if not _pg_has_tables(cur):
                return None
            result = {}
            for table in ("job", "attempt", "setting", "environment", "meta"):
                cur.execute(f"SELECT * FROM {table}")
                result[table] = sorted(cur.fetchall(), key=repr)
            return result
        finally:
            con.close()
    if not db_file.exists():
        return None
    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        return {
            table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("job", "attempt", "setting", "environment", "meta")
        }
    finally:
        con.close()


def _pg_has_tables(cur) -> bool:
    cur.execute("SELECT to_regclass('meta') IS NOT NULL")
    return cur.fetchone()[0]


#: When the running test began (time.time(), set by conftest.py): a process started before it
#: carries none of its markers. START_SLACK: psutil's start times count from a boot time
#: rounded to the second.
TEST_BEGAN = 0.0
START_SLACK = 5.0


def marked(marker: str, name: str | None = None) -> list[psutil.Process]:
    """Live processes whose environment carries this test's marker (optionally by name). The
    environment (the costly read) is read only for processes started since the test began."""
    found = []
    since = TEST_BEGAN - START_SLACK
    for proc in psutil.process_iter(["create_time", "name", "status"]):
        if (
            (proc.info.get("create_time") or 0) < since
            or proc.info.get("status") == psutil.STATUS_ZOMBIE
            or (name is not None and proc.info.get("name") != name)
        ):
            continue
        try:
            if proc.environ().get(MARK_VAR) == marker:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def all_gone(marker: str, timeout: float = 10.0) -> None:
    """Every process of the marked job is gone (SIGKILL is asynchronous: allow a deadline)."""
    wait_for(
        lambda: not marked(marker), timeout=timeout, message=f"the processes marked {marker} to die"
    )


def marked_command(marker: str, command: str) -> str:
    """``command`` run with the marker exported, so every process it starts carries it."""
    return f"export {MARK_VAR}={marker}; {command}"


def worker_pids(home: Path) -> list[int]:
    """PIDs of live worker processes on the database in ``home`` (from the process table)."""
    pids = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if (
            "queuectl_tui" not in cmd
            or " worker run" not in cmd
            or proc.info.get("status") == psutil.STATUS_ZOMBIE
            or proc.pid == os.getpid()
        ):
            continue
        try:  # the environment (the costly read) of the workers only
            if str(home) in cmd or proc.environ().get("QUEUECTL_HOME") == str(home):
                pids.append(proc.pid)
        except psutil.Error:
            pass
    return pids


# --- the reliability suite ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
STRESS = ROOT / "bench" / "stress.py"

#: Size of the load and chaos scenarios: 1.0 is the full 4 producers x 2,000 jobs. The default
#: keeps the whole reliability suite to a couple of minutes on a 2-core CI machine; run
#: QUEUECTL_STRESS_SCALE=1 pytest tests/processes/test_reliability_load.py for the full size.
DEFAULT_SCALE = 0.5
SCALE = float(os.environ.get("QUEUECTL_STRESS_SCALE") or DEFAULT_SCALE)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (the database and its logs):
    byte-for-byte, so "unchanged" means unchanged, not "the same rows".

    Two SQLite side files are not data and are left out: ``-shm`` (the shared-memory index of
    the write-ahead log, rebuilt by whoever opens the database, even a reader) and an empty
    ``-wal`` (a log with nothing in it, which a reader that cannot delete it leaves behind).
    A ``-wal`` with content is data and counts."""
    result = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith("-shm"):
            continue
        data = path.read_bytes()
        if path.name.endswith("-wal") and not data:
            continue
        result[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return result


def token() -> str:
    """A unique number usable as a ``sleep`` argument, so its processes can be found."""
    return f"{600 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"


def processes_with(text: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if text in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def kill_processes_with(text: str) -> None:
    for proc in processes_with(text):
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a parent that is not us counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- permissions -----------------------------------------------------------------------------

_PR_CAPBSET_DROP = 24
_DAC_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _drop_dac() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def permission_preexec():
    """A preexec_fn under which file modes bind the child like any user.

    Not root: nothing to do. Root (as in CI): the child keeps uid 0 (so it can still run the
    interpreter under /root) but loses the capabilities that let root ignore file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from its bounding set before exec, so a
    0500 directory is read-only to it exactly as to its owner. Skips the test if that is not
    possible here (no CAP_SETPCAP, not Linux)."""
    if os.geteuid() != 0:
        return None
    if not sys.platform.startswith("linux"):
        pytest.skip("running as root and cannot drop the DAC capabilities on this platform")
    import subprocess

    try:
        subprocess.run(
            [sys.executable, "-c", "pass"], preexec_fn=_drop_dac, check=True, capture_output=True
        )
    except (subprocess.SubprocessError, OSError):
        pytest.skip("running as root without CAP_SETPCAP: cannot make file modes bind a child")
    return _drop_dac


V1 = ROOT / "tests" / "fixtures" / "schema_v1.sql"


def make_v1(path: Path) -> Path:
    """A database as the first release made it, with one pending job."""
    con = sqlite3.connect(path)
    con.executescript(V1.read_text())
    con.execute(
        "INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, backoff_base,"
        " run_at, created_at, updated_at, cwd, cancel_requested)"
        " VALUES ('old-job', 'echo from v1', 'default', 'pending', 0, 0, 3, 2, 0, 0, 0, '/', 0)"
    )
    con.commit()
    con.close()
    return path
