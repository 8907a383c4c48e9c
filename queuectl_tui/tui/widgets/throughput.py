"""A one-line chart: attempts completed and failed per minute over the last half hour.

Two sparklines drawn as text in one widget (one bar per minute, the tallest bar being that
chart's busiest minute), each followed by the last minute's count and the half hour's total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as bars scaled to their maximum (all ▁ when all are 0)."""
    values = values[-width:] if width > 0 else []
    top = max(values, default=0)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, round(v / top * (len(BARS) - 1)))] for v in values)


class ThroughputLine(Widget):
    COMPONENT_CLASSES = {
        "throughput--label",
        "throughput--done",
        "throughput--failed",
        "throughput--idle",
    }
    DEFAULT_CSS = """
    ThroughputLine {
        height: 1;
        .throughput--label { color: $foreground; }
        .throughput--done { color: $primary; }
        .throughput--failed { color: $error; }
        .throughput--idle { color: $foreground 25%; }
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.series: list[tuple[int, int]] = []

    def set_series(self, series: list[tuple[int, int]]) -> None:
        if series != self.series:
            self.series = list(series)
            self.refresh()

    def render(self) -> Text:
        done = [d for d, _ in self.series] or [0]
        failed = [f for _, f in self.series] or [0]
        minutes = len(self.series) or 30
        parts = [
            ("done/min ", f"{done[-1]} · {sum(done)}/{minutes}m", done, "throughput--done"),
            (
                "failed/min ",
                f"{failed[-1]} · {sum(failed)}/{minutes}m",
                failed,
                "throughput--failed",
            ),
        ]
        fixed = sum(len(label) + len(summary) + 2 for label, summary, _, _ in parts) + 1
        chart = max(4, min(minutes, (self.size.width - fixed) // 2))
        text = Text(no_wrap=True, overflow="crop", end="")
        label_style = self.get_component_rich_style("throughput--label")
        for index, (label, summary, values, style) in enumerate(parts):
            if index:
                text.append(" ")
            text.append(label, label_style)
            bars = sparkline(values, chart).rjust(chart, BARS[0])
            bars_style = self.get_component_rich_style(style if max(values) else "throughput--idle")
            text.append(bars, bars_style)
            text.append(f" {summary}", label_style)
        return text
