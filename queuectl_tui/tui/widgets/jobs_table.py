"""A DataTable that holds one page of rows and updates them in place by row key."""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from queuectl_tui.present import clock, cpu_time, retries, run_time, size, when
from queuectl_tui.store.models import DEAD, FAILED, PENDING, PROCESSING, Job
from queuectl_tui.tui.data import COSTED
from queuectl_tui.tui.fmt import STATE_STYLE, cell, middle_cut, when_style


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


MARK = "●"
#: States whose When cell is present.when ("due", "in 5m", "running 12s"); a finished job's is
#: the clock time it ended, which stays the same from one refresh to the next (present.when's
#: "5m ago" would rewrite every finished row each second: a third of a refresh's time).
WAITING_OR_RUNNING = (PENDING, FAILED, PROCESSING)
SCROLLBAR = 0  # the jobs table has no vertical scrollbar (see app.tcss)


#: The widest the When column grows to fit what its jobs wait for ("after report-chunk-17").
WHEN_MAX = 24


#: The id, command and last error share what the other columns leave: the id whole up to
#: ID_MOST cells, then the error gives way first, then the command, then the id (cut in its
#: middle, so that ids differing only at their end stay apart).
ID_LEAST, ID_MOST, COMMAND_LEAST, ERROR_LEAST = 10, 32, 12, 5


