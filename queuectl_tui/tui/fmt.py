"""Console-only presentation: styles and table cells. The text itself comes from
``queuectl_tui.present``, which the CLI uses too."""

from __future__ import annotations

from rich.text import Text

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


def when_style(job, now: float) -> str:
    """The style of ``present.when``'s text: due jobs bold, later ones dim, running ones yellow."""
    if job.state in ("pending", "failed"):
        return "bold" if job.run_at <= now else "dim"
    return "yellow" if job.state == "processing" else ""
