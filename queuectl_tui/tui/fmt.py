"""Turning times, sizes and states into short cells (display only: no queue decisions here)."""

from __future__ import annotations

import time

from rich.text import Text

from queuectl_tui.spec import ago
from queuectl_tui.visible import visible

STATE_STYLE = {
    "pending": "cyan",
    "processing": "bold yellow",
    "completed": "green",
    "failed": "dark_orange",
    "dead": "bold red",
    "idle": "cyan",
    "busy": "bold yellow",
    "stopping": "magenta",
    "lost": "bold red",
}


def cell(value: object, style: str = "", *, justify: str = "left") -> Text:
    """One table cell: a single line, cut with an ellipsis when it does not fit."""
    if value is None or value == "" or value == "-":
        return Text("-", style="dim", no_wrap=True, end="", justify=justify)
    text = str(value)
    text = visible(text.replace("\r", "").replace("\n", " ⏎ "))  # a Text: no markup either
    return Text(text, style=style, no_wrap=True, overflow="ellipsis", end="", justify=justify)


def span(seconds: float | None) -> str:
    return "-" if seconds is None else ago(seconds)


def precise(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 60 else ago(seconds)


def clock(ts: float | None, now: float) -> str:
    """Local wall-clock time, with the date when it is not within the last day."""
    if ts is None:
        return "-"
    fmt = "%H:%M:%S" if abs(now - ts) < 86400 else "%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(ts))


def short_stamp(ts: float | None) -> str:
    """Month, day and local time to the second (the exact ISO time is in the fields)."""
    return "-" if ts is None else time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def size(num: int | None) -> str:
    if num is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if num < 1024 or unit == "G":
            return f"{num:.0f}{unit}" if unit == "B" or num >= 100 else f"{num:.1f}{unit}"
        num /= 1024
    return f"{num:.1f}T"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%" if value >= 10 else f"{value:.1f}%"


def when(job, now: float) -> tuple[str, str]:
    """Next run (waiting jobs) or finish time (finished ones), with a style."""
    if job.state in ("pending", "failed"):
        if job.run_at <= now:
            return "due", "bold"
        return f"in {ago(job.run_at - now)}", "dim"
    if job.state == "processing":
        return "running", "yellow"
    return clock(job.finished_at or job.updated_at, now), ""


def duration(job, now: float) -> str:
    if job.started_at is None:
        return "-"
    if job.state == "processing":
        return ago(now - job.started_at)
    if job.finished_at is None or job.state == "pending":
        return "-"
    return precise(max(0.0, job.finished_at - job.started_at))


def cpu_time(seconds: float | None) -> str:
    """CPU seconds an attempt used (user + system, its whole tree)."""
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s" if seconds < 100 else ago(seconds)


_BARS = "▁▂▃▄▅▆▇█"


def spark(values: list[float], width: int, top: float | None = None) -> str:
    """The last ``width`` values as a one-line bar chart scaled to ``top`` (default: their max)."""
    values = values[-width:] if width > 0 else []
    if not values:
        return ""
    top = max(top or 0.0, max(values), 1e-9)
    return "".join(_BARS[min(len(_BARS) - 1, max(0, round(v / top * (len(_BARS) - 1))))]
                   for v in values)