def job_columns(
    width: int, dlq: bool, costs: bool = False, needs: dict[str, int] | None = None
) -> tuple[Column, ...]:
    """Columns that fill the table's width exactly, each sized by its content: ``needs`` (key
    -> cells of its widest cell on the page; without it, each column's most) within the
    column's bounds, never narrower than its label. Below 100 columns the priority and
    duration columns go (the detail screen has them). ``costs``: what the last attempt used
    (CPU time, peak memory), for finished jobs."""
    needs = needs or {}
    wide = width >= 100

    def sized(key: str, label: str, usual: int, most: int) -> Column:
        """As wide as its widest cell (``usual`` when not told) up to ``most``."""
        return Column(key, label, max(len(label), min(most, needs.get(key, usual))))

    # The attempt number counts every run; the retry budget is apart (``present.retries``).
    tries = [
        sized("attempt", "Attempt" if wide else "Att", 7 if wide else 3, 7 if wide else 4),
        sized("retries", "Retries", 7, 7),
    ]
    when = 13 if wide else 11  # "running 1m24s", "in 1d00h", a clock time, what a job waits for
    if dlq:
        # Narrow: no room for the budget beside the costs (a dead job has mostly used it up).
        fixed = [*(tries if wide else tries[:1]), sized("when", "Died", when, when)]
    else:
        fixed = [sized("state", "State", 10, 10)]  # "processing"
        if wide:
            fixed.append(sized("priority", "Pri", 3, 4))
        fixed += [*tries, sized("when", "When", when, WHEN_MAX if wide else 11)]
        if wide:
            fixed.append(sized("duration", "Duration", 8, 9))
    if costs:
        fixed += [sized("cpu", "CPU", 6, 6), sized("peak", "Peak", 6, 6)]
    count = len(fixed) + 4  # mark, id, command, error
    flex = max(0, width - SCROLLBAR - 2 * count - 1 - sum(c.width for c in fixed))  # 1: mark
    id_w = max(ID_LEAST, min(needs.get("id", 28), ID_MOST, flex - COMMAND_LEAST - ERROR_LEAST))
    rest = max(COMMAND_LEAST + ERROR_LEAST, flex - id_w)
    # The error: what it needs up to 2/5 of the rest; the command the rest, up to what it
    # needs; what neither needs fills the error column (the table fills its width).
    error = max(ERROR_LEAST, min(needs.get("error", rest), rest * 2 // 5))
    command = max(COMMAND_LEAST, min(rest - error, needs.get("command", rest)))
    error = rest - command
    return (
        Column("mark", "", 1),
        Column("id", "ID", id_w),
        Column("command", "Command", max(len("Command"), command)),
        *fixed,
        Column("error", "Last error" if error >= len("Last error") else "Error", error),
    )


class KeyedTable(DataTable):
    """Rows are (key, cells). ``show`` rewrites only the cells that changed when the same keys
    come back in the same order (a live refresh), and rebuilds the rows otherwise, keeping the
    cursor on the same key when it is still there."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("home,g", "first_row", "First row", show=False),
        Binding("end,G", "last_row", "Last row", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._layout: tuple[Column, ...] = ()
        self._order: list[str] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._cursor_was: tuple[str | None, int] | None = None  # where it was before set_layout

    # The table's columns. It shadows Widget.layout, which Textual reads only of a container
    # (a widget with children or a layout style): a table is neither.
    @property
    def layout(self) -> tuple[Column, ...]:  # type: ignore[override]
        return self._layout

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    def set_layout(self, columns: tuple[Column, ...]) -> bool:
        """Use these columns; True when they changed (the rows were dropped)."""
        if columns == self._layout:
            return False
        self._cursor_was = (self.cursor_key, self.cursor_row)  # for the rows shown next
        self.clear(columns=True)
        for column in columns:
            self.add_column(Text(column.label, end=""), key=column.key, width=column.width)
        self._layout = columns
        self._order, self._cells = [], {}
        return True

    @property
    def cursor_key(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def show(
        self, rows: list[tuple[str, tuple[Text, ...]]], *, cursor_key: str | None = None
    ) -> None:
        """Show these rows, the cursor on ``cursor_key`` (else on the key it was on, else on
        the same place). Rows mostly kept (a live refresh: a job arrived on top, one left) are
        changed in place, only their changed cells rewritten; mostly new ones (another page,
        tab or order) are rebuilt. Measuring a new row's cells costs more than drawing them."""
        keys = [key for key, _ in rows]
        was_key, row_before = self._cursor_was or (self.cursor_key, self.cursor_row)
        self._cursor_was = None
        keep = cursor_key or was_key
        kept = set(keys) & set(self._order)
        if not self._change_in_place(rows, kept):
            self.clear()
            for key, cells in rows:
                self.add_row(*cells, key=key)
            self._cells = dict(rows)
        self._order = keys
        if keys:
            target = (
                keys.index(keep) if keep in self._cells else min(max(row_before, 0), len(keys) - 1)
            )
            if target != self.cursor_row:
                self.move_cursor(row=target, animate=False)

    def _change_in_place(self, rows: list[tuple[str, tuple[Text, ...]]], kept: set[str]) -> bool:
        keys = [key for key, _ in rows]
        if len(kept) * 2 < len(keys) or len(set(keys)) != len(keys):
            return False
        for key in self._order:
            if key not in kept:
                self.remove_row(key)
                del self._cells[key]
        columns = [c.key for c in self._layout]
        for key, cells in rows:
            if key not in kept:
                self.add_row(*cells, key=key)
                self._cells[key] = cells
                continue
            held = []
            for column, new, before in zip(columns, cells, self._cells[key], strict=True):
                if new != before:
                    self._put_cell(key, column, new)
                held.append(new if new != before else before)  # the object the table holds
            self._cells[key] = tuple(held)
        if [key for key in self._order if key in kept] + [k for k in keys if k not in kept] != keys:
            # Into the new order by the public sort, which sees cells only: each row's first
            # cell is its own object, so its identity names the row.
            rank = {id(self._cells[key][0]): n for n, key in enumerate(keys)}
            self.sort(key=lambda values: rank[id(values[0])])
        return True

    def _put_cell(self, key: str, column: str, value: Text) -> None:
        """``update_cell`` repaints the whole table (it calls ``refresh()``): one heartbeat's
        cell redrew every row of it, each second. This repaints the cell's own region only
        (what a changed cell needs: same width, same height)."""
        if not self.fast_cells:
            self.update_cell(key, column, value)
            return
        row_key, column_key = RowKey(key), ColumnKey(column)
        where = self.get_cell_coordinate(row_key, column_key)  # as update_cell, for a cell it has
        self._data[row_key][column_key] = value
        self._update_count += 1  # DataTable's line cache is keyed by it
        self.refresh_coordinate(where)

    #: DataTable's private names the fast paths below and above read. Should a Textual release
    #: drop one, every cell takes the stock path (tests/tui/test_tui_render_cell.py checks both
    #: agree).
    PRIVATE = (
        "_row_locations",
        "_column_locations",
        "_show_hover_cursor",
        "_get_styles_to_render_cell",
        "_data",
        "_update_count",
        "_get_offsets",
        "_pseudo_class_state",
    )

    @property
    def fast_cells(self) -> bool:
        """Does this Textual still have every private name the fast path reads?"""
        fast = self.__dict__.get("_fast_cells")
        if fast is None:
            fast = self.__dict__["_fast_cells"] = all(hasattr(self, name) for name in self.PRIVATE)
        return fast

    def render_lines(self, crop):
        """The table's lines, its style worked out once for all of them: DataTable asks
        for ``rich_style`` at every line, which walks the widget's ancestors each time."""
        self.__dict__["_style_now"] = super().rich_style
        try:
            return super().render_lines(crop)
        finally:
            self.__dict__.pop("_style_now", None)

    @property
    def rich_style(self) -> Style:
        style = self.__dict__.get("_style_now")
        return style if style is not None else super().rich_style

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """A line of the table, kept by what it shows rather than by DataTable's change
        counter: a job that arrives on top moves every row down one line, which misses
        DataTable's caches (keyed by that counter) for all of them, and drew every line anew
        (0.8 ms a line). A row that only moved is drawn as before, its click targets (the row
        number in each segment's meta) moved with it. Lines the cache cannot key (another
        cursor type, fixed rows or columns, a cell that is not Text, the header) take the
        stock path."""
        if (
            not self.fast_cells
            or self.cursor_type != "row"
            or self.fixed_rows
            or self.fixed_columns
        ):
            return super()._render_line(y, x1, x2, base_style)
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:  # below the last row
            return super()._render_line(y, x1, x2, base_style)
        try:
            if row_key is self._header_row_key:
                return self._header_line(y, x1, x2, base_style)
            row_index = self._row_locations.get(row_key)
            values = self._data.get(row_key)
            if row_index is None or values is None:
                return super()._render_line(y, x1, x2, base_style)
            shown = []
            for value in values.values():
                if not isinstance(value, Text):
                    return super()._render_line(y, x1, x2, base_style)
                shown.append(
                    (value.plain, value.style, value.justify, value.overflow, tuple(value.spans))
                )
            key = (
                tuple(shown),
                line_no,
                self.rows[row_key].height,
                self._widths(),
                self.cursor_coordinate.row == row_index,
                self.hover_coordinate.row == row_index,
                self.show_cursor,
                self._show_hover_cursor,
                row_index % 2 if self.zebra_stripes else 0,
                x1,
                x2,
                self.size.width,
                base_style,
                self._pseudo_class_state,
            )
        except (AttributeError, KeyError, TypeError):  # DataTable's internals changed under us
            self.__dict__["_fast_cells"] = False
            return super()._render_line(y, x1, x2, base_style)
        lines = self.__dict__.setdefault("_lines", {})
        kept = lines.get(key)
        if kept is not None:
            strip, drawn_at = kept
            return strip if drawn_at == row_index else self._moved(strip, row_index)
        strip = super()._render_line(y, x1, x2, base_style)
        if len(lines) >= 4096:
            lines.clear()
        lines[key] = (strip, row_index)
        return strip

    def _header_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """The header line, kept by its labels and widths: DataTable draws it anew at every
        change of any row, through the general path (Padding, console.render_lines)."""
        shown = []
        for column in self.ordered_columns:
            label = column.label
            if not isinstance(label, Text):
                return super()._render_line(y, x1, x2, base_style)
            shown.append((label.plain, label.style, label.justify, tuple(label.spans)))
        key = (
            "header",
            tuple(shown),
            self._widths(),
            self.hover_coordinate.row == -1,
            self.show_cursor,
            self._show_hover_cursor,
            x1,
            x2,
            self.size.width,
            base_style,
            self._pseudo_class_state,
        )
        lines = self.__dict__.setdefault("_lines", {})
        kept = lines.get(key)
        if kept is None:
            kept = lines[key] = (super()._render_line(y, x1, x2, base_style), -1)
        return kept[0]

    def _widths(self) -> tuple[int, ...]:
        """The columns' drawn widths (kept until the table changes)."""
        kept = self.__dict__.get("_widths_at")
        if kept is None or kept[0] != self._update_count:
            kept = self.__dict__["_widths_at"] = (
                self._update_count,
                tuple(c.get_render_width(self) for c in self.ordered_columns),
            )
        return kept[1]

    def _moved(self, strip: Strip, row_index: int) -> Strip:
        """``strip`` as drawn for another row, its segments' meta naming ``row_index`` (what a
        click or the mouse over it reads) instead."""
        moved = self.__dict__.setdefault("_moved_styles", {})
        segments = []
        for text, style, control in strip:
            if style is not None and style._meta:
                # Keyed by identity (a style's own hash and == are Python calls); the entry
                # holds the style, so its id is not reused while the entry is there.
                entry = moved.get((id(style), row_index))
                if entry is None or entry[0] is not style:
                    meta = style.meta
                    new = (
                        style + Style.from_meta({**meta, "row": row_index})
                        if "row" in meta
                        else style
                    )
                    if len(moved) >= 16384:
                        moved.clear()
                    entry = moved[(id(style), row_index)] = (style, new)
                style = entry[1]
            segments.append(Segment(text, style, control))
        return Strip(segments, strip.cell_length)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ):
        """A one-line Text cell drawn straight to segments: what DataTable's general path
        (Padding through console.render_lines, for any renderable and any height) produces
        for these cells, at a fraction of the cost. Other cells take the general path, and so
        does every cell once a private name the fast path reads is missing."""
        if row_index >= 0 and column_index >= 0 and self.fast_cells:
            try:
                lines = self._render_text_cell(
                    row_index, column_index, base_style, width, cursor, hover
                )
            except (AttributeError, TypeError):  # DataTable's internals changed under us
                self.__dict__["_fast_cells"] = False
                lines = None
            if lines is not None:
                return lines
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)

    def _render_text_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ):
        """The fast path's lines, or None for a cell it does not draw. Kept by what they
        depend on (place, text, width, styles), not by DataTable's change counter: a change
        anywhere redraws the whole table, and most cells then draw what they drew before."""
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:  # no such place: the general path's to say
            return None
        cell = self.get_cell(row_key, column_key)
        if not isinstance(cell, Text) or self.rows[row_key].height != 1 or "\n" in cell.plain:
            return None
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        drawn = self.__dict__.setdefault("_drawn", {})
        key = (
            row_index,
            column_index,
            cell.plain,
            cell.style,
            cell.justify,
            cell.overflow,
            width,
            self.cell_padding,
            base_style,
            component_style,
            post_style,
        )
        lines = None if cell.spans else drawn.get(key)
        if lines is None:
            # where a click lands
            meta = Style.from_meta({"row": row_index, "column": column_index})
            pre_style = base_style + meta + component_style
            lines = [
                list(
                    Segment.apply_style(
                        self._cell_body(cell, width), style=pre_style, post_style=post_style
                    )
                )
            ]
            if not cell.spans:
                if len(drawn) >= 16384:
                    drawn.clear()
                drawn[key] = lines
        return lines

    def _cell_body(self, cell: Text, width: int) -> list[Segment]:
        """A cell's padded text in its own style, kept by what it shows: when rows move (a job
        arrives on top) most cells show a text drawn before elsewhere ("pending", "due")."""
        bodies = self.__dict__.setdefault("_bodies", {})
        shape = (cell.plain, cell.style, cell.justify, cell.overflow, width, self.cell_padding)
        segments = None if cell.spans else bodies.get(shape)
        if segments is None:
            pad = " " * self.cell_padding
            inner = max(0, width - 2 * self.cell_padding)
            text = cell.copy()
            text.truncate(inner, overflow=cell.overflow or "ellipsis")
            justify = cell.justify if cell.justify in ("left", "center", "right") else "left"
            text.align(justify, inner)
            console = self.app.console
            style = console.get_style(cell.style or "")
            body = Segment.apply_style(text.render(console), style=style)
            segments = [Segment(pad), *body, Segment(pad)]
            if not cell.spans:
                if len(bodies) >= 4096:
                    bodies.clear()
                bodies[shape] = segments
        return segments

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def update_row(self, key: str, cells: tuple[Text, ...]) -> None:
        """Change one row now (a mark), without waiting for the next refresh."""
        old = self._cells.get(key)
        if old is None:
            return
        for column, new, before in zip(self._layout, cells, old, strict=True):
            if new != before:
                self._put_cell(key, column.key, new)
        self._cells[key] = cells


