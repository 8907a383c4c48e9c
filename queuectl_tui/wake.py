"""Sleeping until another process may have committed to the SQLite database.

Idle workers and ``wait`` must notice a commit within milliseconds, but polling SQLite's
``data_version`` every 10 ms costs about 1% of a core per idle process. On Linux a commit in
WAL mode writes the database's ``-wal`` file, so an inotify watch on it (IN_MODIFY) wakes the
sleeper at once, whoever wrote it. The wake-up is only a hint: callers still compare
``db.change_token()`` (the truth) and sleep again; a slow poll (``SLOW_POLL``) is the safety net.

The commit's frames reach the ``-wal`` file a moment before the shared index that
``data_version`` reads, so for ``HOT`` seconds after a wake-up sleeps are cut to ``POLL``: a
commit seen early is still noticed within one ``POLL``. A caller that saw the change says so
(``noticed``): the window then ends with one more look at its end, which still finds a commit
whose write came with the same event (its writer held up before it published the commit),
instead of five looks (each heartbeat of each idle worker cost every other sleeper five
reads). Without inotify (not Linux, its limits
reached, no ``-wal`` file: rollback-journal mode), every sleep is at most ``POLL`` as before.
On PostgreSQL the sleep is a ``select`` on the session's LISTEN socket (``db.wait_change``),
woken by the NOTIFY of a change, at most ``SLOW_POLL`` long.
"""

from __future__ import annotations

import errno
import os
import select
import struct
import time
from collections.abc import Callable
from types import ModuleType
from typing import Literal

from queuectl_tui.store import dialect, wait_change
from queuectl_tui.store.models import database

POLL = 0.010  # the plain poll: a commit is seen within about this long
SLOW_POLL = 0.25  # with a watch: the longest sleep between two looks at data_version
HOT = 0.05  # after a wake-up, sleeps are at most POLL for this long
RETRY = 1.0  # a watch that could not be set is tried again after this long

_IN_MODIFY = 0x002
_IN_GONE = 0x400 | 0x800 | 0x8000  # IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED (watch removed)
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC


#: ctypes, inotify_init1(flags) and inotify_add_watch(fd, path, mask).
_Inotify = tuple[ModuleType, Callable[[int], int], Callable[[int, bytes, int], int]]


def _load_inotify() -> _Inotify | None:
    """libc's inotify_init1 and inotify_add_watch, or None where there are none."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        init, add = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError, ImportError):
        return None
    init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
    add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
    return ctypes, init, add


_inotify: _Inotify | None | Literal[False] = False  # False: not looked up yet


class _Watch:
    """An inotify descriptor watching one database's ``-wal`` file (fd None: no watch)."""

    fd: int | None

    def __init__(self, path: str):
        self.path, self.fd, self.hot_until, self.retry_at = path, None, 0.0, 0.0
        self.calm = False  # the change that woke it was seen: one look at the window's end

    def ready(self) -> bool:
        """Is there a watch? (Tries to set one, at most once per RETRY.)"""
        global _inotify
        if self.fd is not None:
            return True
        now = time.monotonic()
        if now < self.retry_at:
            return False
        self.retry_at = now + RETRY
        if _inotify is False:
            _inotify = _load_inotify()
        if _inotify is None:
            return False
        ctypes, init, add = _inotify
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return False  # EMFILE: the per-user instance limit
        if add(fd, os.fsencode(self.path + "-wal"), _IN_MODIFY | _IN_GONE) < 0:
            os.close(fd)  # ENOENT (no WAL: rollback-journal mode), ENOSPC (the watch limit), ...
            return False
        self.fd = fd
        return True

    def sleep(self, timeout: float) -> None:
        now = time.monotonic()
        if now >= self.hot_until:
            limit = SLOW_POLL
        else:
            limit = max(POLL, self.hot_until - now) if self.calm else POLL
        assert self.fd is not None  # called once ready() said there is a watch
        try:
            woken, _, _ = select.select([self.fd], [], [], max(0.0, min(timeout, limit)))
        except OSError:
            woken = []
        if woken:
            self._drain()
            self.hot_until, self.calm = time.monotonic() + HOT, False

    def noticed(self) -> None:
        self.calm = True

    def _drain(self) -> None:
        """Read the events; a -wal file that went away (journal mode changed, the database
        closed by its last user) drops the watch, to be set again on the new file."""
        assert self.fd is not None  # sleep() was woken by this watch
        try:
            while events := os.read(self.fd, 4096):
                offset = 0
                while offset < len(events):  # struct inotify_event: wd, mask, cookie, len, name
                    _, mask, _, size = struct.unpack_from("iIII", events, offset)
                    offset += 16 + size
                    if mask & _IN_GONE:
                        self.close()
                        self.retry_at = 0.0
                        return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.close()  # something is wrong with it: poll instead, set a new one later

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_watch: _Watch | None = None


def sleep(timeout: float) -> None:
    """Sleep up to ``timeout`` seconds, less when another process may have committed to the
    SQLite database open here. Callers check ``db.change_token()`` afterwards, and loop."""
    global _watch
    if dialect().listens:
        wait_change(max(0.0, min(timeout, SLOW_POLL)))
        return
    path = database.obj.database
    if path == ":memory:":
        time.sleep(max(0.0, min(timeout, POLL)))
        return
    if _watch is None or _watch.path != path:
        if _watch is not None:
            _watch.close()
        _watch = _Watch(path)
    if _watch.ready():
        _watch.sleep(timeout)
    else:
        time.sleep(max(0.0, min(timeout, POLL)))


def noticed() -> None:
    """The caller saw the change that woke it: one more look, at the end of ``HOT``."""
    if _watch is not None:
        _watch.noticed()
