"""Helpers of the console tests: the frozen clock, the app on it with pinned process figures,
waiting for it to settle (their fixtures, seeded databases among them, are in conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path

from queuectl_tui.demo import FIXED_NOW as NOW  # every snapshot's "now"
from queuectl_tui.demo import pinned_monitor

#: The seeded jobs' working directory (they never run in these tests).
SEED_CWD = "/srv/queue-demo"


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


__all__ = ["NOW", "SEED_CWD", "pinned_monitor", "make_app", "settle", "until"]
