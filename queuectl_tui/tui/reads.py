"""One read at a time, and once more afterwards when asked meanwhile.

A screen refreshes from a thread worker about once a second, and also when a key or an event
asks. Two reads of the same thing running at once could land out of order (the older one last),
and queueing one read per request would pile them up behind a slow (locked) database. So a
request while a read runs only notes that one more read is due when it ends: however many
requests came, one read follows, and it sees everything they changed.
"""

from __future__ import annotations

from collections.abc import Callable


class OneRead:
    """``request()`` starts ``start()`` unless a read is under way; ``done()`` (from the result's
    handler) ends it and starts the one requested meanwhile. ``start`` returns False when it
    found nothing to read (no read is then under way)."""

    def __init__(self, start: Callable[[], object]) -> None:
        self._start = start
        self.busy = False  # a read is under way
        self.again = False  # one more read is due when it ends

    def request(self) -> None:
        if self.busy:
            self.again = True
            return
        self.again = False
        self.busy = True
        self.busy = self._start() is not False

    def done(self) -> None:
        self.busy = False
        if self.again:
            self.request()

    @property
    def settled(self) -> bool:
        """No read under way or due (what tests wait for)."""
        return not (self.busy or self.again)