def _id_cell(job: Job, marked: bool) -> Text:
    """The id, and its label beside it, dim (cut first when the column is narrow)."""
    text = cell(job.id, "bold magenta" if marked else "")
    if job.label:
        text.append("  ")
        text.append_text(cell(job.label, "dim"))
    return text


class JobsTable(KeyedTable):
    """Holds one page; moving past its first or last row asks for the page before or after."""

    BINDINGS = [
        Binding(
            "enter",
            "select_cursor",
            "Detail",
            tooltip="Open the job: every field, every attempt, the log",
        ),
        Binding(
            "home,g",
            "first_row",
            "First row",
            show=False,
            tooltip="The page's first row; from there, the first row of the list",
        ),
        Binding(
            "end,G",
            "last_row",
            "Last row",
            show=False,
            tooltip="The page's last row; from there, the last row of the list",
        ),
    ]

    def job_cells(self, job: Job, now: float, marked: bool, page) -> dict[str, Text]:
        """One job's cell for every column there is (``page``, a data.Page, has its attempt
        number and, on the costed tabs, what its last attempt used); the id is whole."""
        cost = ((page.costs or {}).get(job.seq) if page is not None else None) or (None, None, None)
        return {
            "mark": cell(MARK if marked else " ", "bold magenta"),
            "id": _id_cell(job, marked),
            "command": cell(job.command),
            "state": cell(job.state, STATE_STYLE[job.state]),
            "priority": cell(job.priority, justify="right"),
            "attempt": cell(page.runs.get(job.seq) if page is not None else None, justify="right"),
            "retries": cell(retries(job), justify="right"),
            "when": cell(
                when(job, now, page.holds.get(job.seq) if page is not None else None)
                if job.state in WAITING_OR_RUNNING
                else clock(job.finished_at or job.updated_at, now),
                when_style(job, now),
            ),
            "duration": cell(run_time(job, now)),
            "error": cell(job.last_error, "red" if job.state == DEAD else "dark_orange"),
            "cpu": cell(cpu_time(cost[0]), justify="right"),
            "peak": cell(size(cost[1]), justify="right"),
        }

    def _row(self, cells: dict[str, Text]) -> tuple[Text, ...]:
        """The cells of the current columns, the id cut in its middle to its column."""
        row = []
        for column in self.layout:
            text = cells[column.key]
            if column.key == "id" and text.cell_len > column.width:
                text = Text(
                    middle_cut(text.plain, column.width), style=text.style, no_wrap=True, end=""
                )
            row.append(text)
        return tuple(row)

    def job_row(self, job: Job, now: float, marked: bool, page) -> tuple[Text, ...]:
        """One job's cells for the current columns."""
        return self._row(self.job_cells(job, now, marked, page))

    def show_jobs(
        self, page, now: float, marks: set[str], width: int, *, cursor_key: str | None = None
    ) -> None:
        """Show a page of jobs (a data.Page), marked ones highlighted, in columns sized by
        what this page shows and the table's ``width``."""
        cells = [(job.id, self.job_cells(job, now, job.id in marks, page)) for job in page.jobs]
        needs: dict[str, int] = {}
        for _, row in cells:
            for key, text in row.items():
                needs[key] = max(needs.get(key, 0), text.cell_len)
        state = page.view.state
        self.set_layout(job_columns(width, state == DEAD, state in COSTED, needs))
        self.show([(key, self._row(row)) for key, row in cells], cursor_key=cursor_key)

    class Edge(Message):
        """The cursor would leave the page: by one row (step +1/-1), or to the list's end
        (``far``: End/G on the last row, Home/g on the first)."""

        def __init__(self, step: int, far: bool = False) -> None:
            super().__init__()
            self.step = step
            self.far = far

    class Resized(Message):
        """The table shows a different number of rows now."""

    def on_resize(self) -> None:
        self.post_message(self.Resized())

    @property
    def visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - (1 if self.show_header else 0))

    def _at_edge(self, step: int, far: bool = False) -> bool:
        if self.row_count and self.cursor_row == (self.row_count - 1 if step > 0 else 0):
            self.post_message(self.Edge(step, far))
            return True
        return False

    def action_first_row(self) -> None:
        """The page's first row; from there, the list's first row."""
        if not self._at_edge(-1, far=True):
            super().action_first_row()

    def action_last_row(self) -> None:
        """The page's last row; from there, the list's last row."""
        if not self._at_edge(1, far=True):
            super().action_last_row()

    def action_cursor_down(self) -> None:
        if not self._at_edge(1):
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if not self._at_edge(-1):
            super().action_cursor_up()

    def action_page_down(self) -> None:
        if not self._at_edge(1):
            super().action_page_down()

    def action_page_up(self) -> None:
        if not self._at_edge(-1):
            super().action_page_up()
