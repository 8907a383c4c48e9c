"""The console speaks the CLI's words: state names, pages, keys of the dialog in front, and
dialogs that refuse before asking (Textual Pilot; effects checked in the database)."""

from __future__ import annotations

import time

import pytest

from tui_support import make_app, settle, until

pytestmark = pytest.mark.usefixtures("stable_terminal")

SIZE = (120, 35)


def job(job_id: str):
    from queuectl_tui.store.models import Job

    return Job.get_or_none(Job.id == job_id)


def main(app):
    from queuectl_tui.tui.screens.main import MainScreen

    assert isinstance(app.screen, MainScreen), app.screen
    return app.screen


def notes(app) -> str:
    return "\n".join(n.message for n in app._notifications)


def pager(app) -> str:
    return str(app.screen_stack[0].query_one("#pager").render())


async def select(pilot, job_id: str) -> None:
    screen = main(pilot.app)
    await until(pilot, lambda: job_id in screen.table.keys, message=f"{job_id} in the table")
    screen.table.move_cursor(row=screen.table.keys.index(job_id), animate=False)
    await pilot.pause()


# --- one word per state ------------------------------------------------------------------------


async def test_the_table_and_the_narrow_header_say_processing(seeded):
    from queuectl_tui.tui.widgets import CountsHeader

    app = make_app(seeded, page_size=100)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = main(app)
        assert str(screen.table.get_cell("crawl-sitemap", "state")) == "processing"
        header = str(screen.query_one(CountsHeader).render())
        assert "processing 2" in header and "pending 5" in header and " run " not in header


def test_the_header_abbreviates_only_when_the_names_cannot_fit_and_the_help_says_how():
    from queuectl_tui.tui.screens.help import sections
    from queuectl_tui.tui.widgets.counts import CountsHeader

    header = CountsHeader()
    header._data = (
        {
            "pending": 12_345,
            "processing": 2_000,
            "completed": 1_234_567,
            "failed": 300,
            "dead": 4_000,
        },
        12,
        10,
    )
    assert "processing 2,000" in str(header._text(120))
    narrow = str(header._text(80))
    assert "proc 2,000" in narrow and "comp 1,234,567" in narrow
    everywhere = dict(sections()[0][1])
    assert "proc processing" in everywhere["header"] and "comp completed" in everywhere["header"]


# --- sort, pages, footer, help -----------------------------------------------------------------


async def test_the_next_run_sort_starts_with_the_soonest(seeded):
    from queuectl_tui.store.models import Job

    soonest = Job.select().order_by(Job.run_at, Job.seq).first().id
    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main(app)
        await pilot.press("s", "s")  # newest first -> priority -> next run
        await until(pilot, lambda: "next run soonest" in pager(app), message="the next-run order")
        await settle(pilot)
        assert screen.table.keys[0] == soonest
        await pilot.press("s")  # the next order starts in its own direction again
        await until(
            pilot,
            lambda: "recently changed" in pager(app) and "least" not in pager(app),
            message="the last-change order",
        )


async def test_the_footer_gives_the_page_number(seeded):
    app = make_app(seeded, page_size=20)  # 57 jobs: three pages
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "page 1 of 3, 20 of 57 jobs" in pager(app)
        for key, expected in [
            ("right_square_bracket", "page 2 of 3"),
            ("right_square_bracket", "page 3 of 3"),
            ("left_square_bracket", "page 2 of 3"),
            ("left_square_bracket", "page 1 of 3"),
        ]:
            await pilot.press(key)
            await until(pilot, lambda: expected in pager(app), message=expected)


async def test_with_a_dialog_open_the_footer_lists_the_dialogs_keys(seeded):
    from queuectl_tui.tui.screens.modals import ConfirmModal, EnqueueModal
    from queuectl_tui.tui.widgets import KeyBar

    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, EnqueueModal), message="the form")
        await pilot.pause()
        bar = str(app.screen.query_one(KeyBar).render())
        assert "esc Close" in bar and "^s Enqueue" in bar and "Retry" not in bar
        assert app.screen.query_one(KeyBar).region.y == SIZE[1] - 1  # on the bottom line
        await pilot.press("escape")
        await select(pilot, "thumb-001")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), message="the question")
        await pilot.pause()
        bar = str(app.screen.query_one(KeyBar).render())
        assert "y Yes" in bar and "n No" in bar and "Enqueue" not in bar


def test_the_help_says_what_each_key_does_in_each_dialog_and_which_worker_minus_stops():
    from queuectl_tui.tui.screens.help import sections

    for title, rows in sections():
        keys = [keys for keys, _ in rows]
        assert len(keys) == len(set(keys)), (title, keys)  # each key once per section
    forms = dict(dict(sections())["Forms and questions"])
    assert "enqueue form (n): Enqueue the job" in forms["ctrl+s"]
    assert "settings form (e): Save the changed settings" in forms["ctrl+s"]
    assert "edit form (E): Close without changing the job" in forms["esc"]
    jobs = dict(dict(sections())["Jobs (main screen)"])
    assert "else the newest idle one" in jobs["-"]


