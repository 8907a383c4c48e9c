"""Dialogs: the enqueue form, the settings editor, and yes/no confirmation.

Validation is the engine's (``spec.normalize``, ``settings.validate``): the form only turns its
text boxes into the same raw values a JSON spec or ``config set`` would carry, and shows each
error under the field it names.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from queuectl_tui import engine, settings, spec
from queuectl_tui.errors import InvalidInput
from queuectl_tui.tui import data

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


class EnqueueModal(ModalScreen[list[str] | None]):
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close", tooltip="Close without enqueuing"),
        Binding("ctrl+s", "submit", "Enqueue", tooltip="Enqueue the job"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog form"):
            yield Static("Enqueue a job", classes="dialog-title")
            with VerticalScroll(classes="form-body"):
                for name, label, placeholder in ENQUEUE_FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="form-label")
                        with Vertical(classes="form-field"):
                            yield Input(placeholder=placeholder, id=f"f-{name}", compact=True)
                            yield Static("", id=f"e-{name}", classes="form-error")
            yield Static("", id="e-form", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Enqueue (ctrl+s)", variant="primary", id="ok", compact=True)
                yield Button("Close (esc)", id="close", compact=True)

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = self.app.cursor_blink
        self.query_one("#f-command", Input).focus()

    def raw(self) -> dict[str, Any]:
        values = {}
        for name, _, _ in ENQUEUE_FIELDS:
            text = self.query_one(f"#f-{name}", Input).value
            text = text if name == "command" else text.strip()
            if text:
                values[name] = _number(text) if name in NUMERIC else text
        return values

    def validate(self) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The normalized spec, or the errors by field (each checked on its own first)."""
        raw = self.raw()
        now = self.app.clock()
        errors: dict[str, str] = {}
        if "command" not in raw:
            errors["command"] = "a command is required"
        for name, value in raw.items():
            probe = {"command": "true", name: value} if name != "command" else {"command": value}
            try:
                spec.normalize(probe, now=now)
            except InvalidInput as exc:
                errors[name] = str(exc)
        if errors:
            return None, errors
        try:
            return spec.normalize(raw, now=now), {}
        except InvalidInput as exc:
            key = "delay" if "delay" in str(exc) else "form"
            return None, {key: str(exc)}

    def show_errors(self, errors: dict[str, str]) -> None:
        for name in [n for n, _, _ in ENQUEUE_FIELDS] + ["form"]:
            box = self.query_one(f"#e-{name}", Static)
            box.update(errors.get(name, ""))
            box.set_class(name in errors, "-show")
        first = next((n for n, _, _ in ENQUEUE_FIELDS if n in errors), None)
        if first:
            self.query_one(f"#f-{first}", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def action_submit(self) -> None:
        checked, errors = self.validate()
        self.show_errors(errors)
        if checked is None:
            return
        self.app.perform("enqueue", engine.enqueue, [checked], now=self.app.clock(), then=self._enqueued,
                         on_error=self._refused)

    def _enqueued(self, jobs) -> None:
        self.dismiss([job.id for job in jobs])

    @on(Button.Pressed, "#close")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def _refused(self, message: str) -> None:
        self.show_errors({"id" if "job id" in message else "form": message})


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


class ConfigModal(ModalScreen[list[str] | None]):
    """Every setting with its default; a bad value is refused under its field."""

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
                            yield Input(id=f"c-{name}", compact=True, placeholder=f"default {_shown(item.default)}")
                            yield Static(Text(f"default {_shown(item.default)} · {item.help}", style="dim"),
                                         classes="form-help")
                            yield Static("", id=f"ce-{name}", classes="form-error")
            yield Static("", id="ce-form", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save", compact=True)
                yield Button("Close (esc)", id="close", compact=True)

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = self.app.cursor_blink
            box.disabled = True
        self.app.perform("read the settings", data.read_settings, then=self._loaded)

    def _loaded(self, rows: list[dict[str, Any]]) -> None:
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
        self.app.perform("save the settings", data.save_settings, changes, resets,
                         then=lambda _: self.dismiss(sorted([*changes, *resets])),
                         on_error=self._refused)

    def _refused(self, message: str) -> None:
        box = self.query_one("#ce-form", Static)
        box.update(message)
        box.add_class("-show")

    @on(Button.Pressed, "#close")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ConfirmModal(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
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

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


__all__ = ["EnqueueModal", "ConfigModal", "ConfirmModal"]
