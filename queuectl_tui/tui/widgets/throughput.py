"""A one-line chart: attempts completed and failed per minute over the last half hour."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline


class ThroughputLine(Horizontal):
    DEFAULT_CSS = """
    ThroughputLine { height: 1; }
    ThroughputLine Label { width: auto; padding: 0 1 0 0; }
    ThroughputLine Sparkline { width: 1fr; max-width: 60; height: 1; margin: 0 1 0 0; }
    ThroughputLine #tp-failed-chart > .sparkline--max-color { color: $error; }
    ThroughputLine #tp-failed-chart > .sparkline--min-color { color: $error 30%; }
    """

    def compose(self) -> ComposeResult:
        yield Label("done/min", classes="tp-title")
        yield Sparkline([0] * 30, id="tp-done-chart")
        yield Label("", id="tp-done")
        yield Label("failed/min", classes="tp-title")
        yield Sparkline([0] * 30, id="tp-failed-chart")
        yield Label("", id="tp-failed")

    def set_series(self, series: list[tuple[int, int]]) -> None:
        done = [d for d, _ in series] or [0]
        failed = [f for _, f in series] or [0]
        self.query_one("#tp-done-chart", Sparkline).data = done
        self.query_one("#tp-failed-chart", Sparkline).data = failed
        minutes = len(series)
        self.query_one("#tp-done", Label).update(f"{done[-1]} · {sum(done)}/{minutes}m")
        self.query_one("#tp-failed", Label).update(f"{failed[-1]} · {sum(failed)}/{minutes}m")
