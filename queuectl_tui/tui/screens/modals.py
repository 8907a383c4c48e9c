"""Dialogs: the enqueue form, the settings editor, and yes/no confirmation.

Validation is the engine's (``spec.normalize``, ``settings.validate``): the form only turns its
text boxes into the same raw values a JSON spec or ``config set`` would carry, and shows each
error under the field it names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from queuectl_tui import engine, settings, spec
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store.models import FAILED, PENDING, PROCESSING, Job
from queuectl_tui.tui import actions
from queuectl_tui.tui.messages import ActionDone, ActionFailed
from queuectl_tui.tui.widgets.keybar import KeyBar

if TYPE_CHECKING:
    from queuectl_tui.tui.app import QueueApp  # for the type of self.app (app.py imports us)

#: (field, label, placeholder) in the order of the form; numeric fields are parsed as numbers.
ENQUEUE_FIELDS = [
    ("command", "Command", "shell command, e.g. ./backup.sh --full"),
    ("id", "Id", "optional; generated when empty"),
    ("priority", "Priority", "0 (higher runs first)"),
    ("max_retries", "Max retries", "default from settings"),
    ("timeout", "Timeout (s)", "default from settings"),
    ("run_at", "Run at", "ISO-8601, e.g. 2030-01-31T09:00:00Z (local time if no zone)"),
    ("delay", "Delay (s)", "seconds from now (instead of run at)"),
    ("queue", "Queue", "default"),
    ("after", "After", "ids of jobs that must complete first, e.g. build-1 build-2"),
]
#: What ``edit`` can change (engine.edit's keys), labelled as in the enqueue form.
_EDIT_PLACEHOLDERS = {"timeout": "none (no time limit)"}
EDIT_FIELDS = [
    (name, label, _EDIT_PLACEHOLDERS.get(name, placeholder))
    for name, label, placeholder in ENQUEUE_FIELDS
    if name in engine.EDITABLE
]
NUMERIC = {"priority", "max_retries", "timeout", "delay"}


def _number(text: str) -> Any:
    """'3' -> 3, '2.5' -> 2.5, anything else stays text (spec validation names the problem)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _ids(text: str) -> list[str]:
    """The after field: ids separated by spaces or commas."""
    return [part for part in text.replace(",", " ").split() if part]


ResultT = TypeVar("ResultT")


class ActingForm(ModalScreen[ResultT]):
    """A form whose actions run through ``QueueApp.act``: a success finishes as its action
    says; a refusal meant for the form (``in_form``) shows in the form (``_refused``)."""

    @on(ActionDone)
    def _acted(self, event: ActionDone) -> None:
        event.stop()
        actions.finish(self, event.action, event.result)

    @on(ActionFailed)
    def _not_acted(self, event: ActionFailed) -> None:
        if event.action.in_form:  # under the field it names; anything else: the app says it
            event.stop()
            self._refused(event.message, event.field)

    def _refused(self, message: str, field: str | None = None) -> None:
        raise NotImplementedError


