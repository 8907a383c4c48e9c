"""What the main screen reads, and when: a page of jobs and the status (counts, workers,
throughput), each in a thread worker, about once a second and less at rest.

The event loop only turns the results into cells (``MainScreen`` draws them: ``_show_page``,
``_show_status``). A page is read again only when something was committed since the page shown
was read (a change token, ``data.Changes``); the status rests when two reads in a row showed
nothing new.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.screen import Screen
from textual.widgets import Static

from queuectl_tui.tui import data
from queuectl_tui.tui.reads import OneRead
from queuectl_tui.tui.widgets import CountsHeader, JobsTable
from queuectl_tui.tui.widgets.jobs_table import WAITING_OR_RUNNING

if TYPE_CHECKING:
    from queuectl_tui.tui.app import QueueApp

#: At rest (two status reads in a row showed nothing new) the status (counts, workers,
#: throughput: a third of a console's CPU at rest, the workers' /proc reads among it) is read
#: every REST_EVERY ticks; a key, an action or a page that changed reads it at once, and at
#: every tick again until it rests.
REST_EVERY = 5
#: While rows arrive and no key was pressed for KEY_QUIET ticks, the page is read and drawn
#: every DRAW_EVERY ticks (3 s at the default second, as top refreshes), not at every tick:
#: each arrival moves every row of page 1, and redrawing them was most of the console's CPU.
#: The status (counts, workers, chart) keeps that cadence too while no key is pressed (every
#: arrival moves the counts); a key reads and draws both at once.
DRAW_EVERY = 3
KEY_QUIET = 3


class ReadingScreen(Screen[None]):
    """The reads of the main screen; ``MainScreen`` lays it out and draws what they bring."""

    app: QueueApp

    def __init__(self) -> None:
        super().__init__()
        self.view = data.View()
        self.page: data.Page | None = None
        self.status: data.Status | None = None
        self.page_reads = OneRead(self._start_page_read)
        self._page_number = 0  # page reads started so far (each one's number)
        self._page_shown: int | None = None  # the number of the read on screen
        self._must_read = True  # the next page read reads, whatever the change token says
        self.page_changes = data.Changes()
        self._status_busy = False
        self._status_seen: tuple[object, ...] | None = None  # what the last status read showed
        self._status_quiet = 0  # status reads in a row that showed nothing new
        self._status_age = 0  # ticks since the last status read
        self._page_age = 0  # ticks since the page was last asked for
        self._key_age = 0  # ticks since the last key
        self._problem: str | None = None
        self._read_since = 0.0

    # -- what the screen draws (MainScreen) -------------------------------------------------
    @property
    def table(self) -> JobsTable:
        return self.query_one(JobsTable)

    def _show_page(self, page: data.Page) -> None:
        raise NotImplementedError

    def _show_status(self, status: data.Status) -> None:
        raise NotImplementedError

    def _update_empty(self) -> None:
        raise NotImplementedError

    # -- the page fits the table ------------------------------------------------------------
    @on(JobsTable.Resized)
    def _table_resized(self) -> None:
        self.call_after_refresh(self._fit_page)

    def _page_misfit(self) -> bool:
        """Was the page read for another height of the table than it has now?"""
        return self.page is not None and self.page.limit != self.page_rows()

    def _fit_page(self) -> None:
        if self._page_misfit():
            self.load_page()

    def page_rows(self) -> int:
        """Rows per page: what the table's area shows (only that is read), unless the app fixes
        it. The area, not the table: an empty table is only its header high."""
        area = self.query_one("#jobs-area").content_region.height
        shown = area - (1 if self.table.show_header else 0) if area else self.table.visible_rows
        return self.app.page_size or max(1, min(200, shown))

    @property
    def settled(self) -> bool:
        """No read under way or due and the page fits the table (what tests wait for)."""
        return self.page_reads.settled and not self._status_busy and not self._page_misfit()

    # -- when to read ---------------------------------------------------------------------
    def on_screen_resume(self) -> None:
        if self.is_mounted and self.page is not None:
            self.load_status()  # back from the detail or a dialog: show what changed
            self.load_page()

    @property
    def in_front(self) -> bool:
        """Is this screen the one in front? (Textual's ``is_current`` holds for the screen
        just behind too, which may show through: the main screen read on behind the detail.)"""
        return self.app.screen is self

    def tick(self) -> None:
        if not self.in_front:
            return  # the detail or a dialog covers the table: no reads behind it
        waited = time.monotonic() - self._read_since if self._status_busy else 0.0
        if waited > self.app.slow_read_warning:
            self._set_problem(
                f"locked by another process; waiting for it ({waited:.0f}s so far)",
                retrying=False,
            )
        self._status_age += 1
        self._key_age += 1
        self._page_age += 1
        resting = self._key_age >= KEY_QUIET  # no key lately: the status keeps the table's cadence
        moving = self._status_quiet < 2 and (not resting or self._status_age >= DRAW_EVERY)
        if moving or self._status_age >= REST_EVERY:
            self.load_status()
        if self._key_age < KEY_QUIET or self._page_age >= DRAW_EVERY:
            self.load_page(quiet=True)

    def wake(self) -> None:
        """Something moved (a key, a page that changed): read the status at every tick again."""
        self._status_quiet = 0

    def on_key(self) -> None:
        self.wake()
        self._key_age = 0
        self.call_later(self._key_read)

    def _key_read(self) -> None:
        """After the key's own action: show what arrived since the last draw, unless the action
        asked for the page itself."""
        if self._page_age and self.is_mounted:
            self.load_page(quiet=True)

    # -- the page -------------------------------------------------------------------------
    def load_page(self, *, quiet: bool = False) -> None:
        """Read the page; ``quiet`` (the timer's): only when something was committed since
        the page shown was read (a change token, see ``data.Changes``)."""
        self._page_age = 0
        if not quiet:
            self._must_read = True
        self.page_reads.request()

    def _start_page_read(self) -> None:
        limit = self.page_rows()
        self._page_number += 1
        page, shown = self.page, None
        if (
            not self._must_read
            and page is not None
            and page.view == self.view
            and page.limit == limit
        ):
            shown = self._page_shown
        self._must_read = False
        self._read_page(self.view, limit, self._page_number, shown)

    @work(thread=True, group="page", exit_on_error=False)
    def _read_page(self, view: data.View, limit: int, number: int, shown: int | None) -> None:
        page: data.Page | data.Problem | object
        try:
            page = self.page_changes.read(
                self.app.db_path, number, shown, data.read_page, view, limit
            )
        except data.Problem as exc:
            page = exc
        self.app.from_thread(self._page_read, page, number)

    def _page_read(self, page: data.Page | data.Problem | object, number: int = 0) -> None:
        """Show a page read for the view still asked for; read once more when the view or the
        table's height changed meanwhile (the next read is for what is asked now, so this ends:
        a result never asks for the same read again). Nothing committed since the page shown
        was read: only its times move on (a waiting or running job's When)."""
        if page is data.UNCHANGED:
            if self.page is not None and any(
                job.state in WAITING_OR_RUNNING for job in self.page.jobs
            ):
                self._show_page(self.page)
        elif isinstance(page, data.Problem):
            self._set_problem(str(page))
        elif isinstance(page, data.Page) and page.view == self.view:
            self._set_problem(None)
            if self.page is None or _shown_page(page) != _shown_page(self.page):
                self.wake()
                if self._status_age:
                    self.load_status()  # counts and workers move with the jobs
            self.view = page.view = page.here  # LAST, or a page rows left: the page shown
            self.page = page
            self._page_shown = number
            self._show_page(page)
            if page.limit != self.page_rows():
                self.page_reads.again = True  # the table changed height while it was read
        else:
            self.page_reads.again = True  # read for a view no longer shown
        self.page_reads.done()

    # -- the status -----------------------------------------------------------------------
    def load_status(self) -> None:
        if self._status_busy:
            return
        self._status_busy = True
        self._status_age = 0
        self._read_since = time.monotonic()
        self._read_status()

    @work(thread=True, group="status", exit_on_error=False)
    def _read_status(self) -> None:
        status: data.Status | data.Problem
        try:
            status = data.call(
                self.app.db_path, data.read_status, self.app.monitor, self.app.clock()
            )
        except data.Problem as exc:
            status = exc
        self.app.from_thread(self._status_read, status)

    def _status_read(self, status: data.Status | data.Problem) -> None:
        self._status_busy = False
        if isinstance(status, data.Problem):
            self._set_problem(str(status))
            return
        self.status = status
        seen = _shown_status(status)
        self._status_quiet = self._status_quiet + 1 if seen == self._status_seen else 0
        self._status_seen = seen
        self._set_problem(None)
        self._show_status(status)

    def _set_problem(self, message: str | None, *, retrying: bool = True) -> None:
        if message == self._problem:
            return
        self._problem = message
        banner = self.query_one("#banner", Static)
        retry = ("  (retrying every second)" if retrying else "", "dim")
        banner.update(Text.assemble(("database: ", "bold"), message, retry) if message else "")
        banner.set_class(bool(message), "-show")
        if message and self.status is None:
            self.query_one(CountsHeader).set_unknown()
        self._update_empty()


def _shown_status(status: data.Status) -> tuple[object, ...]:
    """What of a status read tells that something happened: not what moves by itself (a
    heartbeat's age, an idle worker's own CPU and memory, read every few seconds anyway)."""
    workers = [
        (
            w.id,
            w.host,
            w.pid,
            w.status,
            w.alive,
            w.current_job,
            w.job_started_at,
            w.process if w.busy else None,
            w.job_tree,
        )
        for w in status.workers
    ]
    return (status.counts, status.paused, status.throughput, workers)


def _shown_page(page: data.Page) -> tuple[object, ...]:
    """What of a page read shows (peewee compares rows by key alone)."""
    return (page.total, page.start, [(job.id, job.state, job.updated_at) for job in page.jobs])
