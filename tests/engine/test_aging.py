"""Priority aging (setting ``priority_aging``): a waiting job gains priority with every minute
it is due, so a stream of urgent jobs cannot starve it. Engine level, on a fixed clock."""

from __future__ import annotations

import time

import pytest

from helpers import T0, ok
from queuectl_tui import engine, settings, spec

STEP = 30.0  # one urgent job arrives and one job is claimed every 30 s


def run_stream(add, steps: int) -> float | None:
    """A priority-1 job enqueued at T0, then at every step a new priority-9 job and one claim
    (finished at once). When was the priority-1 job claimed (None: never)?"""
    worker = engine.register_worker(now=T0)
    add("low", priority=1, now=T0)
    for n in range(1, steps + 1):
        now = T0 + n * STEP
        add(f"urgent{n}", priority=9, now=now)
        job, attempt = engine.claim(worker, now=now)
        engine.finish(job, attempt, outcome="completed", exit_code=0, now=now)
        if job.id == "low":
            return now - T0
    return None


def test_with_aging_a_low_priority_job_runs_once_it_has_waited_long_enough(add):
    settings.set_value("priority_aging", 1)
    # 1 + 1 point per minute reaches the newest urgent job's 9 after 8 minutes; at the tie the
    # job due first goes first.
    assert run_stream(add, steps=40) == 8 * 60


def test_without_aging_a_stream_of_urgent_jobs_starves_it(add):
    assert settings.get("priority_aging") == 0
    assert run_stream(add, steps=240) is None  # two hours of urgent jobs, one every 30 s
    assert engine.get_job("low").state == "pending"


def test_a_change_of_the_rate_applies_to_waiting_jobs_as_if_always_in_force(add, db):
    worker = engine.register_worker(now=T0)
    add("low", priority=1, now=T0)
    add("high", priority=9, now=T0 + 600)
    settings.set_value("priority_aging", 1)  # low has been due 10 min: 1 + 10 > 9 + 0
    job, attempt = engine.claim(worker, now=T0 + 600)
    assert job.id == "low"
    engine.finish(job, attempt, outcome="completed", exit_code=0, now=T0 + 600)
    add("low2", priority=1, now=T0)  # ranked at enqueue with the rate in force (1)
    settings.reset("priority_aging")  # back to strict priority, for every waiting job
    assert [engine.claim(worker, now=T0 + 601)[0].id for _ in range(2)] == ["high", "low2"]


def test_effective_priority_grows_with_the_time_due(add):
    add("low", priority=1, now=T0)
    job = engine.get_job("low")
    assert engine.effective_priority(job, now=T0 + 600) == 1  # aging off
    settings.set_value("priority_aging", 0.5)
    assert engine.effective_priority(job, now=T0 + 600) == 6
    assert engine.effective_priority(job, now=T0 - 60) == 1  # not due yet: no gain


def test_show_gives_a_waiting_jobs_effective_priority(cli):
    ok(cli("enqueue", "--id", "old", "--priority", "2", "--run-at", "2020-01-01T00:00:00Z", "true"))
    data = ok(cli("show", "old", "--json")).json()
    assert data["effective_priority"] == 2  # aging off: the priority itself
    assert "effective_priority" not in ok(cli("show", "old")).out
    ok(cli("config", "set", "priority_aging", "0.001"))
    data = ok(cli("show", "old", "--json")).json()
    waited = (time.time() - spec.parse_time("2020-01-01T00:00:00Z")) / 60
    assert data["effective_priority"] == pytest.approx(2 + 0.001 * waited, abs=0.01)
    assert "effective_priority" in ok(cli("show", "old")).out
    ok(cli("cancel", "old"))
    assert ok(cli("show", "old", "--json")).json()["effective_priority"] is None  # not waiting