class JobForm(ActingForm[Any]):
    """A form of job fields whose values go through the engine's validation (``spec``)."""

    app: QueueApp  # textual's property, typed as the app that runs this screen

    FIELDS: list[tuple[str, str, str]] = ENQUEUE_FIELDS
    OK = ""

    def heading(self) -> str:
        return ""

    def initial(self) -> dict[str, str]:
        return {}

    def compose(self) -> ComposeResult:
        values = self.initial()
        with Vertical(id="dialog", classes="dialog form"):
            yield Static(Text(self.heading()), classes="dialog-title")
            with VerticalScroll(classes="form-body"):
                for name, label, placeholder in self.FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="form-label")
                        with Vertical(classes="form-field"):
                            yield Input(
                                value=values.get(name, ""),
                                placeholder=placeholder,
                                id=f"f-{name}",
                                compact=True,
                            )
                            yield Static("", id=f"e-{name}", classes="form-error")
            yield Static("", id="e-form", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.OK} (ctrl+s)", variant="primary", id="ok", compact=True)
                yield Button("Close (esc)", id="close", compact=True)
        yield KeyBar()  # the dialog's keys, over the screen's

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = self.app.cursor_blink
        self.query_one(f"#f-{self.FIELDS[0][0]}", Input).focus()

    def texts(self) -> dict[str, str]:
        """Each field's text (the command as typed, the others stripped)."""
        return {
            name: self.query_one(f"#f-{name}", Input).value
            if name == "command"
            else self.query_one(f"#f-{name}", Input).value.strip()
            for name, _, _ in self.FIELDS
        }

    @staticmethod
    def value(name: str, text: str) -> Any:
        if name == "after":
            return _ids(text)
        return _number(text) if name in NUMERIC else text

    def field_errors(self, raw: dict[str, Any]) -> dict[str, str]:
        """Each field checked on its own, as a spec holding only it (and a command) would be."""
        errors: dict[str, str] = {}
        now = self.app.clock()
        for name, value in raw.items():
            try:
                spec.normalize({name: value}, now=now, partial=True)
            except InvalidInput as exc:
                errors[name] = str(exc)
        return errors

    def show_errors(self, errors: dict[str, str]) -> None:
        for name in [n for n, _, _ in self.FIELDS] + ["form"]:
            box = self.query_one(f"#e-{name}", Static)
            box.update(Text(errors.get(name, "")))
            box.set_class(name in errors, "-show")
        first = next((n for n, _, _ in self.FIELDS if n in errors), None)
        if first:
            self.query_one(f"#f-{first}", Input).focus()

    def _refused(self, message: str, field: str | None = None) -> None:
        """The engine's refusal under the field it names (``InvalidInput.field``), else the
        form's."""
        names = [n for n, _, _ in self.FIELDS]
        self.show_errors({field if field in names else "form": message})

    @on(Button.Pressed, "#close")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class EnqueueModal(JobForm):
    HELP_NAME = "enqueue form (n)"  # in the help
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", tooltip="Close without enqueuing"),
        Binding("ctrl+s", "submit", "Enqueue", tooltip="Enqueue the job"),
    ]
    OK = "Enqueue"

    def heading(self) -> str:
        return "Enqueue a job"

    def raw(self) -> dict[str, Any]:
        return {name: self.value(name, text) for name, text in self.texts().items() if text}

    def validate(self) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The normalized spec, or the errors by field (each checked on its own first)."""
        raw = self.raw()
        errors = self.field_errors(raw)
        if "command" not in raw:
            errors["command"] = "a command is required"
        if errors:
            return None, errors
        try:
            return spec.normalize(raw, now=self.app.clock()), {}
        except InvalidInput as exc:
            key = "delay" if "delay" in str(exc) else "form"
            return None, {key: str(exc)}

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def action_submit(self) -> None:
        checked, errors = self.validate()
        self.show_errors(errors)
        if checked is None:
            return
        self.app.act(actions.enqueue(checked, self.app.clock()), self)


class EditModal(JobForm):
    """A pending or failed job's fields, changed as ``edit JOB_ID --field …`` changes them: only
    the fields whose text changed are sent, and the engine refuses a job that started running."""

    HELP_NAME = "edit form (E)"  # in the help

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", tooltip="Close without changing the job"),
        Binding("ctrl+s", "submit", "Save", tooltip="Save the changed fields"),
    ]
    FIELDS = EDIT_FIELDS
    OK = "Save"

    def __init__(self, job) -> None:
        super().__init__()
        self.job = job
        self.before = self.initial()

    def heading(self) -> str:
        return f"Edit job {self.job.id} ({self.job.state}; only the fields you change are saved)"

    def initial(self) -> dict[str, str]:
        job = self.job
        return {
            "command": job.command,
            "priority": str(job.priority),
            "run_at": spec.iso(job.run_at) or "",
            "delay": "",
            "max_retries": str(job.max_retries),
            "timeout": "" if job.timeout is None else _shown(job.timeout),
            "queue": job.queue,
        }

    def changes(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The changed fields, and errors for fields emptied: ``edit`` sets values, it does
        not clear them (a run at emptied for a delay is the one exception)."""
        changed, errors = {}, {}
        texts = self.texts()
        for name, text in texts.items():
            if text == self.before[name]:
                continue
            if text:
                changed[name] = self.value(name, text)
            elif not (name == "run_at" and texts["delay"]):
                errors[name] = "give a value (edit changes a field, it cannot empty it)"
        return changed, errors

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def action_submit(self) -> None:
        changes, errors = self.changes()
        errors = {**self.field_errors(changes), **errors}
        self.show_errors(errors)
        if errors:
            return
        if not changes:
            self.dismiss(None)
            return
        self.app.act(actions.save_job(self.job.id, changes, self.app.clock()), self)


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


