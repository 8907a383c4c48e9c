"""What a draining worker holds between two writes: the jobs it claimed ahead and the jobs that
ended and wait to be recorded.

While jobs are short, a claim takes a few at once (``size``, up to ``BATCH_MAX``) and their ends
are recorded together with the next claim, so a draining worker writes once per batch rather
than once per job (on PostgreSQL one statement: ``engine.settle``). The size comes from the mean
run time of the recent jobs (``mean``, a moving average, each job counted at most ``LONG``): as
many as run one after another within ``RECORD_WITHIN`` by that mean, plus one. So a held job
waits for the jobs claimed before it in its batch about ``RECORD_WITHIN`` at most (other workers
could have run it meanwhile: the batch bounds that delay, not the machine's load), and the ends
of a batch's first jobs reach the database with the next claim, within about as long, rather
than in a write of their own. Under load, when a job takes longer than usual, the size shrinks
with the mean instead of falling to one at the first slow job (which kept a loaded machine at
one job per write). Held jobs handed back bring the size to one. An ended job waits at most
``RECORD_WITHIN`` seconds for that write (stretched on crowded CPUs, below), whatever the
estimate said; a held job is trusted for half a lease after its claim (the time within which
nobody may take it back), and only under the worker id that claimed it.

When the CPUs are crowded (more runnable tasks than CPUs: ``procs.crowding``, smoothed as the
mean is), every step of the machine takes that many times as long, and so may this window
(``within``: ``RECORD_WITHIN`` times the crowding, at most ``STRETCH_MAX`` times): a job there
takes longer by the wall clock because it waits for a CPU, not because it is longer, and a
write every job or two would spend on the database the CPU the jobs are waiting for. (As
PostgreSQL's ``commit_delay`` waits for companions only while ``commit_siblings`` transactions
are active, the wait grows only with the crowd.)

The worker's echo keeps its order through this: a job's "start" line waits while the "finish"
lines of the jobs before it are unsaid (they are said once those are recorded), so a reader
sees each job start after the one before it finished.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from queuectl_tui import procs

if TYPE_CHECKING:
    from queuectl_tui.engine import Attempt, Ended
    from queuectl_tui.run.launch import Result
    from queuectl_tui.store.models import Job

BATCH_MAX = 16  # at most this many jobs held at once
RECORD_WITHIN = 0.010  # an ended job waits at most this long for the next write, seconds
STRETCH_MAX = 5.0  # on crowded CPUs, the window stretches up to this many times (see above)
#: A job that took this long (times the stretch) makes the next size one (perhaps the first of
#: many long ones), and counts as this long in the mean, which so comes back down within a few
#: short jobs.
LONG = 2 * RECORD_WITHIN
SMOOTHING = 0.25  # the weight of each new job in the mean run time, and of each look at the CPUs


class Batch:
    """One worker's held and ended jobs (used by its main loop only)."""

    def __init__(self, crowding: Callable[[], float | None] = procs.crowding) -> None:
        self.size = 1  # how many jobs the next claim takes
        self.crowding = crowding  # runnable tasks per CPU now, None when unknown
        self.stretch = 1.0  # the CPUs' recent crowding, 1 (uncrowded) to STRETCH_MAX
        self.mean: float | None = None  # the recent jobs' mean run time, seconds (see ``LONG``)
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

    @property
    def within(self) -> float:
        """How long an ended job may wait for its write: ``RECORD_WITHIN``, stretched."""
        return RECORD_WITHIN * self.stretch

    def resize(self, *, handing_back: bool) -> None:
        """Before a write records the ended jobs: the stretch takes in the CPUs' crowding, the
        mean takes the jobs in, and the size is as many jobs as run ``within`` by that mean,
        plus one (at most ``BATCH_MAX``); one after a ``LONG`` job (stretched), and when held
        jobs go back (what comes after may not be short)."""
        crowd = self.crowding() if self.ended else None
        if crowd is not None:
            crowd = min(max(crowd, 1.0), STRETCH_MAX)
            self.stretch += SMOOTHING * (crowd - self.stretch)
        long = LONG * self.stretch
        for _, result, _ in self.ended:
            took = min(result.duration, long)
            self.mean = took if self.mean is None else self.mean + SMOOTHING * (took - self.mean)
        if self.ended and self.mean is not None:
            self.size = min(BATCH_MAX, 1 + int(self.within / max(self.mean, 1e-4)))
            if any(result.duration >= long for _, result, _ in self.ended):
                self.size = 1  # perhaps the first of many long ones: nothing held behind it
        if handing_back:
            self.size = 1

    def next_job(self) -> Job | None:
        """The held job that runs next, if any."""
        return self.held[0][0] if self.held else None

    def hold(
        self,
        claimed: list[tuple[Job, Attempt]],
        token: object,
        worker_id: int,
        now: float | None = None,
    ) -> None:
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
        """Has the first unrecorded end waited ``within``?"""
        return (time.monotonic() if now is None else now) - self.ended_at >= self.within

    def recorded(
        self, states: list[str | None]
    ) -> list[tuple[Ended, Result, str | None, str | None]]:
        """The ended jobs were written (each now in ``states``' state, None: taken back by
        recovery): (ended, result, start line, state) of each, in order; they leave the
        batch."""
        out = [
            (done, result, start, state)
            for (done, result, start), state in zip(self.ended, states, strict=True)
        ]
        self.ended.clear()
        return out

    def take_start_line(self) -> str | None:
        """The running job's start line, if it waited (once the ends before it were said)."""
        line, self.start_line = self.start_line, None
        return line

    def handed_back(self) -> None:
        self.held.clear()
