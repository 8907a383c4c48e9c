"""The output pane (o on the main screen): the selected job's latest log, followed while it runs.

The pane reads the log itself, in a thread worker, one read at a time (``OneRead``): a read
starts where the last one ended (the attempt and the offset it reached), so following a log
costs what it added. The screen says which job is selected (``job_of``) and when to look
(``poll``), at the cadence of its own refresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Log, Static

from queuectl_tui.tui import data
from queuectl_tui.tui.reads import OneRead
from queuectl_tui.visible import visible

if TYPE_CHECKING:
    from queuectl_tui.tui.app import QueueApp


class OutputPane(Vertical):
    app: QueueApp

    DEFAULT_CSS = """
    OutputPane { height: auto; }
    """

    def __init__(self, job_of: Callable[[], str | None], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.job_of = job_of  # the job selected now (the one whose log to show)
        self.job_id: str | None = None  # whose log the pane shows
        self._key: tuple[object, ...] | None = None  # (attempt number, log path) read so far
        self._offset = 0
        self._said: str | None = None  # the message the pane shows instead of a log
        self._title: Text | None = None  # the title on screen (None: another text)
        self.reads = OneRead(self._start_read)
        self.on = False  # shown (its title and log are; the pane itself is as high as they)

    def compose(self) -> ComposeResult:
        title = Static("Output", id="output-title", classes="section")
        log = Log(id="output", max_lines=5000, highlight=False)
        title.display = log.display = False
        yield title
        yield log

    @property
    def output_log(self) -> Log:
        return self.query_one("#output", Log)

    @property
    def settled(self) -> bool:
        return self.reads.settled

    def toggle(self) -> None:
        """Show the pane or hide it (shown again, it reads the selected job's log anew)."""
        self.on = not self.on
        self.query_one("#output-title").display = self.output_log.display = self.on
        self.job_id = None

    def fit(self, height: int) -> None:
        """The log's height, in lines."""
        self.output_log.styles.height = height

    def poll(self) -> None:
        """Read what the selected job's latest log added (the whole tail for a new job)."""
        if self.on and self.app.screen is self.screen:
            self.reads.request()

    def _start_read(self) -> bool:
        if not self.on or self.app.screen is not self.screen:
            return False
        job_id = self.job_of()
        if job_id != self.job_id:
            self.job_id, self._key, self._offset = job_id, None, 0
            self.output_log.clear()
            self._said = None
        if job_id is None:
            self._title = None
            self.query_one("#output-title", Static).update("Output  (no job selected)")
            return False
        self._read(job_id, self._key, self._offset)
        return True

    @work(thread=True, group="output", exit_on_error=False)
    def _read(self, job_id: str, key: tuple[object, ...] | None, offset: int) -> None:
        output: data.Output | Exception
        try:
            output = data.call(self.app.db_path, data.read_output, job_id, key, offset)
        except (data.Problem, data.QueueError) as exc:
            output = exc
        self.app.from_thread(self._read_done, job_id, output)

    def _read_done(self, job_id: str, output: data.Output | Exception) -> None:
        if job_id != self.job_id or not self.on:
            self.reads.again = self.on  # the cursor moved meanwhile
        else:
            self._show(job_id, output)
        self.reads.done()

    def _show(self, job_id: str, output: data.Output | Exception) -> None:
        log = self.output_log
        title = self.query_one("#output-title", Static)
        if isinstance(output, Exception):
            self._title = None
            title.update(Text.assemble("Output  ", (str(output), "red")))
            return
        if output.attempt is None:
            self._say("(no attempt yet: the log appears when a worker runs the job)")
            self._key = None
        else:
            chunk = output.chunk
            assert chunk is not None  # an attempt has a log, or a note saying where it is
            if output.key != self._key:
                log.clear()
                self._said = None
                self._key = output.key
                if chunk.skipped:
                    log.write_line(f"[… {chunk.skipped:,} earlier bytes not shown]")
            if chunk.missing:
                self._say(chunk.note or "(no log file for this attempt)")
            elif chunk.text:
                log.write(chunk.text, scroll_end=True)
            self._offset = chunk.offset
        following = "following" if output.running else "finished"
        state = "" if output.attempt is None else f"  attempt {output.attempt}, {following}"
        text = Text.assemble("Output of ", (visible(job_id), "bold"), state, ("  (o hides)", "dim"))
        if text != self._title:
            self._title = text
            title.update(text, layout=False)  # one line

    def _say(self, message: str) -> None:
        """The pane shows a message instead of a log: written once, not again at every read
        (twice a second: each time the whole screen was laid out and drawn again)."""
        if self._said != message:
            self.output_log.clear()
            self.output_log.write(message)
            self._said = message
