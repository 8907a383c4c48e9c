"""Helpers for the engine, worker and CLI tests: error-shape checks, database snapshots, and
finding the processes a test's jobs started (by a marker in their environment)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

import helpers
from helpers import Result, wait_for

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JOB_KEYS = {"id", "command", "state", "attempts", "max_retries", "created_at", "updated_at"}
MARK_VAR = "QT_TEST_MARK"


def ok(result: Result) -> Result:
    """The command succeeded and wrote nothing alarming on stderr."""
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err, result.err
    return result


def user_error(result: Result, code: int) -> str:
    """A user error: the expected exit code, exactly one line on stderr, no traceback."""
    assert result.code == code, f"exit {result.code} (wanted {code})\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, f"wanted one line on stderr, got:\n{result.err}"
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
    On PostgreSQL (helpers.DB_URL set), the test's schema instead of the file."""
    if helpers.DB_URL:
        import psycopg2
        con = psycopg2.connect(helpers.DB_URL)
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
        return {table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in ("job", "attempt", "setting", "environment", "meta")}
    finally:
        con.close()


def _pg_has_tables(cur) -> bool:
    cur.execute("SELECT to_regclass('meta') IS NOT NULL")
    return cur.fetchone()[0]


def marked(marker: str, name: str | None = None) -> list[psutil.Process]:
    """Live processes whose environment carries this test's marker (optionally by name)."""
    found = []
    for proc in psutil.process_iter(["environ", "name", "status"]):
        env = proc.info.get("environ") or {}
        if env.get(MARK_VAR) != marker or proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if name is None or proc.info.get("name") == name:
            found.append(proc)
    return found


@pytest.fixture
def mark():
    """A unique marker for the processes of this test's jobs; leftovers are killed after."""
    marker = uuid.uuid4().hex
    yield marker
    for proc in marked(marker):
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def all_gone(marker: str, timeout: float = 10.0) -> None:
    """Every process of the marked job is gone (SIGKILL is asynchronous: allow a deadline)."""
    wait_for(lambda: not marked(marker), timeout=timeout, message=f"the processes marked {marker} to die")


def marked_command(marker: str, command: str) -> str:
    """``command`` run with the marker exported, so every process it starts carries it."""
    return f"export {MARK_VAR}={marker}; {command}"


def worker_pids(home: Path) -> list[int]:
    """PIDs of live worker processes on the database in ``home`` (from the process table)."""
    pids = []
    for proc in psutil.process_iter(["cmdline", "environ", "status"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        env = proc.info.get("environ") or {}
        if ("queuectl_tui" in cmd and " worker run" in cmd and proc.info.get("status") != psutil.STATUS_ZOMBIE
                and (str(home) in cmd or env.get("QUEUECTL_HOME") == str(home)) and proc.pid != os.getpid()):
            pids.append(proc.pid)
    return pids
