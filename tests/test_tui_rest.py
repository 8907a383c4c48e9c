"""A console at rest does next to nothing: what it reads and redraws when nothing changed.

These assert the causes of the console's CPU at rest (issue 18), not timings: the figures are
in the benchmark (bench/console_idle.py, bench/idle.py)."""

from __future__ import annotations

import pytest

from helpers import T0

pytestmark = pytest.mark.usefixtures("stable_terminal")


def test_an_idle_workers_process_figures_are_read_every_few_seconds(db, worker, monkeypatch):
    from queuectl_tui import monitor, procs

    looks = []
    same_process = procs.same_process
    monkeypatch.setattr(procs, "same_process", lambda *a: (looks.append(a), same_process(*a))[1])
    watch = monitor.WorkerMonitor()
    [first] = watch.sample(now=T0 + 1)
    assert first.alive and first.local and first.process is not None and len(looks) == 1
    for second in range(2, 2 + int(watch.idle_every) - 1):
        [again] = watch.sample(now=T0 + second)
        assert again.process == first.process  # shown as read, no /proc read
    assert len(looks) == 1
    watch.sample(now=T0 + 1 + watch.idle_every)
    assert len(looks) == 2


def test_the_workers_pane_shows_ages_that_do_not_change_every_second():
    from queuectl_tui.tui.widgets.workers import beat_text, uptime_text

    assert {beat_text(age / 10, True) for age in range(50)} == {"<5s"}
    assert beat_text(7.2, True) == "7s" and beat_text(0.5, False) == "0s"  # late or lost
    assert {uptime_text(s) for s in range(600, 660)} == {"10m"}
    assert [uptime_text(s) for s in (3, 15, 59, 61, 3725)] == ["<10s", "10s", "50s", "1m", "1h02m"]
