"""The header line: jobs per state and workers alive/busy."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from queuectl_tui.store.models import STATES
from queuectl_tui.tui.fmt import STATE_STYLE

LONG = {state: state for state in STATES}
#: Only when the full names cannot fit (the help's legend spells them out): their first letters.
SHORT = {
    "pending": "pend",
    "processing": "proc",
    "completed": "comp",
    "failed": "fail",
    "dead": "dead",
}
LEGEND = ", ".join(f"{SHORT[s]} {s}" for s in STATES if SHORT[s] != s)


class CountsHeader(Static):
    DEFAULT_CSS = "CountsHeader { height: 1; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("queuectl  loading…", **kwargs)
        self._data: tuple[dict[str, int], int, int] | None = None

    def set_counts(self, counts: dict[str, int], alive: int, busy: int) -> None:
        if (counts, alive, busy) != self._data:
            self._data = (dict(counts), alive, busy)
            self.update(self._text(self.size.width or 80), layout=False)  # one line, always

    def set_unknown(self) -> None:
        self._data = None
        self.update(Text.assemble(("queuectl ", "bold"), ("│ ", "dim"), ("no data", "dim")))

    def on_resize(self) -> None:
        if self._data is not None:
            self.update(self._text(self.size.width))

    def _text(self, width: int) -> Text:
        assert self._data is not None  # drawn only once counts have come
        counts, alive, busy = self._data
        for title, labels, workers in (
            ("queuectl ", LONG, f"workers {alive} alive · {busy} busy"),
            ("", LONG, f"workers {alive} alive · {busy} busy"),
            ("", LONG, f"workers {alive} · {busy} busy"),
            ("", SHORT, f"workers {alive} · {busy} busy"),
        ):
            text = Text(no_wrap=True, overflow="ellipsis", end="")
            if title:
                text.append(title, "bold")
                text.append("│ ", "dim")
            for state in STATES:
                text.append(f"{labels[state]} ", "dim")
                text.append(f"{counts.get(state, 0):,}", STATE_STYLE[state])
                text.append("  ")
            text.append("│ ", "dim")
            text.append(workers, "bold" if alive else "dim")
            if text.cell_len <= width:
                return text
        return text
