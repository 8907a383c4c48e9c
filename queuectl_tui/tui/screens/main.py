"""The main screen: counts, the jobs table by state, workers, throughput; and the actions.

Reads happen in thread workers (``data.read_page``, ``data.read_status``) about once a second;
the event loop only turns their results into cells. Every action calls the engine or
supervisor function that the matching CLI command calls (see the README's parity table).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Input, Log, Static

from queuectl_tui.store.models import COMPLETED, DEAD, FAILED, PROCESSING, Job
from queuectl_tui.tui import actions, data
from queuectl_tui.tui.messages import ActionDone
from queuectl_tui.tui.reads import OneRead
from queuectl_tui.tui.widgets import CountsHeader, JobsTable, KeyBar, TabBar, ThroughputLine, WorkersPane
from queuectl_tui.tui.widgets.jobs_table import WAITING_OR_RUNNING, job_columns
from queuectl_tui.visible import visible

if TYPE_CHECKING:
    from textual.timer import Timer

    from queuectl_tui.tui.app import QueueApp

#: (tab id, label, state); the number keys pick them in this order.
TABS = [("all", "All", None), ("pending", "Pending", "pending"),
        ("processing", "Processing", "processing"), ("completed", "Completed", "completed"),
        ("failed", "Failed", "failed"), ("dead", "DLQ", "dead")]
#: (sort key, label when descending, label when ascending, descending when first picked): each
#: order starts with what one looks for first (the next run: the soonest).
SORTS = [("seq", "newest first", "oldest first", True),
         ("priority", "priority high→low", "priority low→high", True),
         ("run_at", "next run latest", "next run soonest", False),
         ("updated_at", "recently changed", "least recently changed", True),
         ("attempts", "most attempts", "fewest attempts", True)]
FILTER_DELAY = 0.15  # seconds of no typing before the filter applies
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


class MainScreen(Screen):
    app: QueueApp

    AUTO_FOCUS = "#jobs"
    BINDINGS = [
        Binding("n", "enqueue", "Enqueue", tooltip="Enqueue a new job (form)"),
        Binding("r", "retry", "Retry", tooltip="Retry the selected (or marked) failed/dead jobs"),
        Binding("R", "retry_dlq", "Retry DLQ", show=False,
                tooltip="Retry every job in the DLQ (a fresh retry budget each); asks first"),
        Binding("t", "restart", "Restart", show=False,
                tooltip="Run the selected (or marked) completed/dead jobs again, with a fresh retry budget"),
        Binding("E", "edit", "Edit job", show=False,
                tooltip="Edit the selected pending or failed job (command, priority, time, retries, "
                        "timeout, queue)"),
        Binding("c", "cancel", "Cancel", show=False,
                tooltip="Cancel the selected (or marked) jobs; asks first"),
        Binding("d,delete", "delete", "Delete", show=False,
                tooltip="Delete the selected (or marked) jobs with their logs; asks first"),
        Binding("D", "clear_dlq", "Clear DLQ", show=False, tooltip="Delete every dead job; asks first"),
        Binding("l", "logs", "Logs", show=False, tooltip="Open the selected job on its latest log"),
        Binding("e", "config", "Config", tooltip="Edit the settings"),
        Binding("p", "pause", "Pause/resume", show=False,
                tooltip="Pause the selected job's queue (workers claim none of its jobs), or resume it"),
        Binding("P", "pause_all", "Pause/resume all", show=False,
                tooltip="Pause every queue, or resume them all when all are paused"),
        Binding("m", "stats", "Stats",
                tooltip="Execution stats: throughput, wait and run times, errors, per queue"),
        Binding("plus", "worker_start", "Worker", key_display="+",
                tooltip="Start one more detached worker"),
        Binding("o", "output", "Output",
                tooltip="Show or hide the output pane: the selected job's latest log, followed while it runs"),
        Binding("minus", "worker_stop", "Stop worker", key_display="-", show=False,
                tooltip="Stop one worker: the one selected in the workers pane, else the newest idle one "
                        "(else the newest, after its job); asks first"),
        Binding("X", "worker_stop_all", "Stop all workers", show=False,
                tooltip="Stop every worker on this host; asks first"),
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip="Filter the table by text in id, command or last error"),
        Binding("Q", "queues", "Queues", tooltip="The queues: counts, paused, limits (pause, resume, limit)"),
        Binding("C", "schedules", "Schedules",
                tooltip="The recurring schedules: rule, next run, last job (add, pause, resume, run, remove)"),
        Binding("s", "sort", "Sort", show=False, tooltip="Cycle the sort order"),
        Binding("S", "reverse", "Reverse", show=False, tooltip="Reverse the sort order"),
        Binding("space", "mark", "Mark", show=False,
                tooltip="Mark/unmark the selected job for a bulk retry, cancel or delete, and move "
                        "down to the next"),
        Binding("escape", "clear", "Clear", show=False, tooltip="Clear the filter, then the marks"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]", show=False,
                tooltip="Next page of jobs"),
        Binding("left_square_bracket", "page(-1)", "Previous page", key_display="[", show=False,
                tooltip="Previous page of jobs"),
        Binding("f5,ctrl+r", "refresh", "Refresh", show=False, tooltip="Refresh now"),
        *(Binding(str(n), f"tab('{tab}')", label, show=False, tooltip=f"Show the {label} tab")
          for n, (tab, label, _) in enumerate(TABS, 1)),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = data.View()
        self.marks: set[str] = set()
        self.jobs: dict[str, Job] = {}
        self.page: data.Page | None = None
        self.status: data.Status | None = None
        self.page_reads = OneRead(self._start_page_read)
        self._page_number = 0  # page reads started so far (each one's number)
        self._page_shown: int | None = None  # the number of the read on screen
        self._must_read = True  # the next page read reads, whatever the change token says
        self.page_changes = data.Changes()
        self._status_busy = False
        self._status_seen: tuple | None = None  # what the last status read showed
        self._status_quiet = 0  # status reads in a row that showed nothing new
        self._status_age = 0  # ticks since the last status read
        self._page_age = 0  # ticks since the page was last asked for
        self._key_age = 0  # ticks since the last key
        self._output_age = 0  # output timer's calls since the pane was last read
        self._cursor_to: str | None = None
        self._cursor_edge = 0  # +1/-1: put the cursor on the first/last row of the next page shown
        self._problem: str | None = None
        self._read_since = 0.0
        self._filter_timer: Timer | None = None
        self.output_on = False  # the output pane (o) is shown
        self._output_job: str | None = None  # whose log it shows
        self._output_key: tuple | None = None  # (attempt number, log path) read so far
        self._output_offset = 0
        self._output_said: str | None = None  # the message the pane shows instead of a log
        self.output_reads = OneRead(self._start_output_read)
        self._shown: dict[str, object] = {}  # the pager's and the empty note's text on screen

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield CountsHeader(id="counts")
        yield Static("", id="banner")
        yield TabBar([(tab, f"{n} {label}") for n, (tab, label, _) in enumerate(TABS, 1)],
                     active="all", id="tabs")
        yield Input(placeholder="filter: text in id, command or last error (Enter keeps it, Esc clears)",
                    id="filter", compact=True)
        with Vertical(id="jobs-area"):
            yield JobsTable(id="jobs")
            yield Static("", id="empty")
        yield Static("", id="pager")
        yield Static("Output", id="output-title", classes="section")
        yield Log(id="output", max_lines=5000, highlight=False)
        yield WorkersPane(id="workers")
        yield ThroughputLine(id="throughput")
        yield KeyBar()

    @property
    def table(self) -> JobsTable:
        return self.query_one(JobsTable)

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
        self.query_one("#output-title").display = self.query_one("#output").display = False
        self._fit_output()
        self.set_interval(min(0.5, self.app.refresh_interval), self._output_tick)
        self.table.set_layout(job_columns(self.size.width or self.app.size.width, False))
        self.load_status()
        self.call_after_refresh(self.load_page)  # once laid out: the page is what the table shows
        self.set_interval(self.app.refresh_interval, self.tick)

    def on_resize(self) -> None:
        self._fit_output()
        if self.page is not None:
            self._show_page(self.page)  # columns sized anew for the width

    def _fit_output(self) -> None:
        """The output pane takes at most what the other panes leave (9 lines, at least 3): at
        80x24 it made the screen taller than the terminal, which then scrolled."""
        height = self.size.height or self.app.size.height
        others = 1 + 2 + 5 + 1 + 1 + WorkersPane.height_for(height) + 1 + 1  # header … key bar
        self.query_one("#output").styles.height = max(3, min(9, height - others))

    @on(JobsTable.Resized)
    def _table_resized(self) -> None:
        self.call_after_refresh(self._fit_page)

    def _page_misfit(self) -> bool:
        """Was the page read for another height of the table than it has now?"""
        return self.page is not None and self.page.limit != self.page_rows()

    def _fit_page(self) -> None:
        if self._page_misfit():
            self.load_page()

    @property
    def settled(self) -> bool:
        """No read under way or due and the page fits the table (what tests wait for)."""
        return (self.page_reads.settled and not self._status_busy and not self._page_misfit()
                and self.output_reads.settled)

    # -- reading ------------------------------------------------------------------------
    def on_screen_resume(self) -> None:
        if self.is_mounted and self.page is not None:
            self.action_refresh()  # back from the detail or a dialog: show what changed

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
            self._set_problem(f"locked by another process; waiting for it ({waited:.0f}s so far)",
                              retrying=False)
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
        if not self._must_read and page is not None and page.view == self.view and page.limit == limit:
            shown = self._page_shown
        self._must_read = False
        self._read_page(self.view, limit, self._page_number, shown)

    def page_rows(self) -> int:
        """Rows per page: what the table's area shows (only that is read), unless the app fixes
        it. The area, not the table: an empty table is only its header high."""
        area = self.query_one("#jobs-area").content_region.height
        shown = area - (1 if self.table.show_header else 0) if area else self.table.visible_rows
        return self.app.page_size or max(1, min(200, shown))

    @work(thread=True, group="page", exit_on_error=False)
    def _read_page(self, view: data.View, limit: int, number: int, shown: int | None) -> None:
        try:
            page = self.page_changes.read(self.app.db_path, number, shown, data.read_page, view, limit)
        except data.Problem as exc:
            page = exc
        self.app.from_thread(self._page_read, page, number)

    def _page_read(self, page: data.Page | data.Problem | object, number: int = 0) -> None:
        """Show a page read for the view still asked for; read once more when the view or the
        table's height changed meanwhile (the next read is for what is asked now, so this ends:
        a result never asks for the same read again). Nothing committed since the page shown
        was read: only its times move on (a waiting or running job's When)."""
        if page is data.UNCHANGED:
            if self.page is not None and any(job.state in WAITING_OR_RUNNING for job in self.page.jobs):
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

    def load_status(self) -> None:
        if self._status_busy:
            return
        self._status_busy = True
        self._status_age = 0
        self._read_since = time.monotonic()
        self._read_status()

    @work(thread=True, group="status", exit_on_error=False)
    def _read_status(self) -> None:
        try:
            status = data.call(self.app.db_path, data.read_status, self.app.monitor, self.app.clock())
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
        now = self.app.clock()
        self.query_one(CountsHeader).set_counts(status.counts, status.alive, status.busy)
        self.query_one(WorkersPane).set_workers(status.workers, now)
        self.query_one(ThroughputLine).set_series(status.throughput)
        self._update_pager()
        self._update_empty()

    def _set_problem(self, message: str | None, *, retrying: bool = True) -> None:
        if message == self._problem:
            return
        self._problem = message
        banner = self.query_one("#banner", Static)
        banner.update(Text.assemble(("database: ", "bold"), message,
                                    ("  (retrying every second)" if retrying else "", "dim"))
                      if message else "")
        banner.set_class(bool(message), "-show")
        if message and self.status is None:
            self.query_one(CountsHeader).set_unknown()
        self._update_empty()

    # -- showing ------------------------------------------------------------------------
    def _show_page(self, page: data.Page) -> None:
        now = self.app.clock()
        self.jobs = {job.id: job for job in page.jobs}
        if self._cursor_edge and page.jobs:
            self._cursor_to = page.jobs[0 if self._cursor_edge > 0 else -1].id
            self._cursor_edge = 0
        self.table.show_jobs(page, now, self.marks, self.size.width or self.app.size.width,
                             cursor_key=self._cursor_to)
        self._cursor_to = None
        self._update_pager()
        self._update_empty()

    def _update_pager(self) -> None:
        page = self.page
        if page is None:
            return
        key, desc_label, asc_label, _ = next(s for s in SORTS if s[0] == self.view.sort)
        moves = [text for text, possible in (("[ previous", page.has_prev), ("] next", page.has_next))
                 if possible]
        parts = [f"page {page.number} of {page.pages}, {len(page.jobs)} of {page.total:,} jobs"
                 + (f" ({', '.join(moves)})" if moves else ""),
                 f"sort: {desc_label if self.view.descending else asc_label} (s/S)"]
        if self.view.search:
            parts.append(f"filter: {self.view.search!r} (Esc clears)")
        if self.marks:
            parts.append(f"{len(self.marks)} marked (r/c/d act on them, Esc clears)")
        text = Text("  ·  ".join(parts))  # the filter is text
        if self.status is not None and self.status.paused:
            text.append(f"  ·  paused: {', '.join(self.status.paused)} (p/P resume)", "bold yellow")
        if text != self._shown.get("pager"):  # each refresh: only a change is drawn
            self._shown["pager"] = text
            self.query_one("#pager", Static).update(text, layout=False)  # one line, always

    def _update_empty(self) -> None:
        empty = self.query_one("#empty", Static)
        message = ""
        if self._problem:
            message = "The jobs appear here once the database can be read (see the message above)."
        elif self.page is not None and not self.page.jobs:
            total = sum(self.status.counts.values()) if self.status else self.page.total
            if self.view.search:
                message = f"No job matches {self.view.search!r}. Esc clears the filter."
            elif total == 0:
                message = ("The queue is empty.\n\nPress n to enqueue a job and + to start a worker,"
                           "\nor run `queuectl-tui demo` to see the console with sample jobs.")
            elif self.view.state is not None:
                label = next(label for tab, label, state in TABS if state == self.view.state)
                message = f"No jobs in {label}."
            else:
                message = "No jobs on this page. [ goes back."
        if message != self._shown.get("empty"):
            self._shown["empty"] = message
            empty.update(Text(message))
            empty.set_class(bool(message), "-show")
            self.table.set_class(bool(message), "-empty")

    # -- tabs, filter, sort, pages ------------------------------------------------------
    def set_view(self, **changes) -> None:
        """Show another tab, filter, order or page (from the first page unless a start is given)."""
        self.view = replace(self.view, **{"start": 0, **changes})
        self.load_page()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabBar).activate(tab)

    @on(TabBar.Changed)
    def _tab_activated(self, event: TabBar.Changed) -> None:
        state = next(state for key, _, state in TABS if key == event.tab)
        if state != self.view.state:
            self.set_view(state=state)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        """Filter as one types, once typing pauses (each filter is a scan of the jobs)."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DELAY, self._apply_filter)

    def _apply_filter(self) -> None:
        self._filter_timer = None
        text = self.query_one("#filter", Input).value.strip()
        if text != self.view.search:
            self.set_view(search=text)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self._apply_filter()
        box = self.query_one("#filter", Input)
        if not box.value.strip():
            box.display = False
        self.table.focus()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        if box.display or self.view.search:
            box.value = ""
            box.display = False
            self.table.focus()
            if self.view.search:
                self.set_view(search="")
        elif self.marks:
            self.marks.clear()
            if self.page is not None:
                self._show_page(self.page)

    def action_sort(self) -> None:
        keys = [s[0] for s in SORTS]
        key, _, _, descending = SORTS[(keys.index(self.view.sort) + 1) % len(keys)]
        self.set_view(sort=key, descending=descending)

    def action_reverse(self) -> None:
        self.set_view(descending=not self.view.descending)

    @on(JobsTable.Edge)
    def _edge(self, event: JobsTable.Edge) -> None:
        """Past the last (first) row: the next (previous) page, cursor on its first (last) row;
        End (Home) on the last (first) row: the last (first) page, cursor on its last (first)."""
        page = self.page
        if page is not None and (page.has_next if event.step > 0 else page.has_prev):
            self._cursor_edge = -event.step if event.far else event.step
            view = data.far(page, event.step) if event.far else data.turn(page, event.step)
            self.set_view(start=view.start)

    def action_page(self, step: int) -> None:
        page = self.page
        if page is not None and (page.has_next if step > 0 else page.has_prev):
            self.set_view(start=data.turn(page, step).start)

    def action_refresh(self) -> None:
        self.load_status()
        self.load_page()

    # -- selection ----------------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        """The marked jobs, or else the one under the cursor."""
        if self.marks:
            return sorted(self.marks)
        key = self.table.cursor_key
        return [key] if key else []

    def action_mark(self) -> None:
        key = self.table.cursor_key
        if key is None:
            return
        self.marks.symmetric_difference_update({key})
        job = self.jobs.get(key)
        if job is not None:
            self.table.update_row(key, self.table.job_row(job, self.app.clock(), key in self.marks,
                                                          self.page))
        self.table.action_cursor_down()
        self._update_pager()

    @on(DataTable.RowSelected, "#jobs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        assert event.row_key.value is not None  # its rows are keyed by job id
        self._open_detail(event.row_key.value, focus_log=False)

    def action_logs(self) -> None:
        key = self.table.cursor_key
        if key:
            self._open_detail(key, focus_log=True)

    # -- the output pane ----------------------------------------------------------------
    def action_output(self) -> None:
        self.output_on = not self.output_on
        self.query_one("#output-title").display = self.query_one("#output").display = self.output_on
        self._output_job = None
        if self.output_on:
            self._poll_output()

    @on(DataTable.RowHighlighted, "#jobs")
    def _cursor_moved(self) -> None:
        if self.output_on and self.table.cursor_key != self._output_job:
            self._poll_output()

    def _output_tick(self) -> None:
        """A running job's log is followed at every call; another job's (none yet, or ended)
        is looked at with the table's cadence unless a key was pressed lately."""
        self._output_age += 1
        job = self.jobs.get(self.table.cursor_key or "") if self.output_on else None
        if (job is None or job.state == PROCESSING or self._key_age < KEY_QUIET
                or self._output_age * min(0.5, self.app.refresh_interval)
                >= DRAW_EVERY * self.app.refresh_interval):
            self._poll_output()

    def _poll_output(self) -> None:
        """Read what the selected job's latest log added (the whole tail for a new job)."""
        if self.output_on and self.in_front:
            self._output_age = 0
            self.output_reads.request()

    def _start_output_read(self) -> bool:
        if not self.output_on or not self.in_front:
            return False
        job_id = self.table.cursor_key
        log = self.query_one("#output", Log)
        if job_id != self._output_job:
            self._output_job, self._output_key, self._output_offset = job_id, None, 0
            log.clear()
            self._output_said = None
        if job_id is None:
            self._shown["output-title"] = None
            self.query_one("#output-title", Static).update("Output  (no job selected)")
            return False
        self._read_output(job_id, self._output_key, self._output_offset)
        return True

    @work(thread=True, group="output", exit_on_error=False)
    def _read_output(self, job_id: str, key, offset: int) -> None:
        try:
            output = data.call(self.app.db_path, data.read_output, job_id, key, offset)
        except (data.Problem, data.QueueError) as exc:
            output = exc
        self.app.from_thread(self._output_read, job_id, output)

    def _output_read(self, job_id: str, output) -> None:
        if job_id != self._output_job or not self.output_on:
            self.output_reads.again = self.output_on  # the cursor moved meanwhile
        else:
            self._show_output(job_id, output)
        self.output_reads.done()

    def _show_output(self, job_id: str, output) -> None:
        log = self.query_one("#output", Log)
        title = self.query_one("#output-title", Static)
        if isinstance(output, Exception):
            self._shown["output-title"] = None
            title.update(Text.assemble("Output  ", (str(output), "red")))
            return
        if output.attempt is None:
            self._say_output(log, "(no attempt yet: the log appears when a worker runs the job)")
            self._output_key = None
        else:
            chunk = output.chunk
            if output.key != self._output_key:
                log.clear()
                self._output_said = None
                self._output_key = output.key
                if chunk.skipped:
                    log.write_line(f"[… {chunk.skipped:,} earlier bytes not shown]")
            if chunk.missing:
                self._say_output(log, chunk.note or "(no log file for this attempt)")
            elif chunk.text:
                log.write(chunk.text, scroll_end=True)
            self._output_offset = chunk.offset
        state = ("" if output.attempt is None else
                 f"  attempt {output.attempt}, {'following' if output.running else 'finished'}")
        text = Text.assemble("Output of ", (visible(job_id), "bold"), state, ("  (o hides)", "dim"))
        if text != self._shown.get("output-title"):
            self._shown["output-title"] = text
            title.update(text, layout=False)  # one line

    def _say_output(self, log: Log, message: str) -> None:
        """The pane shows a message instead of a log: written once, not again at every read
        (twice a second: each time the whole screen was laid out and drawn again)."""
        if self._output_said != message:
            log.clear()
            log.write(message)
            self._output_said = message

    def _open_detail(self, job_id: str, *, focus_log: bool) -> None:
        from queuectl_tui.tui.screens.detail import JobDetailScreen
        self.app.push_screen(JobDetailScreen(job_id, focus_log=focus_log))

    # -- actions (each the engine/supervisor call of a CLI command: tui/actions.py) ------
    def done(self, message: str, *, clear_marks: bool = False) -> None:
        """An action is done: say what it did and show the change."""
        if clear_marks:
            self.marks.clear()
        self.app.notify(message)
        self.action_refresh()

    @on(ActionDone)
    def _acted(self, event: ActionDone) -> None:
        event.stop()
        actions.finish(self, event.action, event.result)

    def action_enqueue(self) -> None:
        from queuectl_tui.tui.screens.modals import EnqueueModal

        def done(ids: list[str] | None) -> None:
            if ids:
                self._cursor_to = ids[0] if self.view == data.View(state=self.view.state) else None
                self.done(f"enqueued {', '.join(ids)}")

        self.app.push_screen(EnqueueModal(), done)

    def action_config(self) -> None:
        from queuectl_tui.tui.screens.modals import ConfigModal

        def done(changed: list[str] | None) -> None:
            if changed:
                self.app.notify(f"saved {', '.join(changed)}")

        self.app.push_screen(ConfigModal(), done)

    def action_queues(self) -> None:
        from queuectl_tui.tui.screens.queues import QueuesScreen
        self.app.push_screen(QueuesScreen())

    def action_schedules(self) -> None:
        from queuectl_tui.tui.screens.schedules import SchedulesScreen
        self.app.push_screen(SchedulesScreen())

    def action_pause(self) -> None:
        key = self.table.cursor_key
        job = self.jobs.get(key) if key else None
        if job is None:
            self.app.notify("select a job: p pauses or resumes its queue (Q lists the queues)",
                            severity="warning")
            return
        self.app.act(actions.toggle_pause(job.queue), self)

    def action_pause_all(self) -> None:
        self.app.act(actions.toggle_pause(None), self)

    def action_stats(self) -> None:
        from queuectl_tui.tui.screens.stats import StatsScreen
        self.app.push_screen(StatsScreen())

    def action_retry(self) -> None:
        ids = self.selected_ids()
        if ids and self._all_in(ids, (FAILED, DEAD), "only failed or dead jobs can be retried"):
            self.app.act(actions.retry(ids), self)

    def action_restart(self) -> None:
        ids = self.selected_ids()
        if ids and self._all_in(ids, (COMPLETED, DEAD),
                                "only completed or dead jobs can be restarted"):
            self.app.act(actions.restart(ids), self)

    def _all_in(self, ids: list[str], states: tuple[str, ...], only: str) -> bool:
        """The job under the cursor is in one of ``states``, or says why not (marked jobs go
        to the engine, which refuses them all or none)."""
        wrong = [i for i in ids if i in self.jobs and self.jobs[i].state not in states]
        if wrong and not self.marks:
            self.app.notify(f"{wrong[0]} is {self.jobs[wrong[0]].state}: {only}",
                            severity="warning")
            return False
        return True

    def action_edit(self) -> None:
        key = self.table.cursor_key
        if key is not None:
            from queuectl_tui.tui.screens.modals import edit_job
            self.app.act(actions.edit(key, edit_job), self)

    def action_retry_dlq(self) -> None:
        self.app.act(actions.retry_dlq(), self)

    def action_cancel(self) -> None:
        ids = self.selected_ids()
        if ids:
            running = sum(1 for i in ids if i in self.jobs and self.jobs[i].state == PROCESSING)
            self.app.act(actions.cancel(ids, running=running), self)

    def action_delete(self) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        running = [i for i in ids if i in self.jobs and self.jobs[i].state == PROCESSING]
        if running:  # the engine refuses it: say so before asking
            self.app.notify(actions.not_while_running(running[0]), severity="warning")
            return
        self.app.act(actions.delete(ids), self)

    def action_clear_dlq(self) -> None:
        self.app.act(actions.clear_dlq(), self)

    def action_worker_start(self) -> None:
        self.app.notify("starting a worker…", timeout=2)
        self.app.act(actions.worker_start(self.app.db_path), self)

    def action_worker_stop(self) -> None:
        workers = [w for w in (self.status.workers if self.status else []) if w.alive and w.local]
        if not workers:
            self.app.notify("no running worker on this host", severity="warning")
            return
        pane = self.query_one(WorkersPane)
        chosen = None
        if pane.table.has_focus and pane.table.cursor_key:
            chosen = next((w for w in workers if str(w.id) == pane.table.cursor_key), None)
        if chosen is None:
            idle = [w for w in workers if w.status == "idle"]
            chosen = (idle or workers)[-1]
        self.app.act(actions.worker_stop(chosen), self)

    def action_worker_stop_all(self) -> None:
        self.app.act(actions.worker_stop_all(self.status.alive if self.status else 0), self)


def _shown_status(status: data.Status) -> tuple:
    """What of a status read tells that something happened: not what moves by itself (a
    heartbeat's age, an idle worker's own CPU and memory, read every few seconds anyway)."""
    return (status.counts, status.paused, status.throughput,
            [(w.id, w.host, w.pid, w.status, w.alive, w.current_job, w.job_started_at,
              w.process if w.busy else None, w.job_tree) for w in status.workers])


def _shown_page(page: data.Page) -> tuple:
    """What of a page read shows (peewee compares rows by key alone)."""
    return (page.total, page.start, [(job.id, job.state, job.updated_at) for job in page.jobs])


__all__ = ["MainScreen", "TABS", "SORTS", "job_columns"]
