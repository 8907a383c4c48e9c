"""A console at rest does next to nothing: what it reads and redraws when nothing changed.

These assert the causes of the console's CPU at rest (issue 18), not timings: the figures are
in the benchmark (bench/console_idle.py, bench/idle.py)."""

from __future__ import annotations

import pytest

from helpers import T0

pytestmark = pytest.mark.usefixtures("stable_terminal")


def test_an_idle_workers_process_figures_are_read_every_few_seconds(db, worker, monkeypatch):
    from queuectl_tui import procs
    from queuectl_tui.run import monitor

    looks = []
    same_process = procs.same_process
    monkeypatch.setattr(procs, "same_process", lambda *a: (looks.append(a), same_process(*a))[1])
    watch = monitor.WorkerMonitor()
    [first] = watch.sample(now=T0 + 1)
    assert first.alive and first.local and first.process is not None and len(looks) == 1
    for second in range(2, 2 + int(watch.idle_every) - 1):
        [again] = watch.sample(now=T0 + second)
        assert again.process == first.process  # shown as read, no /proc read
    assert len(looks) == 1
    watch.sample(now=T0 + 1 + watch.idle_every)
    assert len(looks) == 2


def test_the_workers_pane_shows_ages_that_do_not_change_every_second():
    from queuectl_tui.tui.widgets.workers import beat_text, uptime_text

    assert {beat_text(age / 10, True) for age in range(50)} == {"<5s"}
    assert beat_text(7.2, True) == "7s" and beat_text(0.5, False) == "0s"  # late or lost
    assert {uptime_text(s) for s in range(600, 660)} == {"10m"}
    assert [uptime_text(s) for s in (3, 15, 59, 61, 3725)] == ["<10s", "10s", "50s", "1m", "1h02m"]


SIZE = (120, 35)


def spy_refreshes(table) -> list[tuple]:
    """The regions of each ``refresh`` of ``table`` from now on (``()``: the whole table)."""
    from textual.widgets import DataTable

    calls: list[tuple] = []

    def refresh(*regions, **options):
        calls.append(regions)
        return DataTable.refresh(table, *regions, **options)

    table.refresh = refresh
    return calls


async def test_a_changed_cell_repaints_its_own_region_not_the_whole_table(seeded):
    """DataTable.update_cell repaints the whole table: a heartbeat's cell redrew every row."""
    from rich.text import Text

    from tui_support import make_app, settle

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.table
        rows = [(key, table._cells[key]) for key in table.keys]
        calls = spy_refreshes(table)
        table.show(rows)
        assert calls == []  # nothing changed: nothing repainted
        key, cells = rows[2]
        changed = (*cells[:-1], Text("a new error"))
        table.show([*rows[:2], (key, changed), *rows[3:]])
        assert calls and all(regions for regions in calls)  # a region each time, never all
        assert table.get_cell(key, table.layout[-1].key).plain == "a new error"
        await pilot.pause()
        line = table.get_row_index(key) + 1  # the header is line 0
        assert "a new error" in table.render_line(line).text


@pytest.mark.both_backends
async def test_a_tick_reads_the_page_only_after_a_commit_and_redraws_nothing_at_rest(
    seeded, add, monkeypatch
):
    """At rest the refresh timer reads the change token only (no page read) and repaints no
    table; a job enqueued elsewhere is read and shown at the next tick."""
    from queuectl_tui.tui import data
    from tui_support import NOW, make_app, settle, until

    reads = []
    read_page = data.read_page
    monkeypatch.setattr(data, "read_page", lambda *a: (reads.append(a), read_page(*a))[1])
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot)
        jobs = spy_refreshes(screen.table)
        workers = spy_refreshes(screen.query_one("#workers-table"))

        async def tick() -> int:
            """Page reads made by one tick of the refresh timer."""
            before = len(reads)
            screen.tick()
            await settle(pilot)
            return len(reads) - before

        before = len(reads)
        assert [await tick() for _ in range(4)] == [0, 0, 0, 0]
        assert jobs == [] and workers == []
        add("arrived-elsewhere", now=NOW)
        await until(
            pilot,
            lambda: (screen.tick(), "arrived-elsewhere" in screen.table.keys)[1],
            message="the new job on the page",
        )
        assert len(reads) > before


