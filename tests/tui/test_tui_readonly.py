"""The read-only console (``queuectl-tui web --read-only``): every key that would change the
queue, its settings or its workers is refused and says so; the view keys work; nothing changes
in the database."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from tui_support import make_app, settle, until

pytestmark = pytest.mark.usefixtures("stable_terminal")

SIZE = (120, 35)


def told(app) -> list[str]:
    """Every notification the app gives from now on (the shown ones expire)."""
    said, notify = [], app.notify

    def record(message, **kwargs):
        said.append(message)
        notify(message, **kwargs)

    app.notify = record
    return said


def snapshot() -> list[tuple]:
    """Every job's state and run time, the settings, the queues' pauses and limits."""
    from queuectl_tui.store.models import Job, Meta, Queue, Setting

    return [
        sorted((j.id, j.state, j.run_at, j.attempts) for j in Job.select()),
        sorted((s.key, s.value) for s in Setting.select()),
        sorted((m.key, m.value) for m in Meta.select()),
        sorted((q.name, q.paused, q.max_running) for q in Queue.select()),
    ]


async def test_read_only_refuses_every_change_and_says_so(seeded, monkeypatch):
    from queuectl_tui.run import supervisor
    from queuectl_tui.tui.screens.main import MainScreen

    started = []
    monkeypatch.setattr(supervisor, "start", lambda *a, **k: started.append(a))
    before = snapshot()
    app = make_app(seeded, page_size=100, read_only=True)
    said = told(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        await pilot.press("6")  # the DLQ: r would retry its first job
        await until(pilot, lambda: "charge-card-7731" in screen.table.keys, message="the DLQ")
        for key in ["n", "r", "R", "t", "E", "c", "d", "D", "e", "p", "P", "plus", "minus", "X"]:
            await pilot.press(key)
            await settle(pilot)
            assert app.screen is screen, f"{key} opened {app.screen}"
        assert said[0] == "read-only console: enqueue refused"
        assert len(said) == 14 and all(s.startswith("read-only console:") for s in said), said
        await screen.run_action("enqueue")  # as the command palette runs it
        assert isinstance(app.screen, MainScreen)
        await pilot.press("enter")  # the detail: its own changing keys are refused too
        await until(pilot, lambda: app.screen is not screen, message="the detail")
        for key in ["r", "t", "E", "p", "c", "d"]:
            await pilot.press(key)
            await settle(pilot)
        assert len(said) == 21 and all(s.startswith("read-only console:") for s in said), said
    assert snapshot() == before and not started


async def test_read_only_keeps_the_view_keys(seeded):
    from queuectl_tui.tui.screens.help import HelpScreen
    from queuectl_tui.tui.screens.queues import QueuesScreen
    from queuectl_tui.tui.screens.stats import StatsScreen

    before = snapshot()
    app = make_app(seeded, page_size=100, read_only=True)
    said = told(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert "read-only" in app.sub_title
        await pilot.press("2")
        await until(pilot, lambda: screen.view.state == "pending", message="the Pending tab")
        await pilot.press("s", "o", "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), message="help")
        await pilot.press("escape", "m")
        await until(pilot, lambda: isinstance(app.screen, StatsScreen), message="stats")
        await pilot.press("escape", "Q")
        await until(pilot, lambda: isinstance(app.screen, QueuesScreen), message="queues")
        await settle(pilot)
        await pilot.press("p", "l")  # pause, limit: refused here too
        await settle(pilot)
        assert isinstance(app.screen, QueuesScreen)
        assert said == ["read-only console: pause refused", "read-only console: limit refused"]
    assert snapshot() == before


async def test_the_key_bar_leaves_out_the_refused_keys(seeded):
    from queuectl_tui.tui.widgets import KeyBar

    app = make_app(seeded, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        keys, _palette = app.screen.query_one(KeyBar).keys()
        shown = {description for _key, _display, description in keys}
        assert {"Stats", "Output", "Filter", "Queues", "Quit", "Help"} <= shown
        assert not shown & {"Enqueue", "Retry", "Config", "Worker"}, shown
        assert "read-only" in str(app.screen.query_one(KeyBar).render())


def console_actions() -> dict[str, set[str]]:
    """Class name -> the actions (``action_x`` methods) it defines, for every class of the
    console's modules."""
    import queuectl_tui.tui as package

    found: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if inspect.isclass(cls) and cls.__module__ == module.__name__:
                names = {
                    n.removeprefix("_").removeprefix("action_")
                    for n in vars(cls)
                    if n.startswith(("action_", "_action_"))
                }
                if names:
                    found[cls.__name__] = names
    return found


def test_every_console_action_is_either_a_read_or_a_change():
    """A new action must be put in one list: unlisted, read-only mode refuses it."""
    from queuectl_tui.tui.readonly import CHANGES, READS

    for cls, names in console_actions().items():
        reads, changes = READS.get(cls, set()), CHANGES.get(cls, set())
        assert not reads & changes, f"{cls}: {reads & changes} in both lists"
        unlisted = names - reads - changes
        assert not unlisted, f"{cls}: {sorted(unlisted)} in neither list of tui/readonly.py"
    actions = console_actions()
    stale = {
        (cls, name)
        for table in (READS, CHANGES)
        for cls, names in table.items()
        for name in names
        if name not in actions.get(cls, ())
    }
    assert not stale, f"listed but not defined: {sorted(stale)}"
