"""A worker's own output: each line in one ``write(2)``.

Workers forked from one command share their stdout and stderr (detached ones share
``logs/workers.log``), so a line written in two pieces (``print`` writes the text and the
newline apart when unbuffered, ``PYTHONUNBUFFERED=1``) could be torn by a sibling's. And the
output never stops a worker: a reader that went away (``worker start --foreground | head -1``)
has its stream pointed at /dev/null.
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pathlib import Path


def to_devnull(stream: TextIO) -> None:
    """Point a stream whose reader went away at /dev/null, so that what is still buffered in it
    (and the interpreter's flush at exit) goes nowhere instead of raising BrokenPipeError."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


def write_line(stream: TextIO, line: str) -> None:
    """Write ``line`` and its newline in one write(2). Workers forked from one command share
    their stdout and stderr (and detached ones ``workers.log``): print() wrote the text and
    the newline apart when unbuffered (PYTHONUNBUFFERED=1), and two workers tore each other's
    lines. What the stream still holds goes first."""
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation):  # not a file (an in-process capture)
        stream.write(line + "\n")
        stream.flush()
        return
    data = (line + "\n").encode(getattr(stream, "encoding", None) or "utf-8", "backslashreplace")
    stream.flush()
    while data:
        data = data[os.write(fd, data) :]


def print_line(line: str) -> None:
    """A foreground worker's echo: the line on stdout, after the time of day."""
    try:
        write_line(sys.stdout, f"{time.strftime('%H:%M:%S')} {line}")
    except (OSError, ValueError):
        to_devnull(sys.stdout)
        raise


class WorkersLog:
    """A detached worker's stdout and stderr are ``logs/workers.log``, shared by every detached
    worker: the same line per job a foreground worker prints goes there. Past ``cap`` bytes the
    worker that notices moves it to ``workers.log.1`` (under an flock, checked again inside) and
    starts a new one; the others see the file behind their descriptor is no longer the log and
    reopen it before their next line."""

    def __init__(self, path: str | Path, cap: int = 5 * 1024 * 1024) -> None:
        from pathlib import Path

        self.path, self.cap = Path(path), cap

    def __call__(self, line: str) -> None:
        try:
            self._follow()
        except OSError:
            pass  # a log we cannot turn over is still written to
        print_line(line)

    def _follow(self) -> None:
        import fcntl

        ours = os.fstat(1)
        try:
            current = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (ours.st_dev, ours.st_ino):
            if ours.st_size < self.cap:
                return
            fcntl.flock(1, fcntl.LOCK_EX)
            try:  # still the log, still too big: nobody turned it over meanwhile
                current = os.stat(self.path, follow_symlinks=False)
                if (current.st_dev, current.st_ino) == (ours.st_dev, ours.st_ino):
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            finally:
                fcntl.flock(1, fcntl.LOCK_UN)
        from queuectl_tui.paths import open_private_append

        sys.stdout.flush()
        fd = open_private_append(self.path)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