@pytest.mark.both_backends
async def test_the_workers_heartbeats_make_no_page_read(seeded, add, monkeypatch):
    """Each heartbeat is a commit, and SQLite's data_version moves at every commit: a console
    beside idle workers read its page every second (1.1 % of a core beside 4 workers). The
    console's change token ignores heartbeats; a job enqueued elsewhere is still read."""
    from queuectl_tui import engine
    from queuectl_tui.store.models import Worker
    from queuectl_tui.tui import data
    from tui_support import NOW, make_app, settle, until

    reads = []
    read_page = data.read_page
    monkeypatch.setattr(data, "read_page", lambda *a: (reads.append(a), read_page(*a))[1])
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot)
        workers = [row.id for row in Worker.select()]
        assert workers
        before = len(reads)
        for second in range(1, 4):
            for worker_id in workers:
                engine.heartbeat(worker_id, now=NOW + second)
            screen.tick()
            await settle(pilot)
        assert len(reads) == before
        add("arrived-elsewhere", now=NOW)
        await until(
            pilot,
            lambda: (screen.tick(), "arrived-elsewhere" in screen.table.keys)[1],
            message="the new job on the page",
        )


async def test_a_job_arriving_on_top_draws_its_own_row_not_the_rows_it_moved(
    seeded, add, monkeypatch
):
    """Each arrival moves every row of page 1 down a line; DataTable's caches are keyed by its
    change counter, so every line of the table was drawn anew each second (the console at
    3-6 % of a core while jobs arrive). Rows that only moved are drawn as before."""
    from textual.widgets import DataTable

    from tui_support import NOW, make_app, settle, until

    drawn = []
    stock = DataTable._render_line
    monkeypatch.setattr(
        DataTable, "_render_line", lambda self, y, *a: (drawn.append(y), stock(self, y, *a))[1]
    )
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot)
        rows = len(screen.table.keys)
        assert rows >= 15
        for n in range(3):
            drawn.clear()
            job_id = f"arrived-{n}"
            add(job_id, now=NOW + n)
            await until(
                pilot,
                lambda job_id=job_id: (screen.tick(), screen.table.keys[0] == job_id)[1],
                message="the new job on top",
            )
            await settle(pilot)
            # The new row, the rows the cursor left and reached, what the arrival changed.
            assert 0 < len(drawn) <= 6, f"{len(drawn)} lines drawn for one arrival of {rows} rows"


async def test_at_rest_the_status_is_read_every_few_ticks_and_a_key_reads_it_again(
    seeded, monkeypatch
):
    from queuectl_tui.tui import data
    from queuectl_tui.tui.screens.main import REST_EVERY
    from tui_support import make_app, settle

    reads = []
    read_status = data.read_status
    monkeypatch.setattr(data, "read_status", lambda *a: (reads.append(a), read_status(*a))[1])
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot)

        async def tick() -> int:
            before = len(reads)
            screen.tick()
            await settle(pilot)
            return len(reads) - before

        made = [await tick() for _ in range(2 + 2 * REST_EVERY)]
        assert made[:2] == [1, 1]  # two reads that show nothing new: at rest
        assert made[2:] == ([0] * (REST_EVERY - 1) + [1]) * 2
        await pilot.press("j")  # a key: at every tick again
        assert [await tick() for _ in range(2)] == [1, 1]


