"""KeyedTable draws one-line Text cells itself (DataTable's private ``_render_cell``): its output
must be the stock method's, cell for cell, and a missing private name must fall back to it."""

from __future__ import annotations

import pytest

from tui_support import make_app, settle

pytestmark = pytest.mark.usefixtures("stable_terminal")


def compare_every_cell(table, *, expect_fast: bool) -> int:
    """Render every cell of the page both ways, cursor on and off; return how many."""
    from rich.style import Style
    from textual.widgets import DataTable

    calls = []
    cls = type(table)
    own = vars(cls).get("_render_text_cell")  # restored exactly: a subclass may not have its own
    original = cls._render_text_cell

    def counted(self, *args):
        calls.append(args)
        return original(self, *args)

    cls._render_text_cell = counted
    compared = 0
    try:
        for row in range(table.row_count):
            for column_index, column in enumerate(table.ordered_columns):
                width = column.get_render_width(table)
                for cursor in (False, True):
                    for base in (table.rich_style, Style(bgcolor="grey15")):
                        table._cell_render_cache.clear()
                        ours = table._render_cell(row, column_index, base, width, cursor)
                        table._cell_render_cache.clear()
                        stock = DataTable._render_cell(
                            table, row, column_index, base, width, cursor
                        )
                        assert ours == stock, (row, column.key, cursor, ours, stock)
                        compared += 1
    finally:
        if own is None:
            del cls._render_text_cell
        else:
            cls._render_text_cell = own
    assert bool(calls) is expect_fast
    return compared


async def test_the_fast_cells_equal_the_stock_ones_for_every_cell_of_a_page(seeded):
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = make_app(seeded, page_size=30)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.table
        app.screen.marks.add(table.keys[1])  # a styled (marked) row too
        app.screen._show_page(app.screen.page)
        await pilot.pause()
        assert compare_every_cell(table, expect_fast=True) == 30 * len(table.layout) * 4
        await app.push_screen(JobDetailScreen("fetch-exchange-rates"))  # the attempts table
        await settle(pilot)
        from queuectl_tui.tui.screens.detail import AttemptsTable

        compare_every_cell(app.screen.query_one(AttemptsTable), expect_fast=True)


async def test_a_missing_private_name_falls_back_to_the_stock_method(seeded, monkeypatch):
    from queuectl_tui.tui.widgets.jobs_table import KeyedTable

    monkeypatch.setattr(KeyedTable, "PRIVATE", (*KeyedTable.PRIVATE, "_gone_in_a_later_textual"))
    app = make_app(seeded, page_size=30)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.table
        assert not table.fast_cells
        assert "crawl-sitemap" in app.screen.table.keys
        compare_every_cell(table, expect_fast=False)


async def test_internals_that_changed_shape_fall_back_too(seeded, monkeypatch):
    from queuectl_tui.tui.widgets.jobs_table import KeyedTable

    def changed(self, *args):  # as if DataTable's helper took other arguments now
        raise TypeError("_get_styles_to_render_cell() takes 3 positional arguments")

    app = make_app(seeded, page_size=30)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.table
        monkeypatch.setattr(KeyedTable, "_render_text_cell", changed)
        table._cell_render_cache.clear()
        assert table._render_cell(0, 1, table.rich_style, 12)  # drawn the stock way
        assert not table.fast_cells
        monkeypatch.undo()
        compare_every_cell(table, expect_fast=False)


def compare_every_line(table) -> int:
    """Each line of the table as KeyedTable gives it (kept by content, moved rows re-targeted)
    against DataTable's own drawing of it now, segment for segment (meta included: what a
    click on the line selects)."""
    from textual.widgets import DataTable

    compared = 0
    base = table.rich_style
    width = table.size.width
    for y in range(table.row_count + 1):  # the header, then each row
        ours = list(table._render_line(y, 0, width, base))
        table._line_cache.clear()
        table._row_render_cache.clear()
        table._cell_render_cache.clear()
        stock = list(DataTable._render_line(table, y, 0, width, base))
        assert [(s.text, s.style, s.style.meta if s.style else None) for s in ours] == [
            (s.text, s.style, s.style.meta if s.style else None) for s in stock
        ], y
        compared += 1
    return compared


async def test_lines_kept_by_content_equal_the_stock_ones_after_rows_moved(seeded, monkeypatch):
    """A job arriving on top moves every row down: the lines kept from before are shown
    again, their click targets the rows' new places, exactly as DataTable would draw them."""
    from queuectl_tui.tui.widgets.jobs_table import KeyedTable

    moves = []
    real = KeyedTable._moved
    monkeypatch.setattr(KeyedTable, "_moved", lambda self, *a: (moves.append(a), real(self, *a))[1])
    app = make_app(seeded, page_size=30)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.table
        rows = [(key, table._cells[key]) for key in table.keys]
        compare_every_line(table)
        for shift in range(1, 4):  # moved down, the cursor row too, then once more
            moved = rows[-shift:] + rows[:-shift]
            table.show(moved)
            await pilot.pause()
            assert compare_every_line(table) == len(rows) + 1
        assert len(moves) >= 3 * (len(rows) - 3)  # the kept lines were the ones compared
        table.move_cursor(row=5)
        await pilot.pause()
        compare_every_line(table)
