"""Read-only mode: a console that shows everything and changes nothing (``queuectl-tui web
--read-only`` for a wall display; ``QueueApp(read_only=True)`` anywhere).

It fails closed: an action that the console's own code implements runs only when it is listed
in ``READS`` (it changes nothing but the view); every other one, a key added later included, is
refused. Textual's own actions (focus, scrolling, the filter box's editing, the command palette,
the theme) change nothing in the queue and are left alone. ``CHANGES`` lists the refused ones so
that a test can check every action of the console is in one list or the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textual import actions

#: The console's actions that change nothing, by the class that defines them.
READS: dict[str, set[str]] = {
    "QueueApp": {"help"},
    "MainScreen": {
        "tab",
        "filter",
        "clear",
        "sort",
        "reverse",
        "page",
        "refresh",
        "mark",
        "logs",
        "output",
        "queues",
        "stats",
        "schedules",
    },
    "JobDetailScreen": {"back", "focus_log", "follow"},
    "LiveTableScreen": {"back", "refresh"},
    "StatsScreen": {"back", "window", "refresh"},
    "HelpScreen": {"close"},
    "JobsTable": {"cursor_down", "cursor_up", "page_down", "page_up", "first_row", "last_row"},
    "KeyedTable": {"first_row", "last_row"},
    # The dialogs cannot open in read-only mode; closing one changes nothing.
    "JobForm": {"dismiss_none"},
    "ConfigModal": {"dismiss_none"},
    "LimitModal": {"close"},
    "ScheduleModal": {"close"},
}

#: The console's actions that change the queue, its settings or its workers: refused.
CHANGES: dict[str, set[str]] = {
    "MainScreen": {
        "enqueue",
        "retry",
        "retry_dlq",
        "restart",
        "edit",
        "cancel",
        "delete",
        "clear_dlq",
        "config",
        "pause",
        "pause_all",
        "worker_start",
        "worker_stop",
        "worker_stop_all",
    },
    "JobDetailScreen": {"retry", "restart", "edit", "pause", "cancel", "delete"},
    "QueuesScreen": {"pause", "pause_all", "limit"},
    "SchedulesScreen": {"add", "pause", "run", "remove"},
    "ScheduleModal": {"save"},
    "EnqueueModal": {"submit"},
    "EditModal": {"submit"},
    "ConfigModal": {"save"},
    "LimitModal": {"save"},
    "ConfirmModal": {"answer"},
}


def refused(node: Any, action: str) -> bool:
    """Whether read-only mode refuses ``action`` (a name, without arguments) run on ``node``."""
    for name in (f"_action_{action}", f"action_{action}"):  # the order Textual looks them up
        method = getattr(type(node), name, None)
        if callable(method):
            break
    else:
        return False  # no such action: Textual reports that itself
    if not getattr(method, "__module__", "").startswith("queuectl_tui."):
        return False
    owner = method.__qualname__.split(".")[0]
    return action not in READS.get(owner, ())


def target(
    app: Any,
    action: str | tuple[str, str, tuple[object, ...]],
    default: Any,
    namespaces: Mapping[str, Any] | None,
) -> tuple[Any, str]:
    """(the node an action string runs on, the action's name), resolved as ``App.run_action``
    resolves it: ``app.x``, ``screen.x`` and ``focused.x`` name their node; a bare name runs on
    ``default``."""
    destination, name, _params = action if isinstance(action, tuple) else actions.parse(action)
    node = (namespaces or {}).get(destination) if destination else None
    if destination and node is None:
        node = getattr(app, destination, None)
    return (node if node is not None else default if default is not None else app), name
