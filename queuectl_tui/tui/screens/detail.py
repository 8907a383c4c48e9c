"""One job: every field, every attempt (with what it cost), the log of the selected attempt
(followed live), and for a running job its process tree and a chart of its CPU and memory."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Log, Static

from queuectl_tui.present import cpu_time, percent, precise, short_stamp, size, spark
from queuectl_tui.store.models import COMPLETED, DEAD, FAILED, PENDING, PROCESSING
from queuectl_tui.tui import actions, data
from queuectl_tui.tui.fmt import STATE_STYLE, cell
from queuectl_tui.tui.messages import ActionDone
from queuectl_tui.tui.reads import OneRead
from queuectl_tui.tui.widgets.jobs_table import Column, KeyedTable
from queuectl_tui.tui.widgets.keybar import KeyBar
from queuectl_tui.visible import visible

if TYPE_CHECKING:
    from queuectl_tui.tui.app import QueueApp

ATTEMPT_COLUMNS = (
    Column("number", "#", 3),
    Column("worker", "Worker", 6),
    Column("start", "Started", 14),
    Column("end", "Finished", 14),
    Column("exit", "Exit", 4),
    Column("duration", "Duration", 8),
    Column("outcome", "Outcome", 11),
    Column("cpu", "CPU", 7),
    Column("peak", "Peak", 6),
    Column("procs", "Procs", 5),
)
NARROW_DROPS = ("worker", "end", "cpu", "peak", "procs")
TREE_EVERY = 0.95  # seconds between two readings of a running job's tree (about each second)


def attempt_columns(width: int) -> tuple[Column, ...]:
    """Every column from 100 columns up; below, worker, finish time and the costs go (the
    error stays; ``show`` has them all)."""
    columns = [c for c in ATTEMPT_COLUMNS if width >= 100 or c.key not in NARROW_DROPS]
    used = sum(c.width + 2 for c in columns) + 2 + 2
    return (*columns, Column("error", "Error", max(12, width - used)))


#: Field order on screen (present.job_dict's keys, the attempts and budget as ``show`` has them).
FIELDS = (
    "id",
    "state",
    "command",
    "queue",
    "priority",
    "attempts",
    "retry budget",
    "backoff_base",
    "timeout",
    "run_at",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "exit_code",
    "last_error",
    "worker_id",
    "cancel_requested",
    "cwd",
)


def dependencies_text(dependencies: list[tuple[str, str | None]]) -> Text:
    """'build-1 completed, lint-2 pending': the job runs once every one is completed."""
    text = Text()
    for n, (dep_id, state) in enumerate(dependencies):
        if n:
            text.append(", ")
        text.append(visible(dep_id))
        style = STATE_STYLE.get(state, "bold red") if state else "bold red"
        text.append(f" {state or 'deleted'}", style)
    return text


class AttemptsTable(KeyedTable):
    pass


#: Actions the detail's footer offers only for jobs in these states (the engine refuses the
#: others; pressed anyway, the key says why).
OFFERED_IN = {
    "retry": (FAILED, DEAD),
    "restart": (COMPLETED, DEAD),
    "edit": (PENDING, FAILED),
    "cancel": (PENDING, FAILED, PROCESSING),
}


class JobDetailScreen(Screen):
    app: QueueApp

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the jobs"),
        Binding("r", "retry", "Retry", tooltip="Retry this job (failed or dead)"),
        Binding(
            "t",
            "restart",
            "Restart",
            tooltip="Run this completed or dead job again, with a fresh retry budget",
        ),
        Binding("E", "edit", "Edit", tooltip="Edit this job (pending or failed)"),
        Binding(
            "p",
            "pause",
            "Pause/resume queue",
            show=False,
            tooltip="Pause this job's queue (workers claim none of its jobs), or resume it",
        ),
        Binding("c", "cancel", "Cancel", tooltip="Cancel this job; asks first"),
        Binding("d,delete", "delete", "Delete", show=False, tooltip="Delete this job; asks first"),
        Binding("l", "focus_log", "Log", tooltip="Move to the log (arrows, PgUp/PgDn scroll it)"),
        Binding("f", "follow", "Follow", tooltip="Follow the log's end on or off"),
    ]

    def __init__(self, job_id: str, *, focus_log: bool = False) -> None:
        super().__init__()
        self.job_id = job_id
        self.focus_log = focus_log
        self.detail: data.Detail | None = None
        self.attempt: int | None = None  # number of the attempt whose log is shown
        self.follow = True
        self._offset = 0
        self._log_for: tuple[int, str] | None = None
        self.reads = OneRead(self._start_read)
        self._gone = False
        self._tree_at = float("-inf")  # monotonic time of the last tree reading
        self._shown: dict[str, object] = {}  # what the title, fields and log title show
        self._said: str | None = None  # the message the log shows instead of a log

    def compose(self) -> ComposeResult:
        yield Static(Text(f"job {self.job_id}", style="bold"), id="detail-title")
        with VerticalScroll(id="fields-box"):
            yield Static("loading…", id="fields")
        yield Static("Attempts", classes="section")
        yield AttemptsTable(id="attempts")
        yield Static("Processes", id="tree-title", classes="section")
        yield Static("", id="tree")
        yield Static("", id="chart")
        yield Static("Log", id="log-title", classes="section")
        yield Log(id="log", max_lines=20000, highlight=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self._show_tree(False)
        self.query_one(AttemptsTable).set_layout(attempt_columns(self.app.size.width))
        (self.query_one(Log) if self.focus_log else self.query_one(AttemptsTable)).focus()
        self.poll()
        self.set_interval(min(0.5, self.app.refresh_interval), self.poll)

    # -- reading ------------------------------------------------------------------------
    def poll(self) -> None:
        self.reads.request()

    def _start_read(self) -> bool:
        if self._gone:
            return False  # deleted meanwhile
        self._read(self.attempt, self._offset, self._log_for)
        return True

    @work(thread=True, group="detail", exit_on_error=False)
    def _read(self, attempt_no: int | None, offset: int, log_for) -> None:
        with_tree = time.monotonic() - self._tree_at >= TREE_EVERY
        if with_tree:
            self._tree_at = time.monotonic()
        try:
            detail = data.call(
                self.app.db_path,
                data.read_detail,
                self.job_id,
                self.app.clock(),
                self.app.monitor if with_tree else None,
            )
            detail.tree_read = with_tree
        except (data.Problem, data.QueueError) as exc:
            self.app.from_thread(self._failed, exc)
            return
        attempts = {a["number"]: a for a in detail.attempts}
        number = (
            attempt_no
            if attempt_no in attempts
            else (detail.attempts[-1]["number"] if detail.attempts else None)
        )
        read: tuple[tuple[int, str], int, data.LogChunk] | None = None
        if number is not None:
            chosen = attempts[number]
            key = (number, str(chosen["log_path"]))
            start = offset if key == log_for else 0
            complete = chosen["finished_ts"] is not None
            chunk = data.read_log(chosen["log_path"], start, complete=complete)
            if chosen.get("log_note"):
                chunk = data.LogChunk("", 0, missing=True, note=chosen["log_note"])
            read = (key, start, chunk)
        self.app.from_thread(self._read_done, detail, number, read)

    @property
    def settled(self) -> bool:
        return self.reads.settled

    def on_resize(self) -> None:
        table = self.query_one(AttemptsTable)
        if table.set_layout(attempt_columns(self.size.width)) and self.detail:
            self._apply(self.detail, self.attempt, None)
        if self.detail is not None:
            detail = self.detail
            self._put(
                "#fields",
                (detail.fields, detail.dependencies, self.size.width),
                lambda: self._fields_table(detail),
            )

    def _failed(self, exc: Exception) -> None:
        self.reads.done()
        if isinstance(exc, data.QueueError) and not isinstance(exc, data.Problem):
            self._gone = True  # deleted meanwhile
        self._put("#fields", str(exc), Text(str(exc), style="bold red"))

    def _read_done(self, detail: data.Detail, number: int | None, chunk) -> None:
        self._apply(detail, number, chunk)
        self.reads.done()

    def _apply(self, detail: data.Detail, number: int | None, chunk) -> None:
        if self.reads.again or (self.attempt is not None and number != self.attempt):
            chunk = None  # read for another attempt than the one now selected
            self.reads.again = True
        if self.detail is None or self.detail.fields["state"] != detail.fields["state"]:
            self.call_later(self.refresh_bindings)  # the footer offers what this state allows
        self.detail = detail
        fields = detail.fields
        title = Text.assemble(
            (f"job {self.job_id}  ", "bold"),
            (fields["state"], STATE_STYLE.get(fields["state"], "")),
            "  ",
            (visible(detail.why), "italic"),
        )
        self._put("#detail-title", title, title)
        self._put(
            "#fields",
            (fields, detail.dependencies, self.size.width),
            lambda: self._fields_table(detail),
        )
        table = self.query_one(AttemptsTable)
        rows = []
        for a in detail.attempts:
            outcome = a["outcome"] or "running"
            style = {"completed": "green", "running": "yellow"}.get(outcome, "red")
            cells = {
                "number": cell(a["number"], justify="right"),
                "worker": cell(a["worker_id"]),
                "start": cell(short_stamp(a["started_ts"])),
                "end": cell(short_stamp(a["finished_ts"])),
                "exit": cell(a["exit_code"], justify="right"),
                "duration": cell(precise(a["duration"])),
                "outcome": cell(outcome, style),
                "error": cell(a["error"], "red"),
                "cpu": cell(cpu_time(a["cpu_seconds"]), justify="right"),
                "peak": cell(size(a["peak_rss_bytes"]), justify="right"),
                "procs": cell(a["processes"], justify="right"),
            }
            rows.append((str(a["number"]), tuple(cells[c.key] for c in table.layout)))
        first = self.attempt is None and number is not None
        table.show(rows, cursor_key=str(number) if first else None)
        if self.attempt is None:
            self.attempt = number
        log = self.query_one(Log)
        if number is None:
            self._say(log, "(no attempt yet: the log appears when a worker runs the job)")
            self._log_for = None
        elif chunk is not None:
            key, start, piece = chunk
            if key != self._log_for or start == 0 and self._offset:
                log.clear()
                self._said = None
                self._log_for = key
                if piece.skipped:
                    log.write_line(
                        f"[… {piece.skipped:,} earlier bytes not shown; "
                        f"queuectl-tui logs {self.job_id} --attempt {number} prints them]"
                    )
            if piece.missing:
                self._say(log, piece.note or "(no log file for this attempt)")
            elif piece.text:
                log.write(piece.text, scroll_end=self.follow)
                if self.follow:
                    self.call_after_refresh(log.scroll_end, animate=False)
            self._offset = piece.offset
        running = (
            number is not None
            and next((a for a in detail.attempts if a["number"] == number), {}).get("finished_ts")
            is None
        )
        state = "following" if self.follow and running else "paused" if running else "complete"
        log_title = f"Log of attempt {number}  ({state})" if number is not None else "Log"
        self._put("#log-title", log_title, log_title)
        if not detail.running:
            self._show_tree(False)
        elif detail.tree_read:
            self._update_tree(detail)

    def _say(self, log: Log, message: str) -> None:
        """The log shows a message instead of a log: written once, not again at every read
        (twice a second: each time the whole screen was laid out and drawn again)."""
        if self._said != message:
            log.clear()
            log.write(message)
            self._said = message

    def offers(self, action: str) -> bool:
        """Does the footer offer this action for the job as it is? (A completed job: t, not
        r, E or c.)"""
        states = OFFERED_IN.get(action)
        return states is None or self.detail is None or self.detail.fields["state"] in states

    def _put(self, name: str, shown, content) -> None:
        """Update a Static only when what it shows changed: it is read twice a second, and an
        update lays out and draws the whole screen again (``content``: it, or how to make it)."""
        if self._shown.get(name) != shown:
            self._shown[name] = shown
            self.query_one(name, Static).update(content() if callable(content) else content)

    # -- the running job's processes ------------------------------------------------------
    def _show_tree(self, shown: bool) -> None:
        for name in ("#tree-title", "#tree", "#chart"):
            self.query_one(name).display = shown

    def _update_tree(self, detail: data.Detail) -> None:
        tree = detail.tree
        if tree is None or not tree.local:
            self._show_tree(True)
            self.query_one("#chart").display = False
            where = "" if tree is None else f" (on host {tree.host})"
            self.query_one("#tree", Static).update(
                Text(f"its processes cannot be read from here{visible(where)}", style="dim")
            )
            return
        self._show_tree(True)
        now = self.app.clock()
        totals = tree.totals()
        self.query_one("#tree-title", Static).update(
            Text.assemble(
                "Processes",
                (
                    f"  {len(tree.processes)} · CPU {percent(totals.cpu)} · RSS "
                    f"{size(totals.rss)} · running {precise(tree.runtime(now))}",
                    "",
                ),
            )
        )
        table = Table(box=None, header_style="bold", padding=(0, 1), expand=True)
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("PID", "right"),
            ("CPU%", "right"),
            ("RSS", "right"),
            ("State", "left"),
            ("Command", "left"),
        )
        for name, justify in columns:
            table.add_column(
                name,
                justify=justify,
                no_wrap=True,
                ratio=1 if name == "Command" else None,
                overflow="ellipsis",
            )
        for p in tree.processes:
            branch = "    " * (p.depth - 1) + "\\_ " if p.depth else ""
            command = visible(p.command.replace("\n", " "))
            table.add_row(
                str(p.pid),
                percent(p.cpu_percent),
                size(p.rss),
                p.state,
                Text(branch + command, no_wrap=True, overflow="ellipsis"),
            )
        if not tree.processes:
            none = Text("(no process: starting, or just ended)", style="dim")
            table.add_row("", "", "", "", none)
        self.query_one("#tree", Static).update(table)
        history = detail.history or []
        width = max(10, self.size.width - 40)
        cpu = [point[1] for point in history]
        rss = [point[2] for point in history]
        chart = Text()
        if history:
            chart.append("CPU  ", "bold").append(spark(cpu, width, 100.0), "green")
            chart.append(f"  {percent(cpu[-1])} now, {percent(max(cpu))} at most\n")
            chart.append("Mem  ", "bold").append(spark([float(v) for v in rss], width), "cyan")
            chart.append(f"  {size(rss[-1])} now, {size(max(rss))} at most")
            span = history[-1][0] - history[0][0]
            chart.append(f"  (over {precise(span)} seen)", "dim")
        self.query_one("#chart", Static).update(chart)
        self.query_one("#chart").display = bool(history)

    def _fields_table(self, detail: data.Detail) -> Table:
        wide = self.size.width >= 110
        grid = Table.grid(padding=(0, 2), expand=True)
        fields = detail.fields
        pairs: list[tuple[str, Any]] = [(k, fields.get(k)) for k in FIELDS]
        if detail.dependencies:  # after the queue: what the job waits for, each with its state
            after = ("after", dependencies_text(detail.dependencies))
            pairs.insert(FIELDS.index("queue") + 1, after)
        if fields.get("label"):  # beside the id, as on the main screen
            pairs.insert(1, ("label", fields["label"]))
        if fields.get("schedule"):  # the schedule that made it (C lists the schedules)
            pairs.insert(FIELDS.index("queue") + 1, ("schedule", fields["schedule"]))
        columns = 2 if wide else 1
        for _ in range(columns):
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column(ratio=1, overflow="fold")
        rows = (len(pairs) + columns - 1) // columns
        for r in range(rows):
            line: list[str | Text] = []
            for c in range(columns):
                index = c * rows + r
                if index < len(pairs):
                    key, value = pairs[index]
                    style = STATE_STYLE.get(value, "") if key == "state" else ""
                    if not isinstance(value, Text):
                        value = Text(visible("-" if value is None else str(value)), style=style)
                    line += [key, value]
                else:
                    line += ["", ""]
            grid.add_row(*line)
        return grid

    @on(DataTable.RowHighlighted, "#attempts")
    def _attempt_chosen(self, event: DataTable.RowHighlighted) -> None:
        assert event.row_key.value is not None  # its rows are keyed by attempt number
        number = int(event.row_key.value)
        if number != self.attempt:
            self.attempt = number
            self._offset = 0
            self._log_for = None
            self.poll()

    # -- actions ------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_focus_log(self) -> None:
        self.query_one(Log).focus()

    def action_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.query_one(Log).scroll_end(animate=False)
        self.app.notify(f"follow {'on' if self.follow else 'off'}", timeout=1.5)

    def action_retry(self) -> None:
        self.app.act(actions.retry([self.job_id], one=True), self)

    def action_restart(self) -> None:
        self.app.act(actions.restart([self.job_id], one=True), self)

    def action_edit(self) -> None:
        from queuectl_tui.tui.screens.modals import edit_job

        self.app.act(actions.edit(self.job_id, edit_job), self)

    def action_pause(self) -> None:
        if self.detail is not None:
            self.app.act(actions.toggle_pause(self.detail.fields["queue"]), self)

    def action_cancel(self) -> None:
        self.app.act(actions.cancel([self.job_id]), self)

    def action_delete(self) -> None:
        if self.detail is not None and self.detail.fields["state"] == "processing":
            self.app.notify(actions.not_while_running(self.job_id), severity="warning")
            return
        self.app.act(actions.delete([self.job_id], one=True), self)

    def done(self, message: str, *, clear_marks: bool = False) -> None:
        """An action is done: say what it did, and show the latest attempt (a new one may
        come)."""
        self.app.notify(message)
        self.attempt = None
        self.poll()

    @on(ActionDone)
    def _acted(self, event: ActionDone) -> None:
        event.stop()
        actions.finish(self, event.action, event.result)
