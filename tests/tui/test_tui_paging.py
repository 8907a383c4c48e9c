"""The jobs table's pages while rows arrive and leave: page k is always rows (k-1)*n to k*n of
the order as it is now, and page 1 its head. Hypothesis drives random inserts, deletes, page
moves, orders, tabs, filters and heights against the console's own reads and moves; the model
is a plain sort of every row, made after each step."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from queuectl_tui import engine, spec
from queuectl_tui.store.models import COMPLETED, DEAD, FAILED, PENDING, Job
from queuectl_tui.tui import data

pytestmark = pytest.mark.both_backends

STATES = [PENDING, COMPLETED, FAILED, DEAD]
WORDS = ["alpha", "beta", "gamma"]  # ids and commands are made of these: filters find some


def expected_order(view: data.View) -> list[str]:
    """Every row of the view, sorted in Python: what the pages must be slices of."""
    jobs = [
        j
        for j in Job.select()
        if (view.state is None or j.state == view.state)
        and (
            not view.search
            or any(
                view.search.lower() in (text or "").lower()
                for text in (j.id, j.command, j.last_error)
            )
        )
    ]
    key = engine.SORT_KEYS[view.sort].name
    jobs.sort(key=lambda j: (getattr(j, key), j.seq), reverse=view.descending)
    return [j.id for j in jobs]


class Console(RuleBasedStateMachine):
    """What the main screen does: read the view's page after every change (a key or the
    refresh that follows rows arriving or leaving), then keep to the page it shows."""

    cwd: Path

    def __init__(self) -> None:
        super().__init__()
        Job.delete().execute()  # every run starts on an empty queue (one database per test)
        self.numbers = itertools.count()
        self.limit = 3
        self.show(data.View())

    def show(self, view: data.View) -> None:
        self.page = data.read_page(view, self.limit)
        self.view = self.page.here

    @rule(
        count=st.integers(1, 6),
        state=st.sampled_from(STATES),
        priority=st.integers(-2, 2),
        word=st.sampled_from(WORDS),
    )
    def insert(self, count, state, priority, word):
        specs = [
            spec.normalize(
                {
                    "id": f"{word}-{next(self.numbers)}",
                    "command": f"echo {word}",
                    "priority": priority,
                    "delay": (priority + 2) * 10,
                }
            )
            for _ in range(count)
        ]
        jobs = engine.enqueue(specs, cwd=str(self.cwd), env={})
        Job.update(state=state).where(Job.id.in_([j.id for j in jobs])).execute()
        self.show(self.view)

    @rule(picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=6))
    def delete(self, picks):
        ids = [j.id for j in Job.select(Job.id).order_by(Job.seq)]
        if ids:
            engine.delete(sorted({ids[i % len(ids)] for i in picks}))
        self.show(self.view)

    @rule()
    def next_page(self):  # ], or down past the last row
        self.show(data.turn(self.page, 1))

    @rule()
    def previous_page(self):  # [, or up past the first row
        self.show(data.turn(self.page, -1))

    @rule()
    def first_page(self):  # Home or g on the first row
        self.show(data.far(self.page, -1))

    @rule()
    def last_page(self):  # End or G on the last row
        self.show(data.far(self.page, 1))

    @rule(sort=st.sampled_from(list(engine.SORT_KEYS)), descending=st.booleans())
    def sort(self, sort, descending):
        self.show(data.View(self.view.state, self.view.search, sort, descending))

    @rule(state=st.sampled_from([None, *STATES]))
    def tab(self, state):
        self.show(data.View(state, self.view.search, self.view.sort, self.view.descending))

    @rule(text=st.sampled_from(["", "alpha", "beta", "7"]))
    def filter(self, text):
        self.show(data.View(self.view.state, text, self.view.sort, self.view.descending))

    @rule(limit=st.integers(1, 7))
    def resize(self, limit):  # the table shows another number of rows
        self.limit = limit
        self.show(self.view)

    @invariant()
    def the_page_is_the_slice_its_number_names(self):
        page, limit, order = self.page, self.limit, expected_order(self.view)
        ids = [job.id for job in page.jobs]
        assert page.total == len(order)
        assert page.start == (page.number - 1) * limit and 1 <= page.number <= page.pages
        assert ids == order[page.start : page.start + limit], f"page {page.number} of {page.pages}"
        if page.number == 1:
            assert ids == order[:limit]  # page 1 is the head
        assert page.has_prev == (page.number > 1) and page.has_next == (page.number < page.pages)
        assert bool(ids) == bool(order)


def test_the_page_shown_is_the_slice_its_number_names_while_rows_come_and_go(db, tmp_path):
    Console.cwd = tmp_path
    run_state_machine_as_test(
        Console,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_back_from_page_two_after_a_job_arrived_is_the_head(db, tmp_path):
    """The report: on page 2 of 3, one job arrives, [ twice: page 1 showed the new job alone."""
    Console.cwd = tmp_path
    console = Console()
    console.insert(8, PENDING, 0, "alpha")
    console.next_page()
    console.insert(1, PENDING, 0, "beta")
    console.the_page_is_the_slice_its_number_names()
    console.previous_page()
    console.the_page_is_the_slice_its_number_names()
    console.previous_page()
    console.the_page_is_the_slice_its_number_names()
    assert [job.id for job in console.page.jobs] == ["beta-8", "alpha-7", "alpha-6"]