# --- dialogs -----------------------------------------------------------------------------------


async def test_d_on_a_processing_job_is_refused_before_asking(seeded):
    from queuectl_tui.tui.screens.detail import JobDetailScreen
    from queuectl_tui.tui.screens.modals import ConfirmModal

    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "crawl-sitemap")
        await pilot.press("d")
        await until(
            pilot,
            lambda: "crawl-sitemap is processing: cancel it first" in notes(app),
            message="the refusal",
        )
        assert not isinstance(app.screen, ConfirmModal)
        app.clear_notifications()
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, JobDetailScreen) and app.screen.detail,
            message="the detail",
        )
        await pilot.press("d")
        await until(
            pilot, lambda: "cancel it first" in notes(app), message="the refusal in the detail"
        )
        assert isinstance(app.screen, JobDetailScreen)
    assert job("crawl-sitemap").state == "processing"


async def test_shift_d_on_an_empty_dlq_says_it_is_empty(seeded):
    from queuectl_tui import engine
    from queuectl_tui.tui.screens.modals import ConfirmModal

    engine.dlq_clear()
    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("D")
        await until(pilot, lambda: "the DLQ is empty" in notes(app), message="the message")
        assert not isinstance(app.screen, ConfirmModal)


async def test_the_dlq_questions_count_the_dlq_as_it_is_when_they_open(seeded):
    """The header's count is the last refresh's: R and D ask about the DLQ as it is now."""
    from queuectl_tui import engine
    from queuectl_tui.tui.screens.modals import ConfirmModal

    app = make_app(seeded, page_size=100)  # no refresh in the test: the header stays at 4
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        engine.cancel("warm-cache")  # elsewhere: a waiting job cancelled goes to the DLQ
        assert "dead 4" in str(main(app).query_one("#counts").render())  # not refreshed yet
        for key, words in (("D", "Delete all 5 dead job(s)"), ("R", "Move all 5 dead job(s)")):
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal), message="the question")
            assert words in str(app.screen.question)
            await pilot.press("n")
            await settle(pilot)


async def test_the_dlq_retry_question_says_the_budget_starts_over_and_the_numbers_go_on(seeded):
    from queuectl_tui.tui.screens.modals import ConfirmModal

    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), message="the question")
        assert "fresh retry budget" in app.screen.question
        assert "attempt numbers go on" in app.screen.question


async def test_a_completed_jobs_detail_offers_restart_not_retry_edit_or_cancel(seeded):
    from queuectl_tui.tui.screens.detail import JobDetailScreen
    from queuectl_tui.tui.widgets.keybar import KeyBar

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for job_id, offered, not_offered in (
            ("nightly-backup", {"Restart"}, {"Retry", "Edit", "Cancel"}),  # completed
            ("charge-card-7731", {"Retry", "Restart"}, {"Edit", "Cancel"}),  # dead
            ("warm-cache", {"Edit", "Cancel"}, {"Retry", "Restart"}),
        ):  # pending
            await app.push_screen(JobDetailScreen(job_id))
            await settle(pilot)
            keys = {description for _, _, description in app.screen.query_one(KeyBar).keys()[0]}
            assert offered <= keys and not keys & not_offered, (job_id, keys)
            await pilot.press("escape")
            await settle(pilot)


async def test_the_help_says_it_scrolls_when_it_does_not_fit(seeded):
    from textual.containers import VerticalScroll

    app = make_app(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        title = str(app.screen.query_one("#help-title").render())
        assert "scroll" in title
        box = app.screen.query_one("#help", VerticalScroll)
        await pilot.press("pagedown")
        await until(pilot, lambda: box.scroll_y > 0, message="the help scrolled")
    app = make_app(seeded)
    async with app.run_test(size=(200, 120)) as pilot:  # all of it fits: no word of scrolling
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert "scroll" not in str(app.screen.query_one("#help-title").render())


async def test_deleting_one_job_asks_about_its_attempts(seeded):
    from queuectl_tui.tui.screens.modals import ConfirmModal

    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "thumb-001")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), message="the question")
        assert "Delete job thumb-001 with its attempts and logs?" in app.screen.question


