"""The console's stats screen driven by its keys: the figures of ``stats`` for its window."""

from __future__ import annotations

import pytest

from queuectl_tui import metrics
from tui_support import NOW, make_app, settle

pytestmark = pytest.mark.usefixtures("stable_terminal")


def shown(app) -> str:
    """The figures as the screen lays them out, as plain text."""
    from rich.console import Console
    from textual.widgets import Static

    console = Console(width=118, record=True, file=open("/dev/null", "w"))
    console.print(app.screen.query_one("#stats", Static).content)
    console.file.close()
    return console.export_text()


@pytest.mark.both_backends
async def test_stats_screen_shows_the_windows_figures_and_goes_back(seeded):
    from queuectl_tui.tui.screens.main import MainScreen
    from queuectl_tui.tui.screens.stats import StatsScreen

    app = make_app(seeded)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, StatsScreen)
        hour = metrics.execution_stats(NOW - 3600, None, NOW)["overall"]
        assert f"all queues         {hour['completed']}      {hour['failed_attempts']}" in shown(
            app
        )
        for _ in range(3):  # 6 h, 24 h, then 15 min: fewer of the sample runs
            await pilot.press("w")
            await settle(pilot)
        quarter = metrics.execution_stats(NOW - 900, None, NOW)["overall"]
        assert app.screen.window == 900 and quarter["completed"] < hour["completed"]
        assert f"all queues         {quarter['completed']:>2}" in shown(app)
        assert "last 15m" in str(app.screen.query_one("#stats-title").content)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
