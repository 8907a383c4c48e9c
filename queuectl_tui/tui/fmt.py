"""Console-only presentation: styles and table cells. The text itself comes from
``queuectl_tui.present``, which the CLI uses too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import JustifyMethod
from rich.text import Text

from queuectl_tui.visible import visible

if TYPE_CHECKING:
    from queuectl_tui.store.models import Job

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


def cell(value: object, style: str = "", *, justify: JustifyMethod = "left") -> Text:
    """One table cell: a single line, cut with an ellipsis when it does not fit."""
    if value is None or value == "" or value == "-":
        return Text("-", style="dim", no_wrap=True, end="", justify=justify)
    text = str(value)
    text = visible(text.replace("\r", "").replace("\n", " ⏎ "))  # a Text: no markup either
    return Text(text, style=style, no_wrap=True, overflow="ellipsis", end="", justify=justify)


SEPARATORS = "-_.:/@ "


def middle_cut(text: str, width: int) -> str:
    """``text`` in ``width`` cells, cut in its middle so that its end stays: ids that differ
    only at their end stay apart ("report-…-17", not "report-ch…"). The last part after a
    separator stays whole while it takes at most half the width."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    last = max(text.rfind(sep) for sep in SEPARATORS)
    tail = text[last:] if last > 0 and cell_len(text[last:]) <= (width - 1) // 2 else ""
    keep = width - 1 - cell_len(tail)
    if not tail:  # no part to keep whole: a third of the room for the end
        tail = _cells_from_end(text, keep // 3)
        keep -= cell_len(tail)
    return _cells_from_start(text, keep) + "…" + tail


def _cells_from_start(text: str, cells: int) -> str:
    out, used = [], 0
    for char in text:
        used += cell_len(char)
        if used > cells:
            break
        out.append(char)
    return "".join(out)


def _cells_from_end(text: str, cells: int) -> str:
    return _cells_from_start(text[::-1], cells)[::-1]


def when_style(job: Job, now: float) -> str:
    """The style of ``present.when``'s text: due jobs bold, later ones dim, running ones yellow."""
    if job.state in ("pending", "failed"):
        return "bold" if job.run_at <= now else "dim"
    return "yellow" if job.state == "processing" else ""
