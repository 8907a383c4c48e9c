"""The schedules: each with its rule, next run, last job and its state; add, pause or resume,
run now and remove them.

Every action is the engine call of a CLI command (``schedule add|pause|resume|run|remove``,
schedules.py); reads run in a thread worker like the queues screen's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from queuectl_tui.errors import InvalidInput
from queuectl_tui.tui import actions, data
from queuectl_tui.tui.fmt import STATE_STYLE, cell
from queuectl_tui.tui.messages import ActionDone
from queuectl_tui.tui.screens.live_table import LiveTableScreen
from queuectl_tui.tui.screens.modals import ActingForm
from queuectl_tui.tui.widgets.jobs_table import Column, KeyedTable
from queuectl_tui.tui.widgets.keybar import KeyBar

if TYPE_CHECKING:
    from queuectl_tui.tui.app import QueueApp  # for the type of self.app (app.py imports us)


def schedule_columns(width: int) -> tuple[Column, ...]:
    """Schedule, Rule, Next run (or paused), Last job (its id says its due time), State; what
    else a schedule holds shows under the table for the selected one."""
    fixed = [Column("next", "Next run", 20), Column("state", "State", 10)]
    free = max(36, width - sum(c.width for c in fixed) - 2 * 5 - 4)
    name = min(16, max(8, free * 2 // 11))
    rule = min(30, max(12, free * 5 // 11))
    return (
        Column("name", "Schedule", name),
        Column("rule", "Rule", rule),
        fixed[0],
        Column("last", "Last job", max(12, free - name - rule)),
        fixed[1],
    )


def _when(iso: str | None) -> str:
    """2026-12-06T03:00:00.000Z -> 2026-12-06 03:00:00Z (UTC, to the second)."""
    if not iso:
        return "-"
    return iso[:19].replace("T", " ") + "Z"


def describe(row: dict[str, Any]) -> Text:
    """The selected schedule in one line: its command, queue, options, and the last due time
    that made no job and why."""
    parts = [
        f"{row['name']}: {row['command']}",
        f"queue {row['queue']}",
        f"catch-up {row['catch_up']}",
    ]
    if row["no_overlap"]:
        parts.append("no-overlap")
    if row["last_run"]:
        parts.append(f"last run {_when(row['last_run'])}")
    text = Text(" · ".join(parts))
    if row["skipped"]:
        text.append(f"\nskipped {_when(row['skipped_at'])}: {row['skipped']}", "yellow")
    return text


class SchedulesTable(KeyedTable):
    pass


class SchedulesScreen(LiveTableScreen):
    AUTO_FOCUS = "#schedules"
    BINDINGS = [
        Binding("escape", "back", "Back", key_display="esc", tooltip="Back to the jobs"),
        Binding("n", "add", "Add", tooltip="Add a schedule (form)"),
        Binding(
            "p",
            "pause",
            "Pause/resume",
            tooltip="Pause the selected schedule (it makes no jobs), or resume it",
        ),
        Binding("r", "run", "Run now", tooltip="Enqueue one job of the selected schedule now"),
        Binding(
            "d,delete",
            "remove",
            "Remove",
            tooltip="Remove the selected schedule (its jobs stay); asks first",
        ),
        Binding("f5,ctrl+r", "refresh", "Refresh", show=False, tooltip="Refresh now"),
    ]

    NAME, TITLE = "schedules", "Schedules"

    @property
    def rows(self) -> list[dict[str, Any]] | None:
        return self.result

    def compose(self) -> ComposeResult:
        yield Static(Text("Schedules", style="bold"), id="schedules-title")
        yield SchedulesTable(id="schedules")
        yield Static("", id="schedules-detail")
        yield Static(
            Text(
                "Running workers make each due time's job (NAME@time); times are UTC. "
                "A paused schedule makes none.",
                style="dim",
            ),
            id="schedules-hint",
        )
        yield KeyBar()

    def columns(self, width: int) -> tuple[Column, ...]:
        return schedule_columns(width)

    def fetch(self) -> list[dict[str, Any]]:
        return data.read_schedules(self.app.clock())

    def show(self, rows: list[dict[str, Any]]) -> None:
        self.query_one("#schedules-title", Static).update(
            Text.assemble(("Schedules", "bold"), f"  {len(rows)} schedule(s)")
        )
        shown = []
        for row in rows:
            state = row["last_state"] or ("deleted" if row["last_job"] else None)
            cells = {
                "name": cell(row["name"], "bold"),
                "rule": cell(row["rule"]),
                "next": (
                    cell("paused", "bold yellow") if row["paused"] else cell(_when(row["next_run"]))
                ),
                "last": cell(row["last_job"] or "-"),
                "state": cell(state or "-", STATE_STYLE.get(state or "-", "dim")),
            }
            shown.append((row["name"], tuple(cells[c.key] for c in self.table.layout)))
        self.table.show(shown)
        self._describe()

    def on_data_table_row_highlighted(self) -> None:
        self._describe()

    def _describe(self) -> None:
        name = self.selected()
        row = next((r for r in self.rows or () if r["name"] == name), None)
        self.query_one("#schedules-detail", Static).update(
            describe(row)
            if row
            else Text("No schedule yet: n adds one (or schedule add).", style="dim")
        )

    # -- actions (back and refresh: LiveTableScreen's) ------------------------------------
    def action_add(self) -> None:
        def added(name: str | None) -> None:
            if name:
                self._done(f"added schedule {name}")

        self.app.push_screen(ScheduleModal(), added)

    def action_pause(self) -> None:
        name = self.selected()
        if name is None:
            return
        self.app.act(actions.toggle_schedule(name), self)

    def action_run(self) -> None:
        name = self.selected()
        if name is None:
            return
        self.app.act(actions.run_schedule(name), self)

    def action_remove(self) -> None:
        name = self.selected()
        if name is not None:
            self.app.act(actions.remove_schedule(name), self)

    def done(self, message: str, *, clear_marks: bool = False) -> None:
        """An action is done: say what it did and read the schedules again."""
        self._done(message)

    @on(ActionDone)
    def _acted(self, event: ActionDone) -> None:
        event.stop()
        actions.finish(self, event.action, event.result)


#: (field, label, placeholder) of the add form, in order; the job's fields as in enqueue.
SCHEDULE_FIELDS = [
    ("name", "Name", "e.g. backup: its jobs are backup@<due time>"),
    ("command", "Command", "shell command, e.g. ./backup.sh --full"),
    ("cron", "Cron", "five fields, e.g. 30 3 * * * (or give Every)"),
    ("every", "Every", "90s, 15m, 2h30m, 1d (or give Cron)"),
    ("tz", "Time zone", "UTC (or e.g. Europe/Paris, for Cron)"),
    ("queue", "Queue", "default"),
    ("priority", "Priority", "0 (higher runs first)"),
    ("max_retries", "Max retries", "default from settings"),
    ("timeout", "Timeout", "default from settings; none: no limit"),
    ("catch_up", "Catch-up", "latest, all or none: due times missed while no worker ran"),
    ("no_overlap", "No overlap", "yes: skip a due time while the last job runs (default no)"),
]
_JOB = {"command", "queue", "priority", "max_retries", "timeout"}


class ScheduleModal(ActingForm[str | None]):
    """The add form: its fields go to ``schedules.add`` as ``schedule add`` passes them, and
    each error shows under the field it names. Dismissed with the new schedule's name."""

    HELP_NAME = "schedule form (n in Schedules)"  # in the help
    app: QueueApp  # textual's property, typed as the app that runs this screen

    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="Close without adding"),
        Binding("ctrl+s", "save", "Add", tooltip="Add the schedule"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog form"):
            yield Static(Text("Add a schedule"), classes="dialog-title")
            with VerticalScroll(classes="form-body"):
                for name, label, placeholder in SCHEDULE_FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="form-label")
                        with Vertical(classes="form-field"):
                            yield Input(placeholder=placeholder, id=f"f-{name}", compact=True)
                            yield Static("", id=f"e-{name}", classes="form-error")
            yield Static("", id="e-form", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add (ctrl+s)", variant="primary", id="ok", compact=True)
                yield Button("Close (esc)", id="close", compact=True)
        yield KeyBar()

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = self.app.cursor_blink
        self.query_one("#f-name", Input).focus()

    def _text(self, name: str) -> str:
        value = self.query_one(f"#f-{name}", Input).value
        return value if name == "command" else value.strip()

    def _show_errors(self, errors: dict[str, str]) -> None:
        for name in [n for n, _, _ in SCHEDULE_FIELDS] + ["form"]:
            box = self.query_one(f"#e-{name}", Static)
            box.update(Text(errors.get(name, "")))
            box.set_class(name in errors, "-show")

    def _refused(self, message: str, field: str | None = None) -> None:
        names = {n for n, _, _ in SCHEDULE_FIELDS}
        self._show_errors({field if field in names else "form": message})

    def arguments(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(name, job fields, options) as ``schedule add`` gives them to ``schedules.add``."""
        from queuectl_tui.tui.screens.modals import _number

        job: dict[str, Any] = {}
        for name in _JOB:
            text = self._text(name)
            if text:
                job[name] = (
                    None
                    if name == "timeout" and text.lower() == "none"
                    else (_number(text) if name in ("priority", "max_retries") else text)
                )
        overlap = self._text("no_overlap").lower()
        if overlap not in ("", "yes", "no", "y", "n"):
            raise InvalidInput("no overlap: yes or no", field="no_overlap")
        options = {
            "cron": self._text("cron") or None,
            "every": self._text("every") or None,
            "tz": self._text("tz") or "UTC",
            "catch_up": self._text("catch_up") or "latest",
            "no_overlap": overlap in ("yes", "y"),
        }
        return self._text("name"), job, options

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def action_save(self) -> None:
        try:
            name, job, options = self.arguments()
        except InvalidInput as exc:
            self._refused(str(exc), exc.field)
            return
        self._show_errors({})
        self.app.act(actions.add_schedule(name, job, options), self)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)


__all__ = ["SchedulesScreen", "ScheduleModal", "schedule_columns"]
