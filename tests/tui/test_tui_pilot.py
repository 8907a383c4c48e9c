"""The console driven by its keys (Textual Pilot); every effect is checked in the database."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from tui_support import NOW, settle, until
from tui_support import make_app as _make_app

pytestmark = pytest.mark.usefixtures("stable_terminal")

SIZE = (120, 35)


def make_app(path, **options):
    """One page holds every seeded job unless a test says otherwise (the default is a screenful)."""
    options.setdefault("page_size", 100)
    return _make_app(path, **options)


def job(job_id: str):
    from queuectl_tui.store.models import Job

    return Job.get_or_none(Job.id == job_id)


def state(job_id: str) -> str | None:
    row = job(job_id)
    return row.state if row else None


def main(app):
    from queuectl_tui.tui.screens.main import MainScreen

    assert isinstance(app.screen, MainScreen), app.screen
    return app.screen


async def select(pilot, job_id: str) -> None:
    screen = main(pilot.app)
    await until(pilot, lambda: job_id in screen.table.keys, message=f"{job_id} in the table")
    screen.table.move_cursor(row=screen.table.keys.index(job_id), animate=False)
    await pilot.pause()


async def answer(pilot, key: str) -> None:
    from queuectl_tui.tui.screens.modals import ConfirmModal

    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal), message="the question")
    await pilot.press(key)


# --- enqueue -----------------------------------------------------------------------------------


async def test_n_enqueues_a_job_from_the_form(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", *"echo from the console", "tab", *"console-1", "tab", *"7", "ctrl+s")
        created = await until(pilot, lambda: job("console-1"), message="the new job")
        assert created.command == "echo from the console" and created.priority == 7
        assert created.state == "pending"
        await until(pilot, lambda: "console-1" in main(app).table.keys, message="the row")


async def test_enqueue_form_refuses_bad_values_inline(seeded):
    from queuectl_tui.store.models import Job
    from queuectl_tui.tui.screens.modals import EnqueueModal

    before = Job.select().count()
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", "tab", *"warm-cache", "tab", *"x1", "ctrl+s")
        modal = app.screen
        assert isinstance(modal, EnqueueModal)
        assert "required" in str(modal.query_one("#e-command").render())
        assert "whole number" in str(modal.query_one("#e-priority").render())
        # The first field in error has the focus. Fix both: the engine then refuses the id that
        # exists, under the id field.
        assert modal.focused is modal.query_one("#f-command")
        await pilot.press(*"true", "tab", "tab", "ctrl+a", "ctrl+k", "ctrl+s")
        await until(
            pilot,
            lambda: "already exists" in str(modal.query_one("#e-id").render()),
            message="the duplicate id error",
        )
        assert isinstance(app.screen, EnqueueModal)
    assert Job.select().count() == before


# --- retry, cancel, delete, the DLQ ------------------------------------------------------------


async def test_r_retries_the_selected_dead_job(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        await select(pilot, "charge-card-7731")
        await pilot.press("r")
        await until(
            pilot, lambda: state("charge-card-7731") == "pending", message="back to pending"
        )
        assert job("charge-card-7731").attempts == 0
        assert state("legacy-report") == "dead"


async def test_r_on_a_failed_job_runs_it_now(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await select(pilot, "fetch-exchange-rates")
        before = job("fetch-exchange-rates").run_at
        await pilot.press("r")
        await until(
            pilot, lambda: job("fetch-exchange-rates").run_at != before, message="run_at moved"
        )
        assert job("fetch-exchange-rates").run_at <= time.time()


async def test_space_marks_jobs_for_a_bulk_retry(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        await select(pilot, "webhook-deliver-42")
        await pilot.press("space")  # marks it and moves down
        await select(pilot, "charge-card-7731")
        await pilot.press("space")
        assert main(app).marks == {"webhook-deliver-42", "charge-card-7731"}
        await pilot.press("r")
        await until(
            pilot,
            lambda: state("webhook-deliver-42") == state("charge-card-7731") == "pending",
            message="both retried",
        )
        assert state("legacy-report") == "dead" and state("cleanup-tmp") == "dead"
        await until(pilot, lambda: not main(app).marks, message="marks cleared")


async def test_shift_r_retries_the_whole_dlq_after_asking(seeded):
    from queuectl_tui.engine import counts

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await answer(pilot, "y")
        await until(pilot, lambda: counts()["dead"] == 0, message="an empty DLQ")


async def test_c_cancels_after_asking_and_n_keeps_the_job(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await select(pilot, "warm-cache")
        await pilot.press("c")
        await answer(pilot, "n")
        await settle(pilot)
        assert state("warm-cache") == "pending"
        await pilot.press("c")
        await answer(pilot, "y")
        await until(pilot, lambda: state("warm-cache") == "dead", message="cancelled")
        assert job("warm-cache").last_error == "cancelled"


async def test_d_deletes_the_job_after_asking(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "thumb-001")
        await pilot.press("d")
        await answer(pilot, "y")
        await until(pilot, lambda: job("thumb-001") is None, message="deleted")
        await until(pilot, lambda: "thumb-001" not in main(app).table.keys, message="row gone")


async def test_shift_d_clears_the_dlq_after_asking(seeded):
    from queuectl_tui.engine import counts

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("D")
        await answer(pilot, "y")
        await until(pilot, lambda: counts()["dead"] == 0, message="DLQ cleared")
        assert job("charge-card-7731") is None and state("fetch-exchange-rates") == "failed"


# --- config ------------------------------------------------------------------------------------


async def test_e_edits_settings_and_they_persist(seeded):
    from queuectl_tui import settings
    from queuectl_tui.tui.screens.modals import ConfigModal

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await until(
            pilot,
            lambda: isinstance(app.screen, ConfigModal) and app.screen.rows,
            message="settings",
        )
        modal = app.screen
        await pilot.press("ctrl+a", "ctrl+k", *"-1", "ctrl+s")  # max_retries: refused
        await settle(pilot)
        assert "between 0 and 100" in str(modal.query_one("#ce-max_retries").render())
        assert settings.get("max_retries") == 3
        await pilot.press("ctrl+a", "ctrl+k", *"5", "tab", "ctrl+a", "ctrl+k", *"3", "ctrl+s")
        await until(
            pilot, lambda: not isinstance(app.screen, ConfigModal), message="the editor closing"
        )
    assert settings.get("max_retries") == 5 and settings.get("backoff_base") == 3.0
    assert settings.get("lease") == 30.0  # untouched fields are not written


# --- reading: tabs, filter, sort, pages, detail, help ------------------------------------------


async def test_number_keys_switch_tabs(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        for key, expected in [
            ("5", {"failed"}),
            ("3", {"processing"}),
            ("6", {"dead"}),
            ("2", {"pending"}),
        ]:
            await pilot.press(key)
            await until(
                pilot,
                lambda: (
                    screen.page
                    and screen.page.view.state == expected.copy().pop()
                    and screen.table.keys
                ),
                message=f"tab {key}",
            )
            assert {screen.jobs[k].state for k in screen.table.keys} == expected
        await pilot.press("1")
        await until(pilot, lambda: len(screen.table.keys) == 57, message="all jobs")


async def test_slash_filters_the_table_and_escape_clears(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        await pilot.press("slash", *"thumb-03", "enter")
        await until(
            pilot,
            lambda: screen.table.keys and all(k.startswith("thumb-03") for k in screen.table.keys),
            message="a narrowed table",
        )
        assert len(screen.table.keys) == 10 and screen.page.total == 10
        await pilot.press("escape")
        await until(pilot, lambda: len(screen.table.keys) == 57, message="the whole table")


async def test_s_sorts_and_shift_s_reverses(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        await pilot.press("s")  # priority, highest first
        await until(
            pilot, lambda: screen.table.keys[:1] == ["rotate-api-keys"], message="priority order"
        )
        await pilot.press("S")
        await until(pilot, lambda: screen.table.keys[:1] == ["cleanup-tmp"], message="reversed")


async def test_brackets_page_through_keyset_pages(seeded):
    app = make_app(seeded, page_size=20)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        first = screen.table.keys
        assert len(first) == 20 and screen.page.has_next
        await pilot.press("right_square_bracket")
        await until(
            pilot, lambda: screen.table.keys and screen.table.keys[0] not in first, message="page 2"
        )
        second = screen.table.keys
        await pilot.press("right_square_bracket", "right_square_bracket")
        await until(
            pilot, lambda: screen.page and not screen.page.has_next, message="the last page"
        )
        assert len(screen.table.keys) == 17
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: screen.table.keys == second, message="back to page 2")


async def test_the_page_is_a_screenful_and_moving_past_it_reads_the_next(seeded):
    app = make_app(seeded, page_size=None)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = main(app)
        await settle(pilot)
        first = screen.table.keys
        assert len(first) == screen.table.visible_rows < 57
        screen.table.move_cursor(row=len(first) - 1, animate=False)
        await pilot.press("down")
        await until(
            pilot, lambda: screen.table.keys and screen.table.keys[0] not in first, message="page 2"
        )
        assert screen.table.cursor_row == 0 and screen.page.has_prev
        await pilot.press("up")
        await until(pilot, lambda: screen.table.keys == first, message="page 1 again")
        assert screen.table.cursor_key == first[-1]


async def test_enter_opens_the_detail_and_escape_returns(seeded):
    from textual.widgets import Log

    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "sync-crm-contacts")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), message="the detail")
        detail = app.screen
        await until(
            pilot,
            lambda: detail.detail and "synced 1204" in "\n".join(detail.query_one(Log).lines),
            message="the latest attempt's log",
        )
        assert [a["outcome"] for a in detail.detail.attempts] == ["failed", "completed"]
        await pilot.press("up")  # attempt 1 and its log
        await until(
            pilot,
            lambda: "HTTP 503" in "\n".join(detail.query_one(Log).lines),
            message="attempt 1's log",
        )
        await pilot.press("escape")
        main(app)
        await pilot.press("l")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, JobDetailScreen)
                and app.screen.focused is app.screen.query_one(Log)
            ),
            message="the log, focused",
        )


async def test_detail_keys_retry_and_delete_the_job(seeded):
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.push_screen(JobDetailScreen("legacy-report"))
        await settle(pilot)
        await pilot.press("r")
        await until(
            pilot, lambda: state("legacy-report") == "pending", message="retried from the detail"
        )
        await pilot.press("escape")
        main(app)
        await pilot.app.push_screen(JobDetailScreen("thumb-002"))
        await settle(pilot)
        await pilot.press("d")
        await answer(pilot, "y")
        await until(pilot, lambda: job("thumb-002") is None, message="deleted from the detail")
        await until(
            pilot, lambda: not isinstance(app.screen, JobDetailScreen), message="back to the jobs"
        )


async def test_f5_refreshes_now(seeded):
    from queuectl_tui import engine, spec

    app = make_app(seeded)  # live refresh off: only the key can show the new job
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        engine.enqueue([spec.normalize({"id": "while-you-looked", "command": "true"})], now=NOW + 1)
        await pilot.pause(0.2)
        assert "while-you-looked" not in screen.table.keys
        await pilot.press("f5")
        await until(
            pilot, lambda: screen.table.keys[:1] == ["while-you-looked"], message="the refresh"
        )


async def test_detail_follows_a_running_jobs_log(seeded):
    from textual.widgets import Log

    from queuectl_tui.store.models import Attempt, Job
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = make_app(seeded, refresh_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.push_screen(JobDetailScreen("crawl-sitemap"))
        log = app.screen.query_one(Log)
        await until(
            pilot, lambda: "fetched page 12" in "\n".join(log.lines), message="the log so far"
        )
        attempt = Attempt.get(Attempt.job == Job.get(Job.id == "crawl-sitemap").seq)
        with open(app.db_path.parent / "logs" / attempt.log_file, "a") as handle:
            handle.write("fetched page 13\n")
        await until(
            pilot, lambda: "fetched page 13" in "\n".join(log.lines), message="the new line"
        )
        assert "\n".join(log.lines).count("fetched page 12") == 1


async def output_pane(pilot, app, job_id: str):
    """The main screen and its output pane, opened with o on ``job_id``."""
    from textual.widgets import Log

    screen = main(app)
    await select(pilot, job_id)
    await pilot.press("o")
    return screen, screen.query_one("#output", Log)


async def test_output_pane_follows_the_selected_jobs_log_from_the_list(seeded):
    """o opens the pane under the list: it shows the selected job's latest log, keeps
    following it as it grows, changes with the cursor, and o hides it again."""

    from queuectl_tui.store.models import Attempt, Job

    app = make_app(seeded, refresh_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen, pane = await output_pane(pilot, app, "crawl-sitemap")
        assert pane.display
        await until(
            pilot, lambda: "fetched page 12" in "\n".join(pane.lines), message="the log so far"
        )
        attempt = Attempt.get(Attempt.job == Job.get(Job.id == "crawl-sitemap").seq)
        with open(app.db_path.parent / "logs" / attempt.log_file, "a") as handle:
            handle.write("fetched page 13\n\x1b[2J\n")
        await until(
            pilot, lambda: "fetched page 13" in "\n".join(pane.lines), message="the new line"
        )
        assert "\n".join(pane.lines).count("fetched page 12") == 1
        assert "^[[2J" in "\n".join(pane.lines) and "\x1b" not in "\n".join(pane.lines)
        await select(pilot, "transcode-video-11")
        await until(
            pilot, lambda: "transcoding clip 11" in "\n".join(pane.lines), message="the other log"
        )
        assert "fetched page" not in "\n".join(pane.lines)
        assert isinstance(app.screen, type(screen))  # still on the list
        await pilot.press("o")
        assert not pane.display


async def test_output_pane_of_a_job_that_wrote_nothing_is_empty_not_a_missing_log(seeded):
    """A job's log is made at its first byte: a running job that has written nothing yet has
    no file, and the pane shows an empty log (then what it writes), not "no log file"."""
    from queuectl_tui import engine
    from queuectl_tui.store.models import Attempt, Job

    attempt = Attempt.get(Attempt.job == Job.get(Job.id == "crawl-sitemap").seq)
    log = engine.log_path(attempt)
    assert log is not None
    log.unlink()
    app = make_app(seeded, refresh_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen, pane = await output_pane(pilot, app, "crawl-sitemap")
        title = app.screen.query_one("#output-title")
        await until(pilot, lambda: "following" in str(title.render()), message="the title")
        assert "no log file" not in "\n".join(pane.lines)
        log.write_text("fetched page 1\n")
        await until(
            pilot, lambda: "fetched page 1" in "\n".join(pane.lines), message="the first line"
        )


async def test_output_pane_of_a_job_running_on_another_host_says_where_its_log_is(seeded):
    """The log stays on the worker's host: the pane says which host and file hold it, then,
    once the attempt ends, shows the last output kept in the database."""

    from queuectl_tui import engine
    from queuectl_tui.store.models import Attempt, Job

    job_row = Job.get(Job.id == "crawl-sitemap")
    attempt = Attempt.get(Attempt.job == job_row.seq)
    Attempt.update(host="afar").where(Attempt.seq == attempt.seq).execute()
    (seeded.parent / "logs" / attempt.log_file).unlink()  # on that host's disk only
    app = make_app(seeded, refresh_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen, pane = await output_pane(pilot, app, "crawl-sitemap")
        await until(
            pilot, lambda: "is on host afar" in "\n".join(pane.lines), message="where the log is"
        )
        assert "shown here when it ends" in "\n".join(pane.lines)
        assert "no log file" not in "\n".join(pane.lines)
        engine.finish(
            Job.get_by_id(job_row.seq),
            Attempt.get_by_id(attempt.seq),
            outcome="completed",
            exit_code=0,
            tail="fetched the last page\n",
        )
        await until(
            pilot,
            lambda: "fetched the last page" in "\n".join(pane.lines),
            message="the output kept in the database",
        )
        assert "is on host afar" in "\n".join(pane.lines)


async def test_question_mark_shows_help_and_the_palette_has_the_actions(seeded):
    from queuectl_tui.tui.screens.help import HelpScreen

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {
            "Enqueue",
            "Retry",
            "Retry DLQ",
            "Cancel",
            "Delete",
            "Clear DLQ",
            "Config",
            "Worker",
            "Stop worker",
            "Stop all workers",
            "Filter",
            "Help",
            "Quit",
        } <= titles
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), message="help")
        await pilot.press("escape")
        main(app)
        await pilot.press("q")
    assert app.return_code == 0


async def test_the_key_bar_shows_the_main_keys_and_a_click_presses_one(seeded):
    from queuectl_tui.tui.screens.modals import EnqueueModal
    from queuectl_tui.tui.widgets import KeyBar

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bar = main(app).query_one(KeyBar)
        text = str(bar.render())
        assert "n Enqueue" in text and "⏎ Detail" in text and "palette" in text
        start = text.index("n Enqueue")
        await pilot.click(KeyBar, offset=(start + 1, 0))
        await until(pilot, lambda: isinstance(app.screen, EnqueueModal), message="the form")


# --- live --------------------------------------------------------------------------------------


async def test_refresh_shows_changes_made_elsewhere(seeded):
    from queuectl_tui import engine, spec

    app = make_app(seeded, refresh_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        engine.enqueue([spec.normalize({"id": "from-the-cli", "command": "true"})], now=NOW + 1)
        await until(pilot, lambda: screen.table.keys[:1] == ["from-the-cli"], message="the new row")
        # A change to a visible row is an in-place cell update, not a rebuild.
        engine.cancel("from-the-cli")
        await until(
            pilot, lambda: screen.jobs["from-the-cli"].state == "dead", message="the new state"
        )
        assert "dead" in str(screen.table.get_cell("from-the-cli", "state"))
        await until(
            pilot, lambda: screen.status and screen.status.counts["dead"] == 5, message="counts"
        )


async def test_workers_started_from_the_console_run_jobs_and_outlive_it(empty_db, home, tmp_path):
    from queuectl_tui import engine, procs, spec
    from queuectl_tui.store.models import Worker

    engine.enqueue(
        [spec.normalize({"id": "hello", "command": "echo hi > out.txt"})], cwd=str(tmp_path)
    )
    app = make_app(empty_db, clock=time.time, monitor=None, refresh_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await pilot.press("plus")
        await until(
            pilot, lambda: state("hello") == "completed", timeout=30, message="the job done"
        )
        await until(
            pilot, lambda: screen.status and screen.status.alive == 1, message="the worker shown"
        )
        await pilot.press("q")
    assert (tmp_path / "out.txt").read_text() == "hi\n"
    (row,) = Worker.select()
    assert procs.same_process(row.pid, row.proc_started) is not None  # still running


async def test_minus_stops_one_worker_and_x_stops_all(empty_db):
    from queuectl_tui.run import supervisor
    from queuectl_tui.store.models import Worker

    supervisor.start(empty_db, 2)  # as 'worker start -n 2' would: the console shows them
    app = make_app(empty_db, clock=time.time, monitor=None, refresh_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await until(
            pilot, lambda: screen.status and screen.status.alive == 2, message="two workers"
        )
        await pilot.press("minus")
        await answer(pilot, "y")
        await until(pilot, lambda: Worker.select().count() == 1, timeout=15, message="one stopped")
        await pilot.press("X")
        await answer(pilot, "y")
        await until(pilot, lambda: Worker.select().count() == 0, timeout=15, message="all stopped")


async def test_a_worker_started_with_plus_leaves_no_zombie_once_stopped(empty_db):
    import psutil

    from queuectl_tui.store.models import Worker

    def zombie(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    app = make_app(empty_db, clock=time.time, monitor=None, refresh_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await pilot.press("plus")
        await until(
            pilot,
            lambda: screen.status and screen.status.alive == 1,
            timeout=15,
            message="the worker shown",
        )
        (row,) = Worker.select()
        assert psutil.Process(row.pid).ppid() == os.getpid()  # the console's child
        await pilot.press("minus")
        await answer(pilot, "y")
        await until(pilot, lambda: Worker.select().count() == 0, timeout=15, message="stopped")
        await until(pilot, lambda: not zombie(row.pid), timeout=5, message="the worker reaped")


# --- trouble -----------------------------------------------------------------------------------


async def test_a_locked_database_is_a_message_and_the_console_recovers(empty_db):
    from queuectl_tui.store import close_db

    close_db()  # only the locker below has the file open (an open WAL reader would stop it)
    # Taken before the console opens: the console keeps its connections, and no process can
    # lock a WAL database exclusively while another has it open.
    locker = sqlite3.connect(empty_db, isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("INSERT INTO meta (key, value) VALUES ('lock', '1')")
    app = make_app(empty_db, refresh_interval=0.1)
    app.slow_read_warning = 0.3
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        try:
            banner = screen.query_one("#banner")
            await until(
                pilot,
                lambda: "lock" in str(banner.render()) and banner.has_class("-show"),
                message="the locked message",
            )
            await pilot.press("2")  # still answers keys
            assert screen.view.state == "pending"
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await until(
            pilot,
            lambda: not screen.query_one("#banner").has_class("-show"),
            timeout=20,
            message="recovery",
        )


@pytest.mark.parametrize("kind", ["missing", "not-a-database"])
async def test_an_unusable_database_is_a_message_not_a_traceback(tmp_path, kind):
    path = tmp_path / "queuectl.db"
    if kind == "not-a-database":
        path.write_bytes(b"this is not sqlite" * 100)
    app = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = main(app)
        await settle(pilot)
        text = str(screen.query_one("#banner").render())
        assert ("no database" if kind == "missing" else "not a queuectl database") in text
        await pilot.press("n", "escape", "question_mark", "escape", "2")
        await settle(pilot)
    assert app.return_code in (None, 0)
    assert kind != "missing" or not path.exists()  # the console never creates a database


# --- user text is shown, never interpreted -------------------------------------------------------


async def test_markup_in_ids_and_commands_is_shown_as_text(seeded):
    """Rich markup in a legal id or command crashed the confirm dialogs (and the console)."""
    from queuectl_tui import engine, spec
    from queuectl_tui.tui.screens.modals import ConfirmModal

    engine.enqueue(
        [
            spec.normalize({"id": "a[/x]", "command": "echo [bold red]hi[/]"}),
            spec.normalize({"id": "[red]b", "command": "true"}),
        ],
        now=NOW,
    )
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "a[/x]")
        await pilot.press("c")
        await answer(pilot, "y")
        await until(pilot, lambda: state("a[/x]") == "dead", message="cancelled")
        await settle(pilot)
        await select(pilot, "a[/x]")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), message="the question")
        assert "job a[/x]" in str(app.screen.query_one(".confirm-text").render())
        await pilot.press("y")
        await until(pilot, lambda: job("a[/x]") is None, message="deleted")
        await settle(pilot)
        await select(pilot, "[red]b")
        await pilot.press("slash", *"[/", "enter")  # a filter that is not valid markup either
        await settle(pilot)
        assert "'[/'" in str(app.screen.query_one("#pager").render())
        assert app.is_running and main(app)


async def test_escape_sequences_in_a_log_are_shown_not_sent_to_the_terminal(seeded):
    from textual.widgets import Log

    from queuectl_tui.store.models import Attempt, Job
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = make_app(seeded, refresh_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        attempt = Attempt.get(Attempt.job == Job.get(Job.id == "crawl-sitemap").seq)
        with open(app.db_path.parent / "logs" / attempt.log_file, "a") as handle:
            handle.write("\x1b]2;renamed\x07\x1b[2Jafter\ttab\n")
        await pilot.app.push_screen(JobDetailScreen("crawl-sitemap"))
        log = app.screen.query_one(Log)
        await until(pilot, lambda: "after" in "\n".join(log.lines), message="the new line")
        text = "\n".join(log.lines)
        assert "^[]2;renamed^G^[[2Jafter\ttab" in text and "\x1b" not in text


async def test_a_stopping_worker_still_running_its_job_counts_as_busy(seeded):
    """After a normal stop a worker finishes its job: the header and the workers pane must still
    count it busy (as `status` does), not idle."""
    from queuectl_tui.store.models import Worker
    from queuectl_tui.tui.widgets.counts import CountsHeader

    busy = list(Worker.select().where(Worker.status == "busy"))
    assert len(busy) == 2 and all(w.current_job for w in busy)
    Worker.update(status="stopping").where(Worker.id == busy[0].id).execute()
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        header = main(app).query_one(CountsHeader)
        assert header._data[2] == 2
        title = str(main(app).query_one("#workers-title").render())
        assert "2 busy" in title


# --- queues: pause, resume, limits ---------------------------------------------------------------


def queue_row(name: str) -> dict:
    from queuectl_tui import engine

    return next(row for row in engine.queue_rows() if row["name"] == name)


async def test_p_pauses_and_resumes_the_selected_jobs_queue(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "charge-card-7731")  # queue payments
        await pilot.press("p")
        await until(pilot, lambda: queue_row("payments")["paused"], message="payments paused")
        assert not queue_row("default")["paused"]
        await until(
            pilot,
            lambda: "paused: payments" in str(main(app).query_one("#pager").render()),
            message="the pager saying so",
        )
        await pilot.press("p")
        await until(pilot, lambda: not queue_row("payments")["paused"], message="payments resumed")


async def test_shift_p_pauses_every_queue_then_resumes_them(seeded):
    from queuectl_tui import engine
    from queuectl_tui.tui.data import paused_all

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("P")
        await until(pilot, paused_all, message="every queue paused")
        assert all(row["paused"] for row in engine.queue_rows())
        await pilot.press("P")
        await until(pilot, lambda: not paused_all(), message="every queue resumed")
        assert not any(row["paused"] for row in engine.queue_rows())


async def test_queues_screen_pauses_and_sets_and_clears_a_limit(seeded):
    from queuectl_tui import engine
    from queuectl_tui.tui.screens.modals import LimitModal
    from queuectl_tui.tui.screens.queues import QueuesScreen

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("Q")
        screen = await until(
            pilot, lambda: isinstance(app.screen, QueuesScreen) and app.screen, message="queues"
        )
        await until(pilot, lambda: "media" in screen.table.keys, message="the rows")
        assert screen.table.keys == ["default", "mail", "media", "payments", "reports"]
        screen.table.move_cursor(row=screen.table.keys.index("media"), animate=False)
        await pilot.press("p")
        await until(pilot, lambda: queue_row("media")["paused"], message="media paused")
        await until(
            pilot,
            lambda: "paused" in str(screen.table.get_cell("media", "paused")),
            message="shown",
        )
        await pilot.press("l")
        modal = await until(
            pilot, lambda: isinstance(app.screen, LimitModal) and app.screen, message="the form"
        )
        await pilot.press(*"-1", "enter")
        await settle(pilot)
        assert "whole number >= 0" in str(modal.query_one("#e-limit").render())
        assert queue_row("media")["limit"] is None
        await pilot.press("ctrl+a", "ctrl+k", *"2", "ctrl+s")
        await until(pilot, lambda: queue_row("media")["limit"] == 2, message="limit 2")
        await until(
            pilot,
            lambda: app.screen is screen and "2" in str(screen.table.get_cell("media", "limit")),
            message="the limit shown",
        )
        await pilot.press("l", "ctrl+a", "ctrl+k", *"none", "enter")
        await until(
            pilot,
            lambda: (
                app.screen is screen
                and queue_row("media")["limit"] is None
                and "none" in str(screen.table.get_cell("media", "limit"))
            ),
            message="no limit",
        )
        await pilot.press("P")
        await until(
            pilot,
            lambda: all(row["paused"] for row in engine.queue_rows()),
            message="every queue paused",
        )
        await pilot.press("escape")
        main(app)


# --- restart, edit, dependencies ------------------------------------------------------------------


def shown(widget, width: int = 120) -> str:
    """What a Static shows (a Text or a rich Table), as plain text."""
    from rich.console import Console

    console = Console(width=width, color_system=None)
    with console.capture() as capture:
        console.print(widget.content)
    return capture.get()


def notes(app) -> str:
    """The notifications the console is showing, as one text."""
    return "\n".join(n.message for n in app._notifications)


def attempts_of(job_id: str) -> list[int]:
    from queuectl_tui.store.models import Attempt

    return [
        a.number
        for a in Attempt.select().where(Attempt.job == job(job_id).seq).order_by(Attempt.number)
    ]


async def test_t_restarts_completed_and_dead_jobs_keeping_their_attempts(seeded):
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "sync-crm-contacts")  # completed on its second attempt
        await pilot.press("t")
        await until(pilot, lambda: state("sync-crm-contacts") == "pending", message="restarted")
        assert job("sync-crm-contacts").attempts == 0 and attempts_of("sync-crm-contacts") == [1, 2]
        await select(pilot, "legacy-report")  # dead
        await pilot.press("t")
        await until(
            pilot, lambda: state("legacy-report") == "pending", message="dead one restarted"
        )
        # A pending job is not restarted: the console says why and changes nothing.
        await select(pilot, "warm-cache")
        await pilot.press("t")
        await until(
            pilot, lambda: "only completed or dead jobs" in notes(app), message="the refusal"
        )
        assert state("warm-cache") == "pending" and job("warm-cache").attempts == 0


async def test_t_restarts_the_job_from_its_detail(seeded):
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.push_screen(JobDetailScreen("nightly-backup"))
        await settle(pilot)
        await pilot.press("t")
        await until(
            pilot, lambda: state("nightly-backup") == "pending", message="restarted from the detail"
        )
        assert attempts_of("nightly-backup") == [1]


async def test_shift_e_edits_a_pending_job_and_refuses_bad_values_in_the_form(seeded):
    from queuectl_tui.tui.screens.modals import EditModal

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "warm-cache")
        await pilot.press("E")
        modal = await until(
            pilot, lambda: isinstance(app.screen, EditModal) and app.screen, message="the form"
        )
        assert modal.query_one("#f-command").value == job("warm-cache").command
        modal.query_one("#f-max_retries").value = ""
        await pilot.press("tab", "ctrl+a", "ctrl+k", *"high", "ctrl+s")  # priority
        await settle(pilot)
        assert "whole number" in str(modal.query_one("#e-priority").render())
        assert "cannot empty" in str(modal.query_one("#e-max_retries").render())
        assert job("warm-cache").priority == 3 and isinstance(app.screen, EditModal)
        await pilot.press("ctrl+a", "ctrl+k", *"8")
        modal.query_one("#f-max_retries").value = "3"
        modal.query_one("#f-queue").value = "media"
        modal.query_one("#f-delay").value = "60"
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: not isinstance(app.screen, EditModal), message="the form closing"
        )
        edited = job("warm-cache")
        assert (edited.priority, edited.queue, edited.state) == (8, "media", "pending")
        assert edited.run_at == NOW + 60 and edited.max_retries == 3
        assert edited.command == 'echo "warming 48 pages"; sleep 2; echo "cache warm"'  # untouched


async def test_shift_e_refuses_a_running_job_with_the_reason(seeded):
    from queuectl_tui.tui.screens.modals import EditModal

    before = job("crawl-sitemap")
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "crawl-sitemap")
        await pilot.press("E")
        await until(
            pilot,
            lambda: (
                "crawl-sitemap is processing: only pending or failed jobs can be edited"
                in notes(app)
            ),
            message="the refusal",
        )
        assert not isinstance(app.screen, EditModal)
    after = job("crawl-sitemap")
    assert (after.state, after.command, after.priority, after.updated_at) == (
        before.state,
        before.command,
        before.priority,
        before.updated_at,
    )


async def test_the_edit_form_shows_the_engines_refusal_when_the_job_started_meanwhile(seeded):
    """The form was opened on a pending job that a worker then claimed: ``edit`` refuses it and
    the form says so (nothing changes)."""
    from queuectl_tui.store.models import Job
    from queuectl_tui.tui.screens.modals import EditModal

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "reindex-search")
        await pilot.press("E")
        modal = await until(
            pilot, lambda: isinstance(app.screen, EditModal) and app.screen, message="the form"
        )
        Job.update(state="processing").where(Job.id == "reindex-search").execute()
        await pilot.press("tab", "ctrl+a", "ctrl+k", *"4", "ctrl+s")
        await until(
            pilot,
            lambda: (
                "processing" in str(modal.query_one("#e-form").render())
                or "running" in str(modal.query_one("#e-form").render())
            ),
            message="the refusal",
        )
        assert job("reindex-search").priority == 0 and isinstance(app.screen, EditModal)


async def test_enqueue_form_after_field_makes_the_job_wait_and_refuses_unknown_ids(seeded):
    from queuectl_tui import engine
    from queuectl_tui.store.models import Job
    from queuectl_tui.tui.screens.modals import EnqueueModal

    before = Job.select().count()
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n", *"echo deploy", "tab", *"deploy-1")
        modal = app.screen
        modal.query_one("#f-after").value = "warm-cache, no-such-job"
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: "no-such-job" in str(modal.query_one("#e-after").render()),
            message="the unknown id refused under the field",
        )
        assert Job.select().count() == before and isinstance(app.screen, EnqueueModal)
        modal.query_one("#f-after").value = "warm-cache reindex-search"
        await pilot.press("ctrl+s")
        created = await until(pilot, lambda: job("deploy-1"), message="the new job")
        assert set(engine.dependencies(created)) == {
            ("warm-cache", "pending"),
            ("reindex-search", "pending"),
        }
        assert created.waiting_on == 2


async def test_detail_lists_dependencies_with_their_states_and_why_the_job_waits(seeded):
    from queuectl_tui import engine, spec
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    engine.enqueue(
        [
            spec.normalize(
                {"id": "publish", "command": "true", "after": ["nightly-backup", "warm-cache"]}
            )
        ],
        now=NOW,
    )
    app = make_app(seeded)
    async with app.run_test(size=(100, 35)) as pilot:  # one column of fields
        await pilot.app.push_screen(JobDetailScreen("publish"))
        await settle(pilot)
        fields = " ".join(shown(app.screen.query_one("#fields"), width=100).split())
        assert "queue default after nightly-backup completed, warm-cache pending priority" in fields
        title = shown(app.screen.query_one("#detail-title"))
        assert "warm-cache" in title


async def test_detail_keys_pause_the_jobs_queue_and_edit_the_job(seeded):
    from queuectl_tui.tui.screens.detail import JobDetailScreen
    from queuectl_tui.tui.screens.modals import EditModal

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.push_screen(JobDetailScreen("transcode-video-17"))  # pending, queue media
        detail = app.screen
        await settle(pilot)
        await pilot.press("p")
        await until(pilot, lambda: queue_row("media")["paused"], message="media paused")
        await until(
            pilot,
            lambda: "paused" in shown(detail.query_one("#detail-title")),
            message="why it waits",
        )
        await pilot.press("E")
        modal = await until(
            pilot, lambda: isinstance(app.screen, EditModal) and app.screen, message="the form"
        )
        modal.query_one("#f-priority").value = "6"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: job("transcode-video-17").priority == 6, message="edited")
        await until(pilot, lambda: app.screen is detail, message="back on the detail")
        await pilot.press("p")
        await until(pilot, lambda: not queue_row("media")["paused"], message="media resumed")


async def test_the_forms_take_durations_and_none_for_no_time_limit(seeded):
    """With default_timeout set, the enqueue form's 'none' gives a job no time limit and the
    edit form's takes one away; delays are durations, as on the command line."""
    from queuectl_tui import engine, settings
    from queuectl_tui.tui.screens.modals import EditModal, EnqueueModal

    settings.set_value("default_timeout", "1h")
    engine.edit("warm-cache", {"timeout": 30})
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        modal = await until(
            pilot, lambda: isinstance(app.screen, EnqueueModal) and app.screen, message="the form"
        )
        for name, value in (
            ("command", "echo unlimited"),
            ("id", "unlimited"),
            ("timeout", "none"),
            ("delay", "15m"),
        ):
            modal.query_one(f"#f-{name}").value = value
        await pilot.press("ctrl+s")
        created = await until(pilot, lambda: job("unlimited"), message="the new job")
        assert (created.timeout, created.run_at) == (None, NOW + 900)
        await until(
            pilot, lambda: not isinstance(app.screen, EnqueueModal), message="the form closing"
        )
        await select(pilot, "warm-cache")
        await pilot.press("E")
        modal = await until(
            pilot, lambda: isinstance(app.screen, EditModal) and app.screen, message="the edit form"
        )
        assert modal.query_one("#f-timeout").value == "30"
        modal.query_one("#f-timeout").value = "none"
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: not isinstance(app.screen, EditModal), message="the edit form closing"
        )
        assert job("warm-cache").timeout is None


