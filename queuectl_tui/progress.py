"""A progress bar on stderr for long commands, on a terminal only.

``enqueue -f`` of many lines, ``clear``, ``dlq retry --all``, ``wait`` on many jobs and a schema
upgrade of a big database can take seconds to minutes: on a terminal they show rich's progress
bar (what is done, of how much, the rate and the time left), drawn once the work has lasted
``AFTER`` seconds (short work shows nothing) and erased when it ends. Without a terminal on
stderr nothing is drawn and rich is not even imported: a piped or scripted run pays nothing,
and ``Bar``'s methods are no-ops there.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

#: Seconds of work before the bar appears.
AFTER = 0.3


def on_terminal() -> bool:
    """Whether stderr is a terminal a bar can be drawn on (not TERM=dumb)."""
    try:
        return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # no stderr, or closed
        return False


class Bar:
    """The no-op bar: what every command gets without a terminal (``bar``)."""

    drawn = False  # callers skip the work of counting for it

    def advance(self, count: int = 1, nbytes: int = 0) -> None:
        pass

    def update(self, **fields: Any) -> None:
        pass

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Drawn(Bar):
    """rich's Progress with one task, started AFTER seconds in (from a timer thread)."""

    drawn = True

    def __init__(
        self,
        description: str,
        total: int | None,
        unit: str,
        size: int | None = None,
        console: Any = None,
    ):
        self.description, self.total, self.unit, self.size = description, total, unit, size
        self.completed = self.nbytes = 0
        self.console = console
        self.progress: Any = None
        self.task: Any = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._ended = False

    def __enter__(self) -> _Drawn:
        self.started = time.monotonic()
        if AFTER <= 0:
            self._show()
        else:
            self._timer = threading.Timer(AFTER, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        unit, started = self.unit, self.started

        class Rate(ProgressColumn):
            """Done per second since the work began (the bar may have come later)."""

            def render(self, task: Any) -> Text:
                elapsed = time.monotonic() - started
                done = task.fields["count"]
                return Text(
                    f"{done / elapsed:,.0f} {unit}/s" if elapsed > 0 else "",
                    style="progress.data.speed",
                )

        with self._lock:
            if self._ended or self.progress is not None:
                return
            console = self.console or Console(stderr=True)
            counted = (
                TextColumn(f"{{task.fields[count]:,}} of {{task.total:,.0f}} {unit}")
                if self.total is not None and self.size is None
                else TextColumn(f"{{task.fields[count]:,}} {unit}")
            )
            shown = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                counted,
                Rate(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
                redirect_stdout=sys.stdout.isatty(),
                redirect_stderr=True,
            )
            self.task = shown.add_task(self.description, **self._state())
            shown.start()
            self.progress = shown  # last: advance() (another thread) uses it from then on
            # What advance() counted while the bar started, seeing no bar yet: without this the
            # bar kept its first figures until the next advance, maybe for good ("0 of 2 ended"
            # while a wait for the last job went on). Under the lock, as advance() updates.
            shown.update(self.task, **self._state())

    def _state(self) -> dict[str, Any]:
        """The task's figures: done of total, or (a stream of known size) bytes of its size,
        with the count of units done beside."""
        if self.size is not None:
            return {"total": self.size, "completed": self.nbytes, "count": self.completed}
        return {"total": self.total, "completed": self.completed, "count": self.completed}

    def advance(self, count: int = 1, nbytes: int = 0) -> None:
        self.completed += count
        self.nbytes += nbytes
        if self.progress is not None:
            with self._lock:  # after _show's catch-up, never before it: no older figures win
                self.progress.update(self.task, **self._state())

    def update(self, **fields: Any) -> None:
        """A new ``total`` (the jobs a wait follows grew) or ``description`` (the next phase)."""
        self.total = fields.get("total", self.total)
        self.description = fields.get("description", self.description)
        with self._lock:
            if self.progress is not None:
                self.progress.update(self.task, description=self.description, **self._state())

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._ended = True
            if self._timer is not None:
                self._timer.cancel()
            if self.progress is not None:
                self.progress.stop()


def bar(
    description: str, total: int | None = None, unit: str = "jobs", *, size: int | None = None
) -> Bar:
    """A context manager: ``with bar("deleting", 5000) as b: ... b.advance(500)``; a no-op
    unless stderr is a terminal. ``size``: the bytes of a stream read (``advance``'s
    ``nbytes``), which give the percentage and time left while ``unit`` counts lines."""
    return _Drawn(description, total, unit, size) if on_terminal() else Bar()
