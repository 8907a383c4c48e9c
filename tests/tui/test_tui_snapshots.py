"""Snapshots of the console's screens (pytest-textual-snapshot), on the seeded sample history.

Time is frozen at NOW, ids are the seed's, the workers' PIDs/CPU/memory are pinned, TZ is UTC
and live refresh is off, so a difference is a change in what the screen shows. Update after a
deliberate change with ``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and look at the
SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from queuectl_tui import procs

from tui_support import make_app, settle

pytestmark = pytest.mark.usefixtures("stable_terminal")

WIDE = (120, 35)


def run(*keys: str, then=None):
    async def before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if then is not None:
            await then(pilot)
            await settle(pilot)

    return before


@pytest.mark.parametrize("tab", ["1", "2", "3", "4", "5"])
def test_main_screen_tabs(snap_compare, seeded, tab):
    """Each state tab of the jobs table, with the workers pane and the throughput line."""
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(tab))


def test_dlq_with_entries(snap_compare, seeded):
    """The DLQ tab: each dead job with its last error."""
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("6"))


def test_workers_pane_with_running_workers(snap_compare, seeded):
    """Every worker column (wide terminal), the pane focused so its cursor shows."""
    assert snap_compare(make_app(seeded), terminal_size=(150, 35), run_before=run("tab"))


def test_job_detail_with_attempts_and_log(snap_compare, seeded):
    """A job that failed three times: its fields, its attempts, the last attempt's log."""

    async def open_detail(pilot) -> None:
        from queuectl_tui.tui.screens.detail import JobDetailScreen

        await pilot.app.push_screen(JobDetailScreen("fetch-exchange-rates"))

    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(then=open_detail))


def test_job_detail_of_a_running_job_shows_its_process_tree(
    snap_compare, seeded, stand_in, monkeypatch
):
    """A running job: its live process tree (ps f order, control characters shown visibly)
    and the chart of its CPU and memory over the attempt (pinned by the fake monitor)."""
    from queuectl_tui import present

    explain = present.explain  # "running on worker 1 (pid P on HOST)": P pinned as the monitor's
    monkeypatch.setattr(
        present,
        "explain",
        lambda job, **kw: explain(job, **kw).replace(
            f"pid {stand_in} on {procs.hostname()}", "pid 4100 on demo"
        ),
    )

    async def open_detail(pilot) -> None:
        from queuectl_tui.tui.screens.detail import JobDetailScreen

        await pilot.app.push_screen(JobDetailScreen("transcode-video-11"))

    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(then=open_detail))


def test_output_pane_follows_the_selected_running_job(snap_compare, seeded):
    """o on the Processing tab: the pane shows the selected running job's log under the list."""
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("3", "o"))


def test_output_pane_moves_with_the_cursor(snap_compare, seeded):
    """The pane follows the cursor: the next row's log replaces the first one's."""
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("3", "o", "down"))


def test_enqueue_modal_shows_validation_errors(snap_compare, seeded):
    keys = ["n", *"echo hi", "tab", "tab", *"x1", "tab", "tab", *"-5", "ctrl+s"]
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(*keys))


def test_config_editor_rejects_a_bad_value(snap_compare, seeded):
    """Every setting with its default; a bad max_retries refused under its field."""
    keys = ["e", "ctrl+a", "ctrl+k", *"101", "ctrl+s"]
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(*keys))


def test_stats_screen(snap_compare, seeded):
    """Execution stats of the sample history's last hour: per queue, the chart, the errors."""
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("m"))


def test_stats_screen_80x24(snap_compare, seeded):
    assert snap_compare(make_app(seeded), terminal_size=(80, 24), run_before=run("m"))


def test_help_lists_the_keys(snap_compare, seeded):
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("question_mark"))


def test_help_80x24_says_it_scrolls(snap_compare, seeded):
    assert snap_compare(make_app(seeded), terminal_size=(80, 24), run_before=run("question_mark"))


def test_retry_dlq_question(snap_compare, seeded):
    """R: how many jobs, and that each gets a fresh retry budget while its numbers go on."""
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("R"))


def test_clear_dlq_question(snap_compare, seeded):
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("D"))


def test_completed_job_detail_offers_restart(snap_compare, seeded):
    """A completed job's footer: t Restart, and none of the keys that would refuse it."""

    async def open_detail(pilot) -> None:
        from queuectl_tui.tui.screens.detail import JobDetailScreen

        await pilot.app.push_screen(JobDetailScreen("nightly-backup"))

    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(then=open_detail))


def test_layout_80x24(snap_compare, seeded):
    """The smallest supported terminal: narrower columns, every pane still there."""
    assert snap_compare(make_app(seeded), terminal_size=(80, 24), run_before=run())


@pytest.fixture
def chunks(seeded):
    """The sample history and a batch of 30 jobs whose ids differ only at their end."""
    from queuectl_tui import engine, spec
    from tui_support import NOW, SEED_CWD

    engine.enqueue(
        [
            spec.normalize(
                {
                    "id": f"report-chunk-{n:02d}",
                    "queue": "reports",
                    "command": f'echo "chunk {n}"; sleep 2',
                    "delay": 20 * n,
                },
                now=NOW,
            )
            for n in range(1, 31)
        ],
        cwd=SEED_CWD,
        env={},
        now=NOW,
    )
    return seeded


@pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])
def test_ids_are_whole_where_they_fit_and_cut_in_their_middle_where_not(snap_compare, chunks, size):
    """Pending, next run soonest: transcode-video-17 and report-chunk-01, -02 … Whole at 120
    columns; at 80 cut in the middle (their ends stay), the last error giving way first."""
    assert snap_compare(make_app(chunks), terminal_size=size, run_before=run("2", "s", "s"))


