"""SQLite's writers' queue: an flock taken before ``BEGIN IMMEDIATE``, bounded like SQLite's
busy timeout, and who holds it."""

from __future__ import annotations

import fcntl
import os
import threading
from typing import TYPE_CHECKING

from peewee import (
    OperationalError,
)

from queuectl_tui import paths
from queuectl_tui.store.models import (
    database,
)

if TYPE_CHECKING:
    from io import FileIO
    from pathlib import Path
    from types import FrameType


from queuectl_tui.store.dialects import BUSY_TIMEOUT_MS


class _WriterQueue(threading.local):
    """Our writers queue on an flock of ``logs/writers.lock`` before BEGIN IMMEDIATE: the
    kernel hands the lock to the next one the moment it is free, where SQLite's busy handler
    sleeps 1 ms or more on every collision (two draining workers collide on most jobs: the p90
    of a worker's transaction went from 1.4 ms to 0.5 ms). Only an ordering aid: SQLite's lock
    still decides, and a writer without it (a single autocommit statement, an older queuectl)
    is waited for by the busy timeout as before. One descriptor per thread, closed with it."""

    lock: FileIO | None = None  # the open lock file, or None where logs/ is not ours to write
    opened: tuple[str, int] | None = None
    depth = 0

    @staticmethod
    def open(db_path: str | Path) -> int:
        directory = paths.open_private_dir(paths.logs_path(db_path))
        try:
            return os.open(
                "writers.lock",
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=directory,
            )
        finally:
            os.close(directory)

    def enter(self) -> bool:
        key = (database.obj.database, _opened)
        if self.opened != key:  # this thread's first write, or the database was opened anew
            self.opened, self.lock, self.depth = key, None, 0
            try:
                self.lock = os.fdopen(self.open(key[0]), "rb", buffering=0)
            except OSError:
                pass  # no private logs/ here: SQLite's busy timeout alone
        if self.lock is None:
            return False
        if self.depth == 0:
            _take(self.lock)
        self.depth += 1
        return True

    def leave(self) -> None:
        assert self.lock is not None  # after an enter() that returned True
        self.depth -= 1
        if self.depth == 0:
            fcntl.flock(self.lock, fcntl.LOCK_UN)


_writers = _WriterQueue()
_opened = 0  # databases opened by this process: a new one means the lock file is looked up again


def reopened() -> None:
    """A database was (re)opened: each thread's writers look for its lock file again."""
    global _opened
    _opened += 1


#: The longest a writer waits for ``writers.lock``: as long as SQLite waits for its own lock,
#: then the same "stayed locked" error. A holder frozen inside its transaction (SIGSTOP, Ctrl+Z)
#: would otherwise hang every writer for good (see ``engine.free_locks``).
WRITERS_WAIT = BUSY_TIMEOUT_MS / 1000


def _take(lock: FileIO) -> None:
    """flock ``lock`` within ``WRITERS_WAIT`` seconds, else raise OperationalError ("locked").
    flock has no timeout of its own. Taken at once when free. Else, in the main thread (a
    worker's loop, every command): a blocking flock, which the kernel wakes the moment the lock
    is let go, cut short by a SIGALRM timer; in other threads (signals reach only the main
    one), tried again after a pause that starts at 50 us and doubles up to 1 ms (a holder's
    transaction takes about half a millisecond)."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if threading.current_thread() is threading.main_thread():
        if _take_blocking(lock):
            return
    else:
        import time

        deadline = time.monotonic() + WRITERS_WAIT
        pause = 0.00005
        while time.monotonic() < deadline:
            time.sleep(pause)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pause = min(pause * 2, 0.001)
    raise OperationalError(
        f"database is locked: the writers' lock (logs/writers.lock) stayed "
        f"taken for {WRITERS_WAIT:g}s{_holder(lock)}"
    ) from None


class _Expired(Exception):
    pass


def _take_blocking(lock: FileIO) -> bool:
    """A blocking flock for at most WRITERS_WAIT seconds (main thread: SIGALRM ends the wait).
    Returns whether the lock is ours; the timer and handler in place before are put back."""
    import signal

    waiting = True

    def expired(signum: int, frame: FrameType | None) -> None:
        if waiting:
            raise _Expired

    previous = signal.signal(signal.SIGALRM, expired)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, WRITERS_WAIT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = False
        return True
    except _Expired:
        try:  # the alarm may have come just as the lock was given: then it is ours
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
    finally:
        waiting = False
        signal.setitimer(signal.ITIMER_REAL, delay, interval)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


def _holder(lock: FileIO) -> str:
    """ ", by process N (stopped)": who holds this flock, from /proc/locks, if known."""
    found = os.fstat(lock.fileno())
    for pid in _lock_holders({(found.st_dev, found.st_ino)}):
        from queuectl_tui import procs

        state = procs.process_status(pid, procs.start_time(pid))
        return f", by process {pid}" + (f" ({state})" if state else "")
    return ""


def lock_holders() -> set[int]:
    """PIDs of the processes holding a write lock of this SQLite database: SQLite's own (on the
    file, its -wal or -shm) or the writers' lock. Linux (/proc/locks); elsewhere none known."""
    path = database.obj.database
    files = set()
    for name in (
        path,
        path + "-wal",
        path + "-shm",
        os.path.join(paths.logs_path(path), "writers.lock"),
    ):
        try:
            found = os.stat(name)
        except OSError:
            continue
        files.add((found.st_dev, found.st_ino))
    return _lock_holders(files)


def _lock_holders(files: set[tuple[int, int]]) -> set[int]:
    """PIDs holding (not waiting for) a write lock, flock or POSIX, on any of these
    (device, inode) pairs. A line of /proc/locks: ``3: FLOCK ADVISORY WRITE 1234 fe:00:5678 0
    EOF``; a waiter's has ``->`` after the number."""
    holders = set()
    try:
        with open("/proc/locks", "rb") as table:
            for line in table:
                fields = line.split()
                if len(fields) < 6 or fields[1] == b"->" or fields[3] != b"WRITE":
                    continue
                major, minor, inode = fields[5].split(b":")
                if (os.makedev(int(major, 16), int(minor, 16)), int(inode)) in files:
                    holders.add(int(fields[4]))
    except (OSError, ValueError):
        pass
    return holders
