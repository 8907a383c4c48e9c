"""A screen of one live table, read in a thread worker at each refresh (the queues, the
schedules): the reading, the layout on resize and the refresh, once for both."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.screen import Screen
from textual.widgets import Static

from queuectl_tui.tui import data
from queuectl_tui.tui.reads import OneRead
from queuectl_tui.tui.widgets.jobs_table import Column, KeyedTable

if TYPE_CHECKING:
    from queuectl_tui.tui.app import QueueApp  # for the type of self.app (app.py imports us)


class LiveTableScreen(Screen[None]):
    """Subclasses compose a ``KeyedTable`` with id ``NAME`` and a title ``Static`` with id
    ``NAME-title``, and give ``columns`` (for a width), ``fetch`` (run in the worker thread,
    inside ``data.call``) and ``show`` (its result)."""

    app: QueueApp  # textual's property, typed as the app that runs this screen
    NAME = ""
    TITLE = ""

    def __init__(self) -> None:
        super().__init__()
        self.result: Any = None  # the last read that succeeded
        self.reads = OneRead(self._read)

    def columns(self, width: int) -> tuple[Column, ...]:
        raise NotImplementedError

    def fetch(self) -> Any:
        raise NotImplementedError

    def show(self, result: Any) -> None:
        raise NotImplementedError

    @property
    def table(self) -> KeyedTable:
        return self.query_one(f"#{self.NAME}", KeyedTable)

    def on_mount(self) -> None:
        self.table.set_layout(self.columns(self.app.size.width))
        self.load()
        self.set_interval(self.app.refresh_interval, self.load)

    def on_resize(self) -> None:
        if self.table.set_layout(self.columns(self.size.width)) and self.result is not None:
            self.show(self.result)

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.load()  # back from a form

    @property
    def settled(self) -> bool:
        return self.reads.settled

    def load(self) -> None:
        self.reads.request()

    @work(thread=True, group="live-table", exit_on_error=False)
    def _read(self) -> None:
        try:
            result = data.call(self.app.db_path, self.fetch)
        except data.Problem as exc:
            result = exc
        self.app.from_thread(self._read_done, result)

    def _read_done(self, result: Any) -> None:
        if isinstance(result, data.Problem):
            self.query_one(f"#{self.NAME}-title", Static).update(
                Text.assemble((f"{self.TITLE}  ", "bold"), ("database: ", "bold"), str(result))
            )
        else:
            self.result = result
            self.show(result)
        self.reads.done()

    def selected(self) -> str | None:
        return self.table.cursor_key

    def _done(self, message: str) -> None:
        self.app.notify(message)
        self.load()

    # -- actions ------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_refresh(self) -> None:
        self.load()