def test_job_detail_80x24(snap_compare, seeded):
    async def open_detail(pilot) -> None:
        from queuectl_tui.tui.screens.detail import JobDetailScreen

        await pilot.app.push_screen(JobDetailScreen("sync-crm-contacts"))

    assert snap_compare(make_app(seeded), terminal_size=(80, 24), run_before=run(then=open_detail))


def test_empty_database_says_how_to_start(snap_compare, empty_db):
    assert snap_compare(make_app(empty_db), terminal_size=(80, 24), run_before=run())


def test_missing_database_is_a_message(snap_compare):
    assert snap_compare(
        make_app(Path("/nonexistent/queuectl.db")), terminal_size=(80, 24), run_before=run()
    )


def _queue_settings() -> None:
    """One queue paused, one limited: what the queues screen and the main screen show of them."""
    from queuectl_tui import engine

    engine.pause(["payments"])
    engine.set_limit("reports", 2)


def test_queues_screen(snap_compare, seeded):
    """Every queue with its jobs per state, paused or not, and its running limit."""
    _queue_settings()
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("Q"))


def test_queues_screen_80x24(snap_compare, seeded):
    _queue_settings()
    assert snap_compare(make_app(seeded), terminal_size=(80, 24), run_before=run("Q"))


def test_limit_form_refuses_a_bad_limit(snap_compare, seeded):
    _queue_settings()
    keys = ["Q", "down", "down", "down", "down", "l", "ctrl+a", "ctrl+k", *"two", "enter"]
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(*keys))


def test_main_screen_says_which_queues_are_paused(snap_compare, seeded):
    _queue_settings()
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("6"))


def test_blocked_jobs_say_what_they_wait_for(snap_compare, seeded):
    """The Pending tab: a due job's When says what holds it (after a job, a paused queue, a
    queue at its limit) instead of "due"; a label is shown beside its job's id."""
    from queuectl_tui import engine, spec
    from tui_support import NOW, SEED_CWD

    _queue_settings()
    engine.set_limit("reports", 0)
    engine.enqueue(
        [
            spec.normalize(
                {
                    "id": "site",
                    "command": "./publish.sh",
                    "label": "weekly",
                    "after": ["warm-cache"],
                }
            ),
            spec.normalize({"id": "refund-batch", "command": "./refunds.sh", "queue": "payments"}),
            spec.normalize({"id": "report-q4", "command": "./report.sh q4", "queue": "reports"}),
        ],
        cwd=SEED_CWD,
        now=NOW,
    )
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("2"))


def test_edit_form_refuses_a_bad_value(snap_compare, seeded):
    """The edit form on a pending job (third row), its values filled in, a bad priority refused."""
    keys = ["down", "down", "E", "tab", "ctrl+a", "ctrl+k", *"high", "ctrl+s"]
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(*keys))


def test_edit_refused_for_a_running_job(snap_compare, seeded):
    """E on a running job (the first row): no form, a notification saying why."""
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("E"))


def test_enqueue_form_refuses_an_unknown_dependency(snap_compare, seeded):
    keys = ["n", *"echo deploy", *["tab"] * 8, *"warm-cache no-such-job", "ctrl+s"]
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(*keys))


def test_job_detail_with_dependencies(snap_compare, seeded):
    """A job waiting for two others: each with its state, and why it waits in the title."""
    from queuectl_tui import engine, spec
    from tui_support import NOW, SEED_CWD

    engine.enqueue(
        [
            spec.normalize(
                {
                    "id": "publish-site",
                    "command": "./publish.sh",
                    "after": ["build-frontend", "warm-cache"],
                }
            )
        ],
        cwd=SEED_CWD,
        now=NOW,
    )

    async def open_detail(pilot) -> None:
        from queuectl_tui.tui.screens.detail import JobDetailScreen

        await pilot.app.push_screen(JobDetailScreen("publish-site"))

    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(then=open_detail))


def _schedules() -> None:
    """Three schedules on the frozen clock: one that made a job, a paused one in a zone, and a
    no-overlap one that skipped a due time."""
    from queuectl_tui import schedules
    from tui_support import NOW, SEED_CWD

    add = {"cwd": str(SEED_CWD), "env": {}}
    schedules.add(
        "backup",
        {"command": "./backup.sh --full", "queue": "reports"},
        cron="30 3 * * *",
        tz="Europe/Paris",
        now=NOW - 86400,
        **add,
    )
    schedules.add(
        "ping",
        {"command": "curl -fsS https://example.org/health"},
        every="5m",
        now=NOW - 600,
        **add,
    )
    schedules.add(
        "sync", {"command": "./sync.sh"}, every="1m", no_overlap=True, now=NOW - 150, **add
    )
    schedules.enqueue_due(now=NOW - 89, grace=30)  # sync's first
    schedules.enqueue_due(now=NOW - 20, grace=30)  # ping's second, sync skipped
    schedules.pause("backup")


def test_schedules_screen(snap_compare, seeded):
    """Each schedule with its rule, next run, last run, last job's state, paused, and the last
    due time that made no job and why."""
    _schedules()
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run("C", "down", "down"))


def test_schedule_form_refuses_a_bad_cron(snap_compare, seeded):
    keys = ["C", "n", *"nightly", "tab", *"true", "tab", *"0 3 * *", "enter"]
    assert snap_compare(make_app(seeded), terminal_size=WIDE, run_before=run(*keys))
