"""Tables on stdout: rich's on a terminal; piped, plain tab-separated lines for scripts.

Piped (to ``grep``, ``awk -F'\\t'``, ``cut -f``), a table is a header line and one line per
row, its cells separated by a tab, with no frame, padding or colours, and nothing cut or
folded. A cell's newlines, tabs and other control characters are written ``\\n``, ``\\t``,
``^[``, so that a row stays one line whatever a job's command or error holds. rich is imported
only to draw on a terminal (it costs a third of a cold start).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from queuectl_tui.visible import visible

if TYPE_CHECKING:
    from rich.console import Console

#: Newline, carriage return and tab as their escapes; other controls in caret notation.
_ONE_LINE = {ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"}


def one_line(value: Any) -> str:
    """A piped table's cell: one line without a tab, '-' for no value."""
    text = "" if value is None else getattr(value, "plain", value)  # rich Text: its text
    text = str(text)
    if not text:
        return "-"
    return visible(text.translate(_ONE_LINE)) if not text.isprintable() else text


class Table:
    """Columns given as names, or (name, rich add_column options); rows of str, numbers, None
    or rich Text. ``print`` draws it with rich on a terminal (``options``: rich Table's), or
    writes the tab-separated lines when ``piped``."""

    def __init__(
        self,
        columns: Sequence[str | tuple[str, dict[str, Any]]],
        *,
        piped: bool,
        title: str | None = None,
        header: bool = True,
        **options: Any,
    ):
        self.columns = [(c, {}) if isinstance(c, str) else c for c in columns]
        self.piped, self.title, self.header, self.options = piped, title, header, options
        self.rows: list[Sequence[Any]] = []

    def add_row(self, *cells: Any) -> None:
        self.rows.append(cells)

    def lines(self) -> list[str]:
        head = ["\t".join(one_line(name) for name, _ in self.columns)] if self.header else []
        return head + ["\t".join(one_line(cell) for cell in row) for row in self.rows]

    def print(self, console: Console | None = None) -> None:
        if self.piped:
            sys.stdout.write("".join(line + "\n" for line in self.lines()))
            return
        from rich.table import Table as RichTable
        from rich.text import Text

        options = {"header_style": "bold", **self.options}
        table = RichTable(title=self.title, show_header=self.header, **options)
        for name, column in self.columns:
            table.add_column(name, **column)
        for row in self.rows:  # user text is shown literally: no markup, controls visible
            table.add_row(
                *(
                    cell
                    if isinstance(cell, Text)
                    else Text(visible("-" if cell is None else str(cell)))
                    for cell in row
                )
            )
        if console is None:
            from rich.console import Console

            console = Console(highlight=False, soft_wrap=False)
        console.print(table)