async def test_cancelling_a_running_job_says_cancel_requested_then_how_it_ended(empty_db, tmp_path):
    from queuectl_tui import engine, spec
    from queuectl_tui.run import supervisor

    engine.enqueue([spec.normalize({"id": "long", "command": "sleep 60"})], cwd=str(tmp_path))
    supervisor.start(empty_db, 1)
    app = make_app(empty_db, clock=time.time, monitor=None, refresh_interval=0.2, page_size=100)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot, lambda: job("long").state == "processing", timeout=20, message="running"
            )
            await select(pilot, "long")
            await until(
                pilot, lambda: main(app).jobs["long"].state == "processing", message="shown running"
            )
            await pilot.press("c")
            from queuectl_tui.tui.screens.modals import ConfirmModal

            await until(pilot, lambda: isinstance(app.screen, ConfirmModal), message="the question")
            await pilot.press("y")
            await until(
                pilot, lambda: "long: cancel requested" in notes(app), message="cancel requested"
            )
            assert "cancel →" not in notes(app)
            await until(
                pilot,
                lambda: "long ended: dead (cancelled)" in notes(app),
                timeout=20,
                message="how it ended",
            )
    finally:
        supervisor.stop()


# --- attempts and the retry budget -------------------------------------------------------------


async def test_the_attempt_number_goes_on_after_a_dlq_retry_and_the_budget_starts_over(seeded):
    from queuectl_tui import engine

    engine.dlq_retry(["charge-card-7731"])  # dead after 3 runs (2 retries): a fresh budget
    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = main(app).table
        assert [c.label for c in table.layout if c.key in ("attempt", "retries")] == [
            "Attempt",
            "Retries",
        ]
        row = {c.key: str(table.get_cell("charge-card-7731", c.key)) for c in table.layout}
        assert (row["state"], row["attempt"], row["retries"]) == ("pending", "3", "0/2")
        row = {c.key: str(table.get_cell("fetch-exchange-rates", c.key)) for c in table.layout}
        assert (row["attempt"], row["retries"]) == ("3", "2/4")  # failed twice, backing off
        assert str(table.get_cell("warm-cache", "attempt")) == "-"  # never ran


async def test_the_detail_counts_every_run_and_names_the_retry_budget(seeded):
    from queuectl_tui import engine
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    engine.dlq_retry(["charge-card-7731"])
    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.push_screen(JobDetailScreen("charge-card-7731"))
        await settle(pilot)
        fields = app.screen.detail.fields
        assert (fields["attempts"], fields["retry budget"]) == (3, "0 of 2 used")
        assert [a["number"] for a in app.screen.detail.attempts] == [1, 2, 3]


# --- one read at a time ------------------------------------------------------------------------


def test_requests_during_a_read_make_one_more_read_after_it():
    from queuectl_tui.tui.reads import OneRead

    started = []
    reads = OneRead(lambda: started.append(len(started)))
    reads.request()
    reads.request()
    reads.request()  # while the first runs: one more read is due, not two
    assert started == [0] and reads.busy and reads.again and not reads.settled
    reads.done()  # the first ends: the second starts
    assert started == [0, 1] and reads.busy and not reads.again
    reads.done()
    assert reads.settled and started == [0, 1]
    nothing = OneRead(lambda: False)  # found nothing to read: not busy
    nothing.request()
    assert nothing.settled


async def test_tabs_switched_during_reads_end_on_the_last_one(seeded):
    app = make_app(seeded, page_size=100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = main(app)
        reads = []
        original = screen._read_page
        screen._read_page = lambda view, limit, *more: (
            reads.append(view.state),
            original(view, limit, *more),
        )[1]
        for state in ("pending", "processing", "completed", "failed", "dead"):  # in one go
            screen.set_view(state=state)
        await settle(pilot)
        assert screen.page.view.state == "dead" and set(screen.table.keys) == {
            "cleanup-tmp",
            "webhook-deliver-42",
            "legacy-report",
            "charge-card-7731",
        }
        assert reads == ["pending", "dead"]  # the first, then one for all that came meanwhile


# --- pages while rows arrive; a console at rest reads nothing ----------------------------------


async def quiet_reads(pilot, reads: list, rounds: int = 20) -> int:
    """Reads made over ``rounds`` turns of the event loop once the screen has settled (with the
    refresh timer off, a console at rest makes none: a read that starts another is a loop)."""
    screen = pilot.app.screen
    await until(pilot, lambda: screen.settled, message="the screen to settle")
    before = len(reads)
    for _ in range(rounds):
        await pilot.pause(0.02)
    return len(reads) - before


async def test_back_to_page_one_after_a_job_arrived_shows_the_head_and_the_console_rests(
    empty_db, add, monkeypatch
):
    """The report: on page 2 of 45 jobs, one job arrives, [ twice: page 1 showed the new job
    alone ("page 1 of 3, 1 of 46 jobs") and the console read that page again and again."""
    from queuectl_tui.tui import data

    for n in range(45):
        add(f"job-{n:02d}")
    reads = []
    read_page = data.read_page
    monkeypatch.setattr(data, "read_page", lambda *a: (reads.append(a), read_page(*a))[1])
    app = make_app(empty_db)  # a page is a screenful: 21 rows at 120x35
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        assert "page 1 of 3, 21 of 45 jobs" in pager(app)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "page 2 of 3" in pager(app), message="page 2")
        add("new-one")
        await pilot.press("left_square_bracket", "left_square_bracket")
        await until(pilot, lambda: "page 1 of 3, 21 of 46 jobs" in pager(app), message="page 1")
        assert screen.table.keys == ["new-one"] + [f"job-{n:02d}" for n in range(44, 24, -1)]
        assert await quiet_reads(pilot, reads) == 0


