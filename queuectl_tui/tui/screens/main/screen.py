"""The main screen: counts, the jobs table by state, workers, throughput; and the actions.

``ReadingScreen`` (reading.py) reads the page and the status in thread workers about once a
second; this class lays the screen out, draws what the reads bring, changes the view (tab,
filter, sort, page) and runs the actions. Every action calls the engine or supervisor function
that the matching CLI command calls (tui/actions.py; see the README's parity table). The keys
are in keys.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from queuectl_tui.store.models import COMPLETED, DEAD, FAILED, PROCESSING, Job
from queuectl_tui.tui import actions, data
from queuectl_tui.tui.messages import ActionDone
from queuectl_tui.tui.screens.main import keys
from queuectl_tui.tui.screens.main.keys import SORTS, TABS
from queuectl_tui.tui.screens.main.reading import DRAW_EVERY, KEY_QUIET, ReadingScreen
from queuectl_tui.tui.widgets import (
    CountsHeader,
    JobsTable,
    KeyBar,
    TabBar,
    ThroughputLine,
    WorkersPane,
)
from queuectl_tui.tui.widgets.jobs_table import job_columns
from queuectl_tui.tui.widgets.output import OutputPane

if TYPE_CHECKING:
    from textual.timer import Timer

FILTER_DELAY = 0.15  # seconds of no typing before the filter applies


class MainScreen(ReadingScreen):
    AUTO_FOCUS = "#jobs"
    BINDINGS = keys.BINDINGS

    def __init__(self) -> None:
        super().__init__()
        self.marks: set[str] = set()
        self.jobs: dict[str, Job] = {}
        self._output_age = 0  # output timer's calls since the pane was last read
        self._cursor_to: str | None = None
        self._cursor_edge = 0  # +1/-1: the cursor on the first/last row of the next page shown
        self._filter_timer: Timer | None = None
        self._shown: dict[str, object] = {}  # the pager's and the empty note's text on screen

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield CountsHeader(id="counts")
        yield Static("", id="banner")
        yield TabBar(
            [(tab, f"{n} {label}") for n, (tab, label, _) in enumerate(TABS, 1)],
            active="all",
            id="tabs",
        )
        yield Input(
            placeholder="filter: text in id, command or last error (Enter keeps it, Esc clears)",
            id="filter",
            compact=True,
        )
        with Vertical(id="jobs-area"):
            yield JobsTable(id="jobs")
            yield Static("", id="empty")
        yield Static("", id="pager")
        yield OutputPane(lambda: self.table.cursor_key, id="output-pane")
        yield WorkersPane(id="workers")
        yield ThroughputLine(id="throughput")
        yield KeyBar()

    @property
    def output(self) -> OutputPane:
        return self.query_one(OutputPane)

    @property
    def output_on(self) -> bool:
        """The output pane (o) is shown."""
        return self.output.on

    def on_mount(self) -> None:
        self.query_one("#filter").display = False
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
        self.output.fit(max(3, min(9, height - others)))

    @property
    def settled(self) -> bool:
        """No read under way or due and the page fits the table (what tests wait for)."""
        return super().settled and self.output.settled

    # -- showing ------------------------------------------------------------------------
    def _show_status(self, status: data.Status) -> None:
        now = self.app.clock()
        self.query_one(CountsHeader).set_counts(status.counts, status.alive, status.busy)
        self.query_one(WorkersPane).set_workers(status.workers, now)
        self.query_one(ThroughputLine).set_series(status.throughput)
        self._update_pager()
        self._update_empty()

    def _show_page(self, page: data.Page) -> None:
        now = self.app.clock()
        self.jobs = {job.id: job for job in page.jobs}
        if self._cursor_edge and page.jobs:
            self._cursor_to = page.jobs[0 if self._cursor_edge > 0 else -1].id
            self._cursor_edge = 0
        self.table.show_jobs(
            page,
            now,
            self.marks,
            self.size.width or self.app.size.width,
            cursor_key=self._cursor_to,
        )
        self._cursor_to = None
        self._update_pager()
        self._update_empty()

    def _update_pager(self) -> None:
        page = self.page
        if page is None:
            return
        key, desc_label, asc_label, _ = next(s for s in SORTS if s[0] == self.view.sort)
        moves = [
            text
            for text, possible in (("[ previous", page.has_prev), ("] next", page.has_next))
            if possible
        ]
        parts = [
            f"page {page.number} of {page.pages}, {len(page.jobs)} of {page.total:,} jobs"
            + (f" ({', '.join(moves)})" if moves else ""),
            f"sort: {desc_label if self.view.descending else asc_label} (s/S)",
        ]
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
                message = (
                    "The queue is empty.\n\nPress n to enqueue a job and + to start a worker,\n"
                    "or run `queuectl-tui demo` to see the console with sample jobs."
                )
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
    def set_view(self, **changes: Any) -> None:
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
            self.table.update_row(
                key, self.table.job_row(job, self.app.clock(), key in self.marks, self.page)
            )
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
        self.output.toggle()
        if self.output_on:
            self._poll_output()

    @on(DataTable.RowHighlighted, "#jobs")
    def _cursor_moved(self) -> None:
        if self.output_on and self.table.cursor_key != self.output.job_id:
            self._poll_output()

    def _output_tick(self) -> None:
        """A running job's log is followed at every call; another job's (none yet, or ended)
        is looked at with the table's cadence unless a key was pressed lately."""
        self._output_age += 1
        job = self.jobs.get(self.table.cursor_key or "") if self.output_on else None
        if (
            job is None
            or job.state == PROCESSING
            or self._key_age < KEY_QUIET
            or self._output_age * min(0.5, self.app.refresh_interval)
            >= DRAW_EVERY * self.app.refresh_interval
        ):
            self._poll_output()

    def _poll_output(self) -> None:
        """Read what the selected job's latest log added (the whole tail for a new job)."""
        if self.output_on and self.in_front:
            self._output_age = 0
            self.output.poll()

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
            self.app.notify(
                "select a job: p pauses or resumes its queue (Q lists the queues)",
                severity="warning",
            )
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
        if ids and self._all_in(
            ids, (COMPLETED, DEAD), "only completed or dead jobs can be restarted"
        ):
            self.app.act(actions.restart(ids), self)

    def _all_in(self, ids: list[str], states: tuple[str, ...], only: str) -> bool:
        """The job under the cursor is in one of ``states``, or says why not (marked jobs go
        to the engine, which refuses them all or none)."""
        wrong = [i for i in ids if i in self.jobs and self.jobs[i].state not in states]
        if wrong and not self.marks:
            self.app.notify(
                f"{wrong[0]} is {self.jobs[wrong[0]].state}: {only}", severity="warning"
            )
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


__all__ = ["MainScreen"]