class ConfigModal(ActingForm[list[str] | None]):
    """Every setting with its default; a bad value is refused under its field."""

    app: QueueApp  # textual's property, typed as the app that runs this screen
    HELP_NAME = "settings form (e)"  # in the help

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", tooltip="Close without saving"),
        Binding("ctrl+s", "save", "Save", tooltip="Save the changed settings"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog form"):
            yield Static("Settings  (empty = back to the default)", classes="dialog-title")
            with VerticalScroll(classes="form-body", id="config-body"):
                for name, item in settings.SETTINGS.items():
                    with Horizontal(classes="form-row"):
                        yield Label(name, classes="form-label wide")
                        with Vertical(classes="form-field"):
                            default = f"default {_shown(item.default)}"
                            yield Input(id=f"c-{name}", compact=True, placeholder=default)
                            yield Static(
                                Text(f"{default} · {item.help}", style="dim"), classes="form-help"
                            )
                            yield Static("", id=f"ce-{name}", classes="form-error")
            yield Static("", id="ce-form", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save", compact=True)
                yield Button("Close (esc)", id="close", compact=True)
        yield KeyBar()  # the dialog's keys, over the screen's

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = self.app.cursor_blink
            box.disabled = True
        self.app.act(actions.read_settings(), self)

    def loaded(self, rows: list[dict[str, Any]]) -> None:
        """The settings as they are: in the boxes, which can be edited from now on."""
        self.rows = rows
        for row in rows:
            box = self.query_one(f"#c-{row['key']}", Input)
            box.value = _shown(row["value"])
            box.disabled = False
        self.query_one(f"#c-{rows[0]['key']}", Input).focus()

    def changes(self) -> tuple[dict[str, Any], list[str], dict[str, str]]:
        changes, resets, errors = {}, [], {}
        for row in self.rows:
            text = self.query_one(f"#c-{row['key']}", Input).value.strip()
            if text == _shown(row["value"]):
                continue
            if not text:
                resets.append(row["key"])
                continue
            try:
                name, value = settings.validate(row["key"], text)
            except InvalidInput as exc:
                errors[row["key"]] = str(exc)
                continue
            if value != row["value"]:
                changes[name] = value
        return changes, resets, errors

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        if not self.rows:
            return
        changes, resets, errors = self.changes()
        for row in self.rows:
            box = self.query_one(f"#ce-{row['key']}", Static)
            box.update(errors.get(row["key"], ""))
            box.set_class(row["key"] in errors, "-show")
        if errors:
            self.query_one(f"#c-{next(iter(errors))}", Input).focus()
            return
        if not changes and not resets:
            self.dismiss([])
            return
        self.app.act(actions.save_settings(changes, resets), self)

    def _refused(self, message: str, field: str | None = None) -> None:
        box = self.query_one("#ce-form", Static)
        box.update(message)
        box.add_class("-show")

    @on(Button.Pressed, "#close")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def parse_limit(text: str) -> int | None:
    """A queue's running limit as ``queue limit Q N|none`` takes it (empty: none)."""
    value = text.strip().lower()
    if value in ("", "none"):
        return None
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise InvalidInput(f"bad limit {text.strip()!r}: expected a whole number >= 0 or 'none'")
    return limit


class LimitModal(ActingForm[int | None | bool]):
    """How many of one queue's jobs may run at once; dismissed with the new limit (None: no
    limit), or False when closed unchanged."""

    app: QueueApp  # textual's property, typed as the app that runs this screen
    HELP_NAME = "limit form (l in Queues)"  # in the help

    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="Close without changing the limit"),
        Binding("ctrl+s", "save", "Save", tooltip="Save the limit"),
    ]

    def __init__(self, queue: str, current: int | None) -> None:
        super().__init__()
        self.queue = queue
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog form limit"):
            yield Static(
                Text(f"Running limit of queue {self.queue}", style="bold"), classes="dialog-title"
            )
            with Horizontal(classes="form-row"):
                yield Label("At most", classes="form-label")
                with Vertical(classes="form-field"):
                    yield Input(
                        value="" if self.current is None else str(self.current),
                        id="f-limit",
                        placeholder="jobs running at once; empty or none: no limit",
                        compact=True,
                    )
                    yield Static(
                        Text("0 holds every job, like a pause of this queue only", style="dim"),
                        classes="form-help",
                    )
                    yield Static("", id="e-limit", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save", compact=True)
                yield Button("Close (esc)", id="close", compact=True)
        yield KeyBar()  # the dialog's keys, over the screen's

    def on_mount(self) -> None:
        box = self.query_one("#f-limit", Input)
        box.cursor_blink = self.app.cursor_blink
        box.focus()

    def _refused(self, message: str, field: str | None = None) -> None:
        box = self.query_one("#e-limit", Static)
        box.update(Text(message))
        box.set_class(bool(message), "-show")

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        try:
            limit = parse_limit(self.query_one("#f-limit", Input).value)
        except InvalidInput as exc:
            self._refused(str(exc))
            return
        self._refused("")
        self.app.act(actions.set_limit(self.queue, limit), self)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(False)


class ConfirmModal(ModalScreen[bool]):
    HELP_NAME = "a question"  # in the help
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", tooltip="Yes: do what it asks"),
        Binding("n,escape", "answer(False)", "No", tooltip="No: change nothing"),
    ]

    def __init__(self, question: str, title: str = "Are you sure?") -> None:
        super().__init__()
        self.question = question
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog confirm"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(Text(self.question), classes="confirm-text")  # ids are text, not markup
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", id="no", compact=True)
        yield KeyBar()  # the dialog's keys, over the screen's

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


__all__ = ["EnqueueModal", "EditModal", "ConfigModal", "LimitModal", "ConfirmModal", "parse_limit"]


def edit_job(app: Any, job: Job, done: Callable[[str], None]) -> None:
    """Open the edit form on a pending or failed job; any other is refused with the reason
    (``edit`` refuses it too, should the job start meanwhile)."""
    if job.state not in (PENDING, FAILED):
        app.notify(
            f"{job.id} is {job.state}: only pending or failed jobs can be edited"
            + (
                " (cancel it, or wait for it to end)"
                if job.state == PROCESSING
                else " (t restarts it)"
            ),
            severity="warning",
        )
        return
    app.push_screen(EditModal(job), lambda edited: done(f"{edited.id} edited") if edited else None)
