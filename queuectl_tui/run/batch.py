"""What a draining worker holds between two writes: the jobs it claimed ahead and the jobs that
ended and wait to be recorded.

While jobs are short (``SHORT``), a claim takes a few at once (``size``, doubling up to
``BATCH_MAX``) and their ends are recorded together with the next claim, so a draining worker
takes the write lock once per batch rather than once per job. The size falls back to one the
moment a job runs longer or held jobs are handed back. An ended job waits at most
``RECORD_WITHIN`` seconds for that write; a held job is trusted for half a lease after its claim
(the time within which nobody may take it back), and only under the worker id that claimed it.

The worker's echo keeps its order through this: a job's "start" line waits while the "finish"
lines of the jobs before it are unsaid (they are said once those are recorded), so a reader
sees each job start after the one before it finished.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuectl_tui.engine import Attempt, Ended
    from queuectl_tui.run.launch import Result
    from queuectl_tui.store.models import Job

BATCH_MAX = 16  # at most this many jobs held at once
SHORT = 0.005  # a batch doubles only while every job ends within this many seconds
RECORD_WITHIN = 0.010  # an ended job waits at most this long for the next write, seconds


class Batch:
    """One worker's held and ended jobs (used by its main loop only)."""

    def __init__(self) -> None:
        self.size = 1  # how many jobs the next claim takes
        self.held: deque[tuple[Job, Attempt]] = deque()  # claimed, not started yet
        self.held_at = 0.0  # monotonic time of the claim of the held jobs
        self.held_token: object = None  # the change token read before that claim
        self.held_by: int | None = None  # the worker id they were claimed under
        #: Ran, not recorded yet: with the result, and the job's "start" line if it waited too.
        self.ended: list[tuple[Ended, Result, str | None]] = []
        self.ended_at = 0.0  # monotonic time the first of them ended
        self.start_line: str | None = None  # the running job's, held back (see ``starting``)

    @property
    def busy(self) -> bool:
        """Does anything wait on this batch (a held job to start, an ended one to record)?"""
        return bool(self.held or self.ended)

    def to_record(self) -> list[Ended]:
        return [done for done, _, _ in self.ended]

    def resize(self, *, handing_back: bool) -> None:
        """Before a write records the ended jobs: double while every one was short, else one;
        one when held jobs go back too (what comes after may not be short)."""
        if self.ended:
            short = all(result.duration < SHORT for _, result, _ in self.ended)
            self.size = min(2 * self.size, BATCH_MAX) if short else 1
        if handing_back:
            self.size = 1

    def next_job(self) -> Job | None:
        """The held job that runs next, if any."""
        return self.held[0][0] if self.held else None

    def hold(self, claimed: list[tuple[Job, Attempt]], token: object, worker_id: int,
             now: float | None = None) -> None:
        """Keep jobs a claim returned, with the change token read before it (see the worker's
        ``_paused``) and the worker id it was made under."""
        self.held.extend(claimed)
        self.held_at = time.monotonic() if now is None else now
        self.held_token = token
        self.held_by = worker_id

    def untrusted(self, lease: float, worker_id: int, now: float | None = None) -> bool:
        """Are the held jobs too old to start (held past half a lease: recovery may have taken
        them back), or claimed under an id this worker has lost?"""
        now = time.monotonic() if now is None else now
        return now - self.held_at > lease / 2 or self.held_by != worker_id

    def take(self) -> tuple[Job, Attempt]:
        return self.held.popleft()

    def starting(self, line: str) -> str | None:
        """A job starts: its "start" line to say now, or None when it must wait behind the
        "finish" lines of unrecorded jobs (it is said after them)."""
        if self.ended:
            self.start_line = line
            return None
        return line

    def end(self, done: Ended, result: Result, now: float | None = None) -> None:
        """The running job ended: it waits for the next write, its start line with it."""
        if not self.ended:
            self.ended_at = time.monotonic() if now is None else now
        self.ended.append((done, result, self.start_line))
        self.start_line = None

    def record_due(self, now: float | None = None) -> bool:
        """Has the first unrecorded end waited ``RECORD_WITHIN`` seconds?"""
        return (time.monotonic() if now is None else now) - self.ended_at >= RECORD_WITHIN

    def recorded(self, states: list[str | None]) -> list[tuple[Ended, Result, str | None,
                                                               str | None]]:
        """The ended jobs were written (each now in ``states``' state, None: taken back by
        recovery): (ended, result, start line, state) of each, in order; they leave the
        batch."""
        out = [(done, result, start, state)
               for (done, result, start), state in zip(self.ended, states, strict=True)]
        self.ended.clear()
        return out

    def take_start_line(self) -> str | None:
        """The running job's start line, if it waited (once the ends before it were said)."""
        line, self.start_line = self.start_line, None
        return line

    def handed_back(self) -> None:
        self.held.clear()
