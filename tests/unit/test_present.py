"""The presentation layer both faces use: one spelling of times, spans and sizes."""

from __future__ import annotations

import pytest

from queuectl_tui import present


@pytest.mark.parametrize(
    "seconds, text",
    [
        (None, "-"),
        (0, "0s"),
        (5.9, "5s"),
        (185, "3m05s"),
        (7380, "2h03m"),
        (93600, "1d02h"),
        (-185, "3m05s"),
    ],
)
def test_ago_is_two_units_at_most(seconds, text):
    assert present.ago(seconds) == text


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "-"),
        (1.234, "1.23s"),
        (12.34, "12.3s"),
        (125, "2m05s"),
    ],
)
def test_seconds_keep_their_precision_below_a_minute(value, text):
    assert present.seconds(value) == text


def test_size_in_binary_units():
    assert [present.size(n) for n in (None, 512, 1536, 200 * 1024, 3 * 1024**3)] == [
        "-",
        "512B",
        "1.5K",
        "200K",
        "3.0G",
    ]


def test_explain_words_the_facts_it_is_given_without_a_database():
    """present reads nothing: the engine gathers a job's facts (``engine.why_facts``) and
    ``explain`` only words them, here with no database open at all."""
    from queuectl_tui.engine import Hold, WhyFacts
    from queuectl_tui.store.models import Job, Worker, database

    assert database.obj is None or database.is_closed()
    now = 1_000_000.0
    dead = Job(id="d", state="dead", last_error="exit code 1")
    assert present.explain(WhyFacts(dead, now, runs=2)) == (
        "in the DLQ after 2 attempts: exit code 1"
    )
    running = Job(
        id="r",
        state="processing",
        worker_id=7,
        started_at=now - 5,
        cancel_requested=False,
        timeout=None,
    )
    worker = Worker(id=7, pid=4100, host="demo")
    assert present.explain(WhyFacts(running, now, worker=worker, worker_alive=True)) == (
        f"running on worker 7 (pid 4100 on demo) since {present.iso(now - 5)}"
    )
    held = Job(id="h", state="pending", queue="gpu", run_at=now - 60, priority=0)
    facts = WhyFacts(
        held,
        now,
        hold=Hold((("build", None),), True, 0, None),
        aging_rate=1.0,
        effective_priority=1.0,
    )
    assert present.explain(facts) == (
        "due, waiting: dependencies not completed yet: build (deleted); its queue 'gpu' is "
        "paused (resume --queue gpu); effective priority 1.0 (aging)"
    )
    due = Job(id="w", state="pending", queue="default", run_at=now - 1, priority=0)
    assert present.explain(WhyFacts(due, now, workers=2, working=2)) == (
        "due, waiting for a free worker (2 of 2 busy)"
    )
