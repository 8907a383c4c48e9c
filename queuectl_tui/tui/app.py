"""The Textual console: ``run_app(db_path)`` opens it (``queuectl-tui`` on a terminal).

The app owns what every screen shares: where the database is, the clock (injected in tests so
that screens are stable), the worker monitor, and ``act``, which runs an operator action
(tui/actions.py) in a thread and answers the screen that asked with a message
(tui/messages.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message_pump import MessagePump
from textual.notifications import SeverityLevel
from textual.screen import Screen

from queuectl_tui import paths
from queuectl_tui.errors import DatabaseUnusable, QueueError
from queuectl_tui.run.monitor import WorkerMonitor
from queuectl_tui.store import describe_target, open_db
from queuectl_tui.tui import app_keys, data, readonly
from queuectl_tui.tui.actions import Action
from queuectl_tui.tui.messages import ActionDone, ActionFailed
from queuectl_tui.tui.screens.main import MainScreen

THEME = "textual-dark"
END_POLL = 0.25  # seconds between two looks at a job whose cancel was requested


class QueueApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "queuectl"
    BINDINGS = app_keys.BINDINGS

    def __init__(
        self,
        db_path: Path | str,
        *,
        clock: Callable[[], float] | None = None,
        monitor: Any = None,
        refresh_interval: float = 1.0,
        page_size: int | None = None,
        theme: str = THEME,
        cursor_blink: bool = True,
        read_only: bool = False,
    ) -> None:
        super().__init__()
        self.read_only = read_only  # shows everything, changes nothing (tui/readonly.py)
        self.db_path = paths.db_target(db_path)
        self.clock = clock or time.time
        self.monitor = monitor or WorkerMonitor()
        self.refresh_interval = refresh_interval
        self.slow_read_warning = 2.0  # seconds a refresh may wait on the database unremarked
        self.page_size = page_size  # rows per page; None: as many as the jobs table shows
        self.theme = theme
        self.animation_level = "none"  # a monitor redraws often; no tweening between frames
        self.cursor_blink = cursor_blink  # text boxes follow it (tests turn blinking off)
        self.sub_title = describe_target(self.db_path)  # a server's URL without its password
        if read_only:
            self.sub_title += " · read-only"

    async def run_action(
        self, action: Any, default_namespace: Any = None, namespaces: Any = None
    ) -> bool:
        """Every key, click and palette entry runs its action here: read-only mode refuses
        those that would change something, and says so."""
        if self.read_only:
            node, name = readonly.target(self, action, default_namespace, namespaces)
            if readonly.refused(node, name):
                self.notify(
                    f"read-only console: {name.replace('_', ' ')} refused", severity="warning"
                )
                return True
        return await super().run_action(action, default_namespace, namespaces)

    def refuses(self, node: Any, action: str) -> bool:
        """Whether a key's action is refused here (the footer leaves such keys out)."""
        return self.read_only and readonly.refused(*readonly.target(self, action, node, None))

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    def action_help(self) -> None:
        from queuectl_tui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications carry ids, commands and errors: plain text unless a caller says."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def act(self, action: Action, screen: MessagePump) -> None:
        """Run an operator action for ``screen``, asking its question first if it has one: the
        screen hears ``ActionDone`` or ``ActionFailed`` (a failure it leaves alone reaches
        ``_failed_to_act``)."""
        if action.question is None:
            self._act(action, screen)
            return
        from queuectl_tui.tui.screens.modals import ConfirmModal

        question, title = action.question

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(action, screen)

        self.push_screen(ConfirmModal(question, title), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _act(self, action: Action, screen: MessagePump) -> None:
        try:
            result = data.call(self.db_path, action.call, *action.args, **action.kwargs)
        except (QueueError, data.Problem) as exc:
            message: ActionDone | ActionFailed = ActionFailed(
                action, str(exc), getattr(exc, "field", None)
            )
        except Exception as exc:  # an unexpected failure is reported, not raised into the UI
            message = ActionFailed(action, f"{type(exc).__name__}: {exc}")
        else:
            message = ActionDone(action, result)
            running = (
                [job.id for job in result if job.state == "processing"]
                if (action.follows_ends)
                else []
            )
            if running:
                self.from_thread(self._follow_ends, running)
        if not screen.post_message(message):  # that screen is gone: the app says it
            self.post_message(message)

    @on(ActionDone)
    def _acted(self, event: ActionDone) -> None:
        """The result of an action whose screen closed meanwhile: its summary, if it has one."""
        if event.action.summary is not None:
            self.notify(event.action.summary(event.result))

    @on(ActionFailed)
    def _failed_to_act(self, event: ActionFailed) -> None:
        self.notify(event.message, title=f"could not {event.label}", severity="error")

    @work(thread=True, group="ends", exit_on_error=False)
    def _follow_ends(self, job_ids: list[str]) -> None:
        from textual.worker import get_current_worker

        from queuectl_tui.store.models import Job

        worker, waiting = get_current_worker(), list(job_ids)
        while waiting and not worker.is_cancelled:
            time.sleep(END_POLL)
            try:
                jobs = data.call(
                    self.db_path, lambda: [Job.get_or_none(Job.id == i) for i in waiting]
                )
            except data.Problem:
                continue
            for job_id, job in zip(list(waiting), jobs, strict=True):
                if job is None or job.state != "processing":
                    waiting.remove(job_id)
                    error = f" ({job.last_error})" if job is not None and job.last_error else ""
                    end = "deleted" if job is None else job.state + error
                    self.from_thread(self.notify, f"{job_id} ended: {end}")

    def from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            self.call_from_thread(callback, *args, **kwargs)
        except RuntimeError:  # the app closed while the call ran
            pass

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette offers every console action by name."""
        yield from super().get_system_commands(screen)
        seen = set()
        for node in (screen, self):
            for binding in Binding.make_bindings(node.BINDINGS):  # the screen's, then the app's
                if (
                    binding.action in seen
                    or not binding.description
                    or binding.action.startswith("tab(")
                ):
                    continue
                seen.add(binding.action)
                yield SystemCommand(
                    binding.description,
                    binding.tooltip or binding.description,
                    partial(node.run_action, binding.action),
                )


def run_app(db_path: Path | str, *, read_only: bool = False) -> None:
    """Open the console on the database at ``db_path`` until the operator quits.

    A database that does not exist yet is created first, as any CLI command would; every other
    problem (locked, corrupt, from a newer version) is shown in the console, which retries.
    """
    db_path = paths.db_target(db_path)
    if paths.is_url(db_path) or not Path(db_path).exists():
        try:
            open_db(db_path)
        except DatabaseUnusable:
            pass  # e.g. a directory that cannot be created: the console says so
    QueueApp(db_path, read_only=read_only).run()
