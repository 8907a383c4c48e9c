"""Execution stats: the figures of ``queuectl-tui stats`` for a window, per queue and overall,
with a chart of wait and run time across the window. Read in a thread (data.read_stats)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from queuectl_tui.present import ago, seconds
from queuectl_tui.tui import data
from queuectl_tui.tui.reads import OneRead
from queuectl_tui.tui.widgets.keybar import KeyBar
from queuectl_tui.tui.widgets.throughput import sparkline
from queuectl_tui.visible import visible

if TYPE_CHECKING:
    from queuectl_tui.tui.app import QueueApp  # for the type of self.app (app.py imports us)

#: The windows ``w`` cycles through (seconds); the first is where the screen opens.
WINDOWS = (3600.0, 6 * 3600.0, 86400.0, 900.0)
CHART_SLICES = 30


class StatsScreen(Screen[None]):
    app: QueueApp  # textual's property, typed as the app that runs this screen
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the jobs"),
        Binding("w", "window", "Window", tooltip="Change the window: 1 h, 6 h, 24 h, 15 min"),
        Binding("f5,ctrl+r", "refresh", "Refresh", tooltip="Read the figures again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.window = WINDOWS[0]
        self.reads = OneRead(lambda: self._read(self.window, self.app.clock()))

    def compose(self) -> ComposeResult:
        yield Static("", id="stats-title")
        with VerticalScroll(id="stats-body"):
            yield Static("loading…", id="stats")
        yield KeyBar()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(max(5.0, self.app.refresh_interval), self._tick)

    @property
    def settled(self) -> bool:
        return self.reads.settled

    def _tick(self) -> None:
        if self.is_current:
            self.action_refresh()

    def action_refresh(self) -> None:
        self.reads.request()

    def action_window(self) -> None:
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        self.action_refresh()

    def action_back(self) -> None:
        self.app.pop_screen()

    @work(thread=True, group="stats", exit_on_error=False)
    def _read(self, window: float, now: float) -> None:
        try:
            result = data.call(self.app.db_path, data.read_stats, window, now, CHART_SLICES)
        except (data.Problem, data.QueueError) as exc:
            result = exc
        self.app.from_thread(self._show, result)

    def _show(self, result: tuple[dict[str, Any], list[dict[str, Any]]] | Exception) -> None:
        self.reads.done()
        title = Text.assemble(
            ("Execution stats", "bold"),
            f"  last {ago(self.window)}",
            ("  (w: another window)", "dim"),
        )
        self.query_one("#stats-title", Static).update(title)
        if isinstance(result, Exception):
            self.query_one("#stats", Static).update(Text(str(result), style="bold red"))
            return
        stats, series = result
        self.query_one("#stats", Static).update(render(stats, series))


def render(stats: dict[str, Any], series: list[dict[str, Any]]) -> Group:
    """Counts and rates, wait and run percentiles (one row per queue, overall first), the chart,
    the oldest due job and the most frequent errors."""
    rows = [("all queues", stats["overall"])] + list(stats["queues"].items())

    def table(*columns: str) -> Table:
        result = Table(
            header_style="bold", box=None, pad_edge=False, padding=(0, 2, 0, 0), expand=False
        )
        for index, name in enumerate(columns):
            result.add_column(
                name,
                justify="left" if index == 0 else "right",
                no_wrap=True,
                overflow="ellipsis",
                max_width=24 if index == 0 else None,
            )
        return result

    counts = table("queue", "completed", "failed", "dead", "per min", "success", "retries/job")
    for name, f in rows:
        counts.add_row(
            Text(visible(name)),
            str(f["completed"]),
            str(f["failed_attempts"]),
            str(f["dead"]),
            f"{f['throughput_per_min']:.2f}",
            "-" if f["success_rate"] is None else f"{f['success_rate']:.1%}",
            "-" if f["retries_per_job"] is None else f"{f['retries_per_job']:.2f}",
        )
    times = table("queue", "wait p50", "p95", "p99", "max", "run p50", "p95", "p99", "max")
    for name, f in rows:
        percentiles = ("p50", "p95", "p99", "max")
        times.add_row(
            Text(visible(name)),
            *(seconds(f["wait"][p]) for p in percentiles),
            *(seconds(f["run"][p]) for p in percentiles),
        )
    parts: list[RenderableType] = [counts, Text(""), times, Text("")]
    for key, label, style in (
        ("wait", "wait (mean per slice)", "cyan"),
        ("run", "run  (mean per slice)", "green"),
    ):
        values = [s[f"{key}_mean"] or 0.0 for s in series]
        top = max((s[f"{key}_max"] or 0.0 for s in series), default=0.0)
        parts.append(
            Text.assemble(
                (f"{label}  ", "bold"),
                (sparkline(values, len(values)), style),
                f"  max {seconds(top) if top else '-'}",
            )
        )
    if series:
        each = ago(stats["window_seconds"] / len(series))
        parts.append(Text(f"{'':23}oldest → now, {len(series)} slices of {each}", style="dim"))
    due = stats["overall"]["oldest_due"]
    oldest = (
        visible(f"{due['id']} in queue {due['queue']}, due for {ago(due['waited'])}")
        if due
        else "none"
    )
    parts += [Text(""), Text.assemble(("oldest due  ", "bold"), oldest)]
    errors = stats["overall"]["top_errors"]
    parts.append(
        Text("most frequent errors (jobs that failed or died in the window)", style="bold")
    )
    if not errors:
        parts.append(Text("  none", style="dim"))
    for item in errors:
        count = (f"  {item['count']:>6}  ", "bold")
        parts.append(Text.assemble(count, (visible(item["error"]), "red")))
    if stats["sampled_every"] > 1:
        parts.append(Text(f"percentiles from 1 attempt in {stats['sampled_every']}", style="dim"))
    return Group(*parts)
