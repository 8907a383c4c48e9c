"""The heartbeat thread on its own, with a stand-in worker: when its rounds come."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from queuectl_tui.run import heartbeat
from queuectl_tui.run.heartbeat import Heartbeat


class _Waits(threading.Event):
    """The thread's stop event, which tells when the thread first sleeps."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.sleeping.set()
        return super().wait(timeout)


def test_the_first_round_comes_one_period_after_the_start_not_at_once(monkeypatch):
    # The worker has just read the schema and the settings and registered with a fresh
    # heartbeat: a round at once would only open a second session (and a server process) for
    # nothing, which a short burst then never needs at all.
    done: list[str] = []
    worker = SimpleNamespace(
        cfg=SimpleNamespace(heartbeat_interval=5.0, lease=30.0),
        cfg_version="1",
        waiting=False,
        beat=lambda: done.append("beat"),
        _check_schema=lambda: done.append("schema"),
        make_scheduled=lambda: done.append("schedules"),
    )
    monkeypatch.setattr(heartbeat, "SETTINGS_REFRESH", 3600.0)
    beats = Heartbeat(worker)  # type: ignore[arg-type]
    beats.stop = _Waits()
    beats.start()
    try:
        assert beats.stop.sleeping.wait(30), "the heartbeat thread never slept"
        assert done == []
    finally:
        beats.stop.set()
        beats.join(30)
    assert not beats.is_alive()