async def test_while_rows_arrive_the_table_is_drawn_every_few_ticks_and_at_once_at_a_key(
    seeded, add
):
    """Redrawing page 1 at every arrival (each moves every row) was most of the console's CPU
    while jobs arrive. With no key pressed lately the page is drawn every DRAW_EVERY ticks, so a
    job enqueued elsewhere shows within that many ticks without a key, and at once at a key."""
    from queuectl_tui.tui.screens.main import DRAW_EVERY, KEY_QUIET
    from tui_support import NOW, make_app, settle, until

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot)

        async def tick() -> None:
            screen.tick()
            await settle(pilot)

        for _ in range(KEY_QUIET):
            await tick()
        for n in range(2):  # without a key: shown at the latest DRAW_EVERY ticks later
            job_id = f"arrived-{n}"
            add(job_id, now=NOW + n)
            ticks = 0
            while screen.table.keys[0] != job_id:
                assert ticks < DRAW_EVERY, f"{job_id} not shown {ticks} ticks after it arrived"
                await tick()
                ticks += 1
        add("before-a-key", now=NOW + 5)
        await tick()
        assert screen.table.keys[0] != "before-a-key"  # one tick after a draw: not drawn yet
        await pilot.press("j")
        await until(
            pilot, lambda: screen.table.keys[0] == "before-a-key", message="shown at the key"
        )


async def test_while_rows_arrive_the_counts_keep_the_tables_cadence_and_follow_a_key_at_once(
    seeded, add
):
    """Each arrival moves the counts, so the status (counts, workers, chart) was read at every
    tick while jobs arrived: the read that kept the console over 2 % of a core. With no key
    pressed lately the header's counts follow at the table's cadence (DRAW_EVERY ticks), and a
    key reads them at once."""
    from queuectl_tui.tui.screens.main import DRAW_EVERY, KEY_QUIET
    from queuectl_tui.tui.widgets.counts import CountsHeader
    from tui_support import NOW, make_app, settle, until

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        header = screen.query_one(CountsHeader)
        await settle(pilot)

        def pending() -> int | None:
            return None if header._data is None else header._data[0]["pending"]

        async def tick() -> None:
            screen.tick()
            await settle(pilot)

        for _ in range(KEY_QUIET + DRAW_EVERY):
            await tick()
        for n in range(2):  # without a key: counted at the latest DRAW_EVERY ticks later
            before = pending()
            add(f"arrived-{n}", now=NOW + n)
            ticks = 0
            while pending() == before:
                assert ticks < DRAW_EVERY, f"arrival {n} not counted {ticks} ticks after it"
                await tick()
                ticks += 1
        before = pending()
        add("before-a-key", now=NOW + 5)
        await tick()
        assert pending() == before  # one tick after the counts were read: not read again yet
        await pilot.press("j")
        await until(pilot, lambda: pending() == before + 1, message="counted at the key")


async def test_the_output_pane_follows_a_running_jobs_log_and_reads_another_less_often(
    seeded, monkeypatch
):
    """The output pane read the selected job's log twice a second whatever it was: a pending
    job (no log yet) or an ended one cost two reads a second while rows arrived. A running
    job's log is followed at every call of the pane's timer; another is read at the table's
    cadence (DRAW_EVERY ticks), or at once when the cursor moves to it."""
    from queuectl_tui.tui import data
    from queuectl_tui.tui.screens.main import KEY_QUIET
    from tui_support import make_app, settle

    reads = []
    read_output = data.read_output
    monkeypatch.setattr(data, "read_output", lambda *a: (reads.append(a[0]), read_output(*a))[1])
    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await settle(pilot)

        async def calls(job_id: str, n: int) -> list[int]:
            """Reads of ``job_id``'s log made by each of ``n`` calls of the pane's timer."""
            screen.table.move_cursor(row=screen.table.keys.index(job_id), animate=False)
            await settle(pilot)
            assert reads[-1] == job_id  # a new selection is read at once
            for _ in range(KEY_QUIET):
                screen.tick()
            await settle(pilot)
            made = []
            for _ in range(n):
                before = len(reads)
                screen._output_tick()
                await settle(pilot)
                made.append(len(reads) - before)
            return made

        await pilot.press("o")
        await settle(pilot)
        assert all(await calls("crawl-sitemap", 3))  # each call reads (running)
        assert await calls("nightly-backup", 4) == [0, 0, 0, 0]