async def test_end_and_home_go_to_the_pages_last_row_then_the_lists(seeded):
    app = make_app(seeded, page_size=20)  # 57 jobs: three pages
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        first = screen.table.keys
        await pilot.press("end")
        assert screen.table.cursor_row == 19 and "page 1 of 3" in pager(app)
        await pilot.press("G")
        await until(pilot, lambda: "page 3 of 3, 17 of 57" in pager(app), message="the last page")
        assert screen.table.cursor_row == 16
        await pilot.press("g")
        await settle(pilot)
        assert screen.table.cursor_row == 0 and "page 3 of 3" in pager(app)
        await pilot.press("home")
        await until(pilot, lambda: "page 1 of 3" in pager(app), message="the first page")
        assert screen.table.keys == first and screen.table.cursor_row == 0


async def test_space_marks_the_job_and_moves_down(seeded):
    app = make_app(seeded, page_size=20)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        first, second = screen.table.keys[:2]
        await pilot.press("space")
        assert screen.marks == {first} and screen.table.cursor_key == second


async def test_the_jobs_behind_the_detail_are_not_read(seeded, monkeypatch):
    """The detail covers the jobs table: refreshing it meanwhile is work no one sees (the main
    screen read on behind the detail, the queues and the stats)."""
    from queuectl_tui.tui import data
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    reads = []
    for name in ("read_page", "read_status"):
        read = getattr(data, name)
        monkeypatch.setattr(data, name, lambda *a, read=read: (reads.append(a), read(*a))[1])
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        jobs = main(app)
        await app.push_screen(JobDetailScreen("fetch-exchange-rates"))
        await settle(pilot)
        before = len(reads)
        jobs.tick()  # what the refresh timer runs every second
        await settle(pilot)
        assert len(reads) == before
        await pilot.press("escape")  # back: read at once
        await until(pilot, lambda: len(reads) == before + 2, message="the jobs read again")


# --- columns sized by their content ------------------------------------------------------------


def test_columns_fill_the_width_and_the_last_error_gives_way_first():
    from queuectl_tui.tui.widgets.jobs_table import ERROR_LEAST, job_columns

    needs = {
        "id": 24,
        "command": 40,
        "error": 30,
        "state": 10,
        "when": 13,
        "attempt": 1,
        "retries": 3,
        "priority": 1,
        "duration": 6,
    }
    widths = {}
    for width in range(170, 79, -1):
        columns = job_columns(width, False, False, needs)
        assert sum(c.width + 2 for c in columns) == width
        widths[width] = {c.key: c.width for c in columns}
    assert widths[120]["id"] == 24  # whole at 120 columns
    assert widths[170]["error"] >= 30 and widths[170]["command"] == 40  # room for everything
    # Narrowing: the error gives way first, down to its least; the id is cut last.
    first_short = {
        key: max(w for w, row in widths.items() if row[key] < needs[key])
        for key in ("error", "command", "id")
    }
    assert first_short["error"] > first_short["command"] > first_short["id"]
    assert all(row["error"] >= ERROR_LEAST for row in widths.values())


def test_an_id_cut_keeps_its_end():
    from queuectl_tui.tui.fmt import middle_cut

    assert middle_cut("report-chunk-17", 11) == "report-…-17"
    assert middle_cut("transcode-video-17", 14) == "transcode-…-17"
    assert middle_cut("28d03ef9a1ab1234", 10) == "28d03e…234"  # no part: a third for the end
    assert middle_cut("report-chunk-17", 15) == "report-chunk-17"


async def test_at_80x24_with_the_output_pane_the_screen_fits_and_a_page_is_what_shows(seeded):
    """The output pane at 80x24 made the screen taller than the terminal (it scrolled, the
    throughput line went under), and a page was 10 rows of which 3 showed."""
    app = make_app(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert screen.max_scroll_y == 0
        assert screen.query_one("#throughput").region.bottom <= 23  # above the key bar
        shown = screen.table.visible_rows
        assert len(screen.page.jobs) == shown and f"{shown} of 57 jobs" in pager(app)
