"""Waking a sleeper (idle worker, ``wait``) when another process commits: at once through an
inotify watch on the ``-wal`` file, and still, by polling, where there is no watch."""

from __future__ import annotations

import sys
import time

import pytest

from helpers import cli_env
from queuectl_tui import wake
from queuectl_tui.store import change_token

pytestmark = pytest.mark.sqlite_only


def _enqueue_from_another_process(home, procs):
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "enqueue", "true"],
        stdout=subprocess.DEVNULL,
        env=cli_env(home),
        cwd=home.parent,
    )
    procs.append(proc)
    return proc


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _watching(db) -> bool:
    """Set the watch as an idle worker or ``wait`` would: after reading (which makes SQLite
    create the -wal file of a database just opened)."""
    db.execute_sql("SELECT count(*) FROM job").fetchone()
    wake.sleep(0)
    return wake._watch.fd is not None


def _sleep_until_changed(limit: float) -> float:
    """Sleep with wake.sleep until the change token moves; the seconds it took."""
    token, start = change_token(), time.monotonic()
    while change_token() == token and time.monotonic() - start < limit:
        wake.sleep(limit)
    return time.monotonic() - start


def test_a_commit_by_another_process_wakes_the_sleeper_at_once(db, home, procs, monkeypatch):
    # The safety-net poll pushed past the test's limit: only the watch can end the sleep.
    monkeypatch.setattr(wake, "SLOW_POLL", 60.0)
    monkeypatch.setattr(wake, "_watch", None)
    assert _watching(db)
    proc = _enqueue_from_another_process(home, procs)
    took = _sleep_until_changed(limit=20.0)
    assert proc.wait(timeout=60) == 0
    assert took < 10, f"woken after {took:.1f} s: the -wal watch did not fire"


def test_a_new_wal_file_is_watched_again(db, home, procs, monkeypatch):
    """The -wal file goes when the journal mode changes (or its last user closes the database)
    and comes back as a new file: the watch follows it."""
    monkeypatch.setattr(wake, "SLOW_POLL", 60.0)
    monkeypatch.setattr(wake, "_watch", None)
    assert _watching(db)
    db.execute_sql("PRAGMA journal_mode=delete")
    db.execute_sql("PRAGMA journal_mode=wal")
    db.execute_sql("SELECT count(*) FROM job").fetchone()
    assert (home / "queuectl.db-wal").exists()
    proc = _enqueue_from_another_process(home, procs)
    took = _sleep_until_changed(limit=20.0)
    assert proc.wait(timeout=60) == 0
    assert took < 10, f"woken after {took:.1f} s: the new -wal file was not watched"


@pytest.mark.parametrize("without", ["inotify", "wal"])
def test_without_a_watch_the_sleeper_polls(db, home, procs, monkeypatch, without):
    """No inotify (not Linux, a limit reached) or no -wal file (rollback journal): each sleep
    is one short poll, and a commit is still seen."""
    monkeypatch.setattr(wake, "_watch", None)
    if without == "inotify":
        monkeypatch.setattr(wake, "_inotify", False)
        monkeypatch.setattr(wake, "_load_inotify", lambda: None)
    else:
        db.execute_sql("PRAGMA journal_mode=delete")
        assert not (home / "queuectl.db-wal").exists()
    start = time.monotonic()
    wake.sleep(30)
    assert time.monotonic() - start < 5  # one POLL (10 ms) unloaded
    assert wake._watch.fd is None
    proc = _enqueue_from_another_process(home, procs)
    took = _sleep_until_changed(limit=60.0)
    assert proc.wait(timeout=60) == 0
    assert took < 30