# --- schedules ------------------------------------------------------------------------------------


async def test_schedules_screen_adds_pauses_runs_and_removes_a_schedule(seeded):
    from queuectl_tui import schedules
    from queuectl_tui.store.models import Job
    from queuectl_tui.tui.screens.schedules import ScheduleModal, SchedulesScreen

    def listed(name: str):
        return next((r for r in schedules.rows() if r["name"] == name), None)

    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("C")
        screen = await until(
            pilot,
            lambda: isinstance(app.screen, SchedulesScreen) and app.screen,
            message="schedules",
        )
        await pilot.press("n")
        form = await until(
            pilot, lambda: isinstance(app.screen, ScheduleModal) and app.screen, message="the form"
        )
        await pilot.press(
            *"tick", "tab", *"echo tick", "tab", "tab", *"15m", "tab", *"Mars/Olympus", "enter"
        )
        await settle(pilot)
        assert "--tz applies to --cron" in str(form.query_one("#e-tz").render())
        assert listed("tick") is None  # refused: nothing added
        form.query_one("#f-tz").value = ""
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: app.screen is screen and "tick" in screen.table.keys, message="added"
        )
        assert (listed("tick")["rule"], listed("tick")["command"]) == ("every 15m", "echo tick")
        await pilot.press("p")
        await until(pilot, lambda: listed("tick")["paused"], message="paused")
        await until(
            pilot, lambda: "paused" in str(screen.table.get_cell("tick", "next")), message="shown"
        )
        await pilot.press("p")
        await until(pilot, lambda: not listed("tick")["paused"], message="resumed")
        await pilot.press("r")
        await until(
            pilot,
            lambda: Job.select().where(Job.schedule == "tick").count() == 1,
            message="one job now",
        )
        await until(
            pilot,
            lambda: "tick@" in str(screen.table.get_cell("tick", "last")),
            message="its job shown",
        )
        await pilot.press("d")
        await answer(pilot, "n")
        await settle(pilot)
        assert listed("tick") is not None  # no: nothing removed
        await pilot.press("d")
        await answer(pilot, "y")
        await until(
            pilot, lambda: listed("tick") is None and screen.table.keys == [], message="removed"
        )
        assert Job.select().where(Job.schedule == "tick").count() == 1  # its job stays
        await pilot.press("escape")
        main(app)
