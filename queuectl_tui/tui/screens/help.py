"""Every key of the console, read from the bindings themselves (so it cannot fall behind)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Static

from queuectl_tui.tui import app_keys
from queuectl_tui.tui.screens.modals import (
    ConfigModal,
    ConfirmModal,
    EditModal,
    EnqueueModal,
    LimitModal,
)
from queuectl_tui.tui.widgets.keybar import KeyBar

NAVIGATION = [
    ("↑ ↓  j k", "move in a table"),
    ("PgUp PgDn", "a screenful up or down in a table or the log"),
    (
        "Home End  g G",
        "the first or last row of a table (in the jobs table: of the page, then "
        "of the list); Home End: the start or end of the log",
    ),
    ("tab  shift+tab", "move between the jobs table, the workers pane and the filter"),
    ("ctrl+p", "command palette: every action by name"),
]

COLUMNS = (
    "columns",
    "Attempt (Att when narrow): the number of the job's latest run, counting every run; "
    "Retries: retries used of its budget (R and t give a fresh budget; the attempt numbers go "
    "on)",
)


def header_row() -> tuple[str, str]:
    from queuectl_tui.tui.widgets.counts import LEGEND

    return ("header", f"jobs per state and workers; when it is too narrow for the names: {LEGEND}")


def key_label(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    names = {
        "question_mark": "?",
        "slash": "/",
        "plus": "+",
        "minus": "-",
        "space": "space",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "escape": "esc",
    }
    return " ".join(names.get(k, k) for k in binding.key.split(","))


def bindings(cls: type[DOMNode] | ModuleType) -> Iterator[Binding]:
    """A class's (or a module's) BINDINGS, each written as a Binding (as the console writes
    them all)."""
    for binding in cls.BINDINGS:
        if not isinstance(binding, Binding):
            raise TypeError(f"{cls.__name__}: write {binding!r} as a Binding")
        yield binding


Rows = list[tuple[str, str]]  # (keys, what they do)


def sections() -> list[tuple[str, Rows]]:
    """(title, [(keys, what)]) for every screen, from the screens' and the app's bindings."""
    from queuectl_tui.tui.screens.detail import JobDetailScreen
    from queuectl_tui.tui.screens.main import MainScreen
    from queuectl_tui.tui.screens.queues import QueuesScreen
    from queuectl_tui.tui.screens.schedules import ScheduleModal, SchedulesScreen
    from queuectl_tui.tui.screens.stats import StatsScreen
    from queuectl_tui.tui.widgets.jobs_table import JobsTable

    def rows(*classes: type[DOMNode] | ModuleType) -> Rows:
        result: Rows = []
        tabs: list[Binding] = []
        for cls in classes:
            for b in bindings(cls):
                if b.action.startswith("tab("):
                    tabs.append(b)
                    continue
                result.append((key_label(b), b.tooltip or b.description))
        if tabs:
            result.append(
                (f"{tabs[0].key}–{tabs[-1].key}", "tabs: " + ", ".join(b.description for b in tabs))
            )
        return result

    return [
        ("Everywhere", rows(app_keys) + NAVIGATION + [header_row()]),
        ("Jobs (main screen)", rows(JobsTable, MainScreen) + [COLUMNS]),
        ("Job detail", rows(JobDetailScreen)),
        ("Queues (Q)", rows(QueuesScreen)),
        ("Schedules (C)", rows(SchedulesScreen)),
        ("Execution stats", rows(StatsScreen)),
        (
            "Forms and questions",
            dialog_rows(
                EnqueueModal, EditModal, ConfigModal, LimitModal, ScheduleModal, ConfirmModal
            ),
        ),
    ]


def dialog_rows(*classes: Any) -> Rows:
    """One row per key, naming what it does in each dialog (esc and ctrl+s do something in every
    form: closing without saving, saving)."""
    uses: dict[str, list[str]] = {}
    for cls in classes:
        for b in bindings(cls):
            what = f"{cls.HELP_NAME}: {b.tooltip or b.description}"
            uses.setdefault(key_label(b), []).append(what)
    return [(keys, "; ".join(what)) for keys, what in uses.items()]


TITLE = "Keys  (esc closes)"
SCROLLS = "Keys  (↑ ↓ PgUp PgDn scroll: there is more than fits; esc closes)"


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", key_display="esc")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Static(TITLE, id="help-title", classes="dialog-title")
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold cyan", no_wrap=True, min_width=12)
            table.add_column(ratio=1)
            for title, rows in sections():
                table.add_row(Text(title, style="bold underline"), "")
                seen = set()
                for keys, what in rows:
                    if (keys, what) not in seen:
                        seen.add((keys, what))
                        table.add_row(keys, what)
                table.add_row("", "")
            yield Static(table)
            yield Static(
                Text("Every action has a CLI command: see the README's parity table.", style="dim")
            )
        yield KeyBar()  # its own keys, over the screen's

    def on_mount(self) -> None:
        self.call_after_refresh(self._say_if_it_scrolls)

    def on_resize(self) -> None:
        self.call_after_refresh(self._say_if_it_scrolls)

    def _say_if_it_scrolls(self) -> None:
        """The title says the help scrolls whenever it does not fit the screen."""
        box = self.query_one("#help", VerticalScroll)
        self.query_one("#help-title", Static).update(SCROLLS if box.max_scroll_y > 0 else TITLE)

    def action_close(self) -> None:
        self.dismiss(None)
