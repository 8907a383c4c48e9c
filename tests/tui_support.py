"""Shared by the console tests: a frozen clock, seeded databases, pinned process figures."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import helpers
from queuectl_tui.demo import FIXED_NOW as NOW  # every snapshot's "now"
from queuectl_tui.demo import pinned_monitor
#: The seeded jobs' working directory (they never run in these tests).
SEED_CWD = "/srv/queue-demo"


@pytest.fixture(autouse=True)
def stable_terminal(monkeypatch: pytest.MonkeyPatch):
    """Colours on, local time = UTC (the tables show local times)."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def stand_in():
    """A harmless process standing in for the seeded 'running' workers and jobs: whatever a
    test signals by their PIDs reaches this sleep, never the test process."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def seeded(db, home: Path, stand_in: int) -> Path | str:
    """The sample history at NOW, with three live-looking workers (two busy)."""
    from queuectl_tui import demo

    demo.seed(NOW, cwd=SEED_CWD, running_pid=stand_in)
    return helpers.DB_URL or home / "queuectl.db"  # the URL on PostgreSQL


@pytest.fixture
def empty_db(db, home: Path) -> Path:
    return home / "queuectl.db"


def make_app(path: Path, **options):
    """The console on ``path`` with the clock frozen at NOW and pinned process figures."""
    from queuectl_tui.tui.app import QueueApp

    options.setdefault("clock", lambda: NOW)
    options.setdefault("monitor", pinned_monitor())
    options.setdefault("refresh_interval", 3600)  # snapshots: no refresh between two frames
    return QueueApp(path, cursor_blink=False, **options)


async def settle(pilot, quiet_rounds: int = 3) -> None:
    """Let thread workers finish and their results reach the screen: until ``quiet_rounds``
    rounds in a row find no worker running and every screen settled (a result can start
    another read, e.g. a page refitted to the table's height)."""
    quiet = 0
    while quiet < quiet_rounds:
        busy = any(worker.is_running for worker in pilot.app.workers)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause(0.01)
        screens = [s for s in pilot.app.screen_stack if hasattr(s, "settled")]
        busy = busy or not all(s.settled for s in screens)
        quiet = 0 if busy else quiet + 1


async def until(pilot, condition, timeout: float = 10.0, message: str = "condition"):
    """Keep the app running until ``condition()`` is truthy (deadline: ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await pilot.pause(0.05)


__all__ = ["NOW", "SEED_CWD", "stable_terminal", "stand_in", "seeded", "empty_db", "pinned_monitor",
           "make_app", "settle", "until"]
