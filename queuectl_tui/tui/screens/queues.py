"""The queues: jobs per state, paused or not, the running limit; pause, resume and limit them.

Every action is the engine call of a CLI command (``pause``/``resume --queue Q``,
``queue limit Q N|none``); reads run in a thread worker like the main screen's.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from queuectl_tui.store.models import STATES
from queuectl_tui.tui import actions, data
from queuectl_tui.tui.fmt import STATE_STYLE, cell
from queuectl_tui.tui.messages import ActionDone
from queuectl_tui.tui.screens.live_table import LiveTableScreen
from queuectl_tui.tui.widgets.jobs_table import Column, KeyedTable
from queuectl_tui.tui.widgets.keybar import KeyBar

#: (state, column label) for the counts, in the order of ``status``, ``queue list`` and the tabs.
COUNTED = [(state, state.capitalize()) for state in STATES]


def queue_columns(width: int) -> tuple[Column, ...]:
    fixed = [Column(state, label, max(7, len(label))) for state, label in COUNTED]
    fixed += [Column("paused", "Paused", 8), Column("limit", "Limit", 7)]
    name = max(10, width - sum(c.width + 2 for c in fixed) - 4)
    return (Column("name", "Queue", min(name, 40)), *fixed)


class QueuesTable(KeyedTable):
    pass


class QueuesScreen(LiveTableScreen):
    AUTO_FOCUS = "#queues"
    BINDINGS = [
        Binding("escape,Q", "back", "Back", key_display="esc", tooltip="Back to the jobs"),
        Binding(
            "p",
            "pause",
            "Pause/resume",
            tooltip="Pause the selected queue (workers claim none of its jobs), or resume it",
        ),
        Binding(
            "P",
            "pause_all",
            "Pause/resume all",
            tooltip="Pause every queue, or resume them all when all are paused",
        ),
        Binding(
            "l", "limit", "Limit", tooltip="Set or clear how many of the queue's jobs run at once"
        ),
        Binding("f5,ctrl+r", "refresh", "Refresh", show=False, tooltip="Refresh now"),
    ]

    NAME, TITLE = "queues", "Queues"

    @property
    def queues(self) -> data.Queues | None:
        return self.result

    def compose(self) -> ComposeResult:
        yield Static(Text("Queues", style="bold"), id="queues-title")
        yield QueuesTable(id="queues")
        yield Static(
            Text(
                "Workers claim nothing from a paused queue; its running jobs finish. "
                "A limit caps the queue's running jobs across all workers.",
                style="dim",
            ),
            id="queues-hint",
        )
        yield KeyBar()

    def columns(self, width: int) -> tuple[Column, ...]:
        return queue_columns(width)

    def fetch(self) -> data.Queues:
        return data.read_queues()

    def show(self, queues: data.Queues) -> None:
        title = Text.assemble(("Queues", "bold"), f"  {len(queues.rows)} queue(s)")
        if queues.paused_all:
            title.append("  ·  every queue paused (P resumes them)", "bold yellow")
        self.query_one("#queues-title", Static).update(title)
        rows = []
        for row in queues.rows:
            paused = row["paused"]
            cells = {
                "name": cell(row["name"], "bold"),
                "paused": cell("paused" if paused else "-", "bold yellow" if paused else "dim"),
                "limit": cell("none" if row["limit"] is None else row["limit"], justify="right"),
            }
            for state, _ in COUNTED:
                n = row["jobs"].get(state, 0)
                cells[state] = cell(f"{n:,}", STATE_STYLE[state] if n else "dim", justify="right")
            rows.append((row["name"], tuple(cells[c.key] for c in self.table.layout)))
        self.table.show(rows)

    # -- actions (back and refresh: LiveTableScreen's) ------------------------------------
    def action_pause(self) -> None:
        queue = self.selected()
        if queue is None:
            return
        self.app.act(actions.toggle_pause(queue), self)

    def action_pause_all(self) -> None:
        self.app.act(actions.toggle_pause(None), self)

    @on(ActionDone)
    def _acted(self, event: ActionDone) -> None:
        event.stop()
        actions.finish(self, event.action, event.result)

    def done(self, message: str, *, clear_marks: bool = False) -> None:
        """An action is done: say what it did and read the queues again."""
        self._done(message)

    def action_limit(self) -> None:
        from queuectl_tui.tui.screens.modals import LimitModal

        queue = self.selected()
        if queue is None or self.queues is None:
            return
        current = next((r["limit"] for r in self.queues.rows if r["name"] == queue), None)

        def done(limit: int | None | bool) -> None:
            if limit is not False:
                said = "no limit" if limit is None else f"at most {limit} running"
                self._done(f"queue {queue}: {said}")

        self.app.push_screen(LimitModal(queue, current), done)


__all__ = ["QueuesScreen", "queue_columns"]
