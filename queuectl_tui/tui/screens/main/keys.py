"""The main screen's keys: its bindings, and the tabs and sort orders its keys pick among.

The help screen and the command palette read these bindings (key, name, tooltip), and the
README's parity table is checked against them (tests/tui/test_tui_parity.py).
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

#: (tab id, label, state); the number keys pick them in this order.
TABS = [
    ("all", "All", None),
    ("pending", "Pending", "pending"),
    ("processing", "Processing", "processing"),
    ("completed", "Completed", "completed"),
    ("failed", "Failed", "failed"),
    ("dead", "DLQ", "dead"),
]
#: (sort key, label when descending, label when ascending, descending when first picked): each
#: order starts with what one looks for first (the next run: the soonest).
SORTS = [
    ("seq", "newest first", "oldest first", True),
    ("priority", "priority high→low", "priority low→high", True),
    ("run_at", "next run latest", "next run soonest", False),
    ("updated_at", "recently changed", "least recently changed", True),
    ("attempts", "most attempts", "fewest attempts", True),
]

BINDINGS: list[BindingType] = [
    Binding("n", "enqueue", "Enqueue", tooltip="Enqueue a new job (form)"),
    Binding("r", "retry", "Retry", tooltip="Retry the selected (or marked) failed/dead jobs"),
    Binding(
        "R",
        "retry_dlq",
        "Retry DLQ",
        show=False,
        tooltip="Retry every job in the DLQ (a fresh retry budget each); asks first",
    ),
    Binding(
        "t",
        "restart",
        "Restart",
        show=False,
        tooltip="Run the selected (or marked) completed/dead jobs again, with a fresh retry budget",
    ),
    Binding(
        "E",
        "edit",
        "Edit job",
        show=False,
        tooltip="Edit the selected pending or failed job (command, priority, time, retries, "
        "timeout, queue)",
    ),
    Binding(
        "c",
        "cancel",
        "Cancel",
        show=False,
        tooltip="Cancel the selected (or marked) jobs; asks first",
    ),
    Binding(
        "d,delete",
        "delete",
        "Delete",
        show=False,
        tooltip="Delete the selected (or marked) jobs with their logs; asks first",
    ),
    Binding("D", "clear_dlq", "Clear DLQ", show=False, tooltip="Delete every dead job; asks first"),
    Binding("l", "logs", "Logs", show=False, tooltip="Open the selected job on its latest log"),
    Binding("e", "config", "Config", tooltip="Edit the settings"),
    Binding(
        "p",
        "pause",
        "Pause/resume",
        show=False,
        tooltip="Pause the selected job's queue (workers claim none of its jobs), or resume it",
    ),
    Binding(
        "P",
        "pause_all",
        "Pause/resume all",
        show=False,
        tooltip="Pause every queue, or resume them all when all are paused",
    ),
    Binding(
        "m",
        "stats",
        "Stats",
        tooltip="Execution stats: throughput, wait and run times, errors, per queue",
    ),
    Binding(
        "plus", "worker_start", "Worker", key_display="+", tooltip="Start one more detached worker"
    ),
    Binding(
        "o",
        "output",
        "Output",
        tooltip="Show or hide the output pane: the selected job's latest log, followed while "
        "it runs",
    ),
    Binding(
        "minus",
        "worker_stop",
        "Stop worker",
        key_display="-",
        show=False,
        tooltip="Stop one worker: the one selected in the workers pane, else the newest idle "
        "one (else the newest, after its job); asks first",
    ),
    Binding(
        "X",
        "worker_stop_all",
        "Stop all workers",
        show=False,
        tooltip="Stop every worker on this host; asks first",
    ),
    Binding(
        "slash",
        "filter",
        "Filter",
        key_display="/",
        tooltip="Filter the table by text in id, command or last error",
    ),
    Binding(
        "Q",
        "queues",
        "Queues",
        tooltip="The queues: counts, paused, limits (pause, resume, limit)",
    ),
    Binding(
        "C",
        "schedules",
        "Schedules",
        tooltip="The recurring schedules: rule, next run, last job (add, pause, resume, run, "
        "remove)",
    ),
    Binding("s", "sort", "Sort", show=False, tooltip="Cycle the sort order"),
    Binding("S", "reverse", "Reverse", show=False, tooltip="Reverse the sort order"),
    Binding(
        "space",
        "mark",
        "Mark",
        show=False,
        tooltip="Mark/unmark the selected job for a bulk retry, cancel or delete, and move "
        "down to the next",
    ),
    Binding("escape", "clear", "Clear", show=False, tooltip="Clear the filter, then the marks"),
    Binding(
        "right_square_bracket",
        "page(1)",
        "Next page",
        key_display="]",
        show=False,
        tooltip="Next page of jobs",
    ),
    Binding(
        "left_square_bracket",
        "page(-1)",
        "Previous page",
        key_display="[",
        show=False,
        tooltip="Previous page of jobs",
    ),
    Binding("f5,ctrl+r", "refresh", "Refresh", show=False, tooltip="Refresh now"),
    *(
        Binding(str(n), f"tab('{tab}')", label, show=False, tooltip=f"Show the {label} tab")
        for n, (tab, label, _) in enumerate(TABS, 1)
    ),
]
