"""Where queuectl keeps its data, created private (0700 dirs, 0600 files) whatever the umask."""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:  # pathlib loads urllib and ipaddress (~3 ms): not on a command's way
    from pathlib import Path


def home() -> Path:
    from pathlib import Path

    return Path(_home())


def _home() -> str:
    return os.path.expanduser(os.environ.get("QUEUECTL_HOME") or "~/.queuectl")


def default_db_path() -> Path | str:
    env = os.environ.get("QUEUECTL_DB")
    return db_target(env) if env else home() / "queuectl.db"


def target(value: str | None) -> str:
    """What ``--db`` (None: not given) opens, as text: a URL as given, else the file's path
    (default ``$QUEUECTL_DB``, else ``$QUEUECTL_HOME/queuectl.db``, ``~`` expanded)."""
    value = value or os.environ.get("QUEUECTL_DB")
    if not value:
        return real(os.path.join(_home(), "queuectl.db"))
    return value if is_url(value) else real(os.path.expanduser(value))


def real(path: str) -> str:
    """The database file's real path (symbolic links resolved, absolute): what its logs,
    worker journals, writers' lock and ``-wal`` watch are found by. SQLite itself follows a
    link to the file, so a database reached through one must be the same database in every
    other respect too (its ``-wal`` is beside the real file, never beside the link)."""
    return clean(os.path.realpath(path))


def clean(path: str) -> str:
    """``str(Path(path))`` without loading pathlib: no repeated ``/``, no ``.`` parts."""
    root = "//" if path.startswith("//") and not path.startswith("///") else path[:1] == "/" and "/"
    return (root or "") + "/".join(p for p in path.split("/") if p and p != ".") or "."


def is_url(target: object) -> TypeGuard[str]:
    """``scheme://…``: a database server, never a file name (``postgresql://u:p@h/q`` taken for
    a path would silently become an SQLite file in a directory tree named ``postgresql:``)."""
    return isinstance(target, str) and _URL.match(target) is not None


def db_target(value: str | Path) -> Path | str:
    """``--db``/``QUEUECTL_DB``: a URL stays as given, anything else is a file path."""
    from pathlib import Path

    return value if is_url(value) else Path(real(os.path.expanduser(value)))


def logs_dir(db_path: Path | str) -> Path:
    """Logs sit beside the database, so a database and its output move together; with a
    database server they stay on the worker's host, in ``$QUEUECTL_HOME/logs``."""
    from pathlib import Path

    return Path(logs_path(db_path))


def logs_path(db_path: Path | str) -> str:
    """``logs_dir`` as text."""
    if is_url(db_path):
        return os.path.join(_home(), "logs")
    return os.path.join(os.path.dirname(os.fspath(db_path)), "logs")


def ensure_private_dir(path: Path | str) -> Path | str:
    """Create ``path`` and any missing parents, each 0700 whatever the umask.

    Only directories created here are given that mode: one that already exists may be shared
    (``--db /tmp/q.db`` must not make /tmp private) or set up so on purpose, and is left alone.
    """
    missing = []
    probe = os.fspath(path)
    while not os.path.exists(probe) and (parent := os.path.dirname(probe) or ".") != probe:
        missing.append(probe)
        probe = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    return path


def create_new_file(path: Path | str) -> int:
    """Create ``path`` for writing, 0600 from birth (mode, then fchmod past the umask); fail if
    anything is already there, a symbolic link included (O_EXCL|O_NOFOLLOW)."""
    fd = os.open(path, _NEW, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def create_private_file(path: Path) -> int:
    """Create a job's log file in a private directory (see ``open_private_dir``), 0600.

    Never through a symlink, never into a file made before (another process could hold it
    open and read the job's output): O_EXCL|O_NOFOLLOW. Row ids, and so log names, are reused
    after deletion, so a leftover of ours at the path is removed (unlink removes a symlink
    itself, never its target) and the file made anew; anything else there is refused.
    """
    directory = open_private_dir(path.parent)
    try:
        try:
            fd = os.open(path.name, _NEW, 0o600, dir_fd=directory)
        except FileExistsError:
            _remove_leftover(path, directory)
            fd = os.open(path.name, _NEW, 0o600, dir_fd=directory)
        os.fchmod(fd, 0o600)
        return fd
    finally:
        os.close(directory)


def prepare_private_file(path: Path) -> None:
    """Refuse now what ``create_private_file`` would refuse, without making the file: a
    directory that is not private or not writable, a leftover of someone else at the path (a
    leftover of ours is removed, so that no reader takes it for this file). A job's log is made
    at its first byte (``run.launch.LogFile``); its attempt fails before it starts."""
    directory = open_private_dir(path.parent)
    try:
        effective = os.access in os.supports_effective_ids
        if not os.access(".", os.W_OK | os.X_OK, dir_fd=directory, effective_ids=effective):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        try:
            _remove_leftover(path, directory)
        except FileNotFoundError:
            pass
    finally:
        os.close(directory)


def _remove_leftover(path: Path, directory: int) -> None:
    """Unlink what is at ``path`` (in ``directory``) if it is ours, else refuse it."""
    found = os.stat(path.name, dir_fd=directory, follow_symlinks=False)
    if found.st_uid != os.geteuid():
        raise OSError(
            errno.EEXIST,
            f"{path} already exists and belongs to uid {found.st_uid}, not to this user",
        )
    os.unlink(path.name, dir_fd=directory)


def open_private_append(path: Path) -> int:
    """Open (or create) a log that is appended to across runs, such as workers.log: in a private
    directory, not through a symlink, and only a plain file of ours with no other name."""
    directory = open_private_dir(path.parent)
    try:
        try:
            fd = os.open(
                path.name,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=directory,
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OSError(
                    errno.ELOOP, f"{path} is a symbolic link; refusing to write through it"
                ) from None
            raise
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid() or found.st_nlink != 1:
            os.close(fd)
            raise OSError(
                errno.EPERM, f"{path} is not a plain file of this user; refusing to write to it"
            )
        os.fchmod(fd, 0o600)
        return fd
    finally:
        os.close(directory)


def open_private_dir(path: Path | str) -> int:
    """A descriptor of ``path`` once it is known to be a directory (not a symlink) owned by this
    user and writable by no one else; files are then made relative to it, so the directory
    checked is the one written to. A directory someone else made first (``/tmp/logs`` for
    ``--db /tmp/q.db``) could hold planted links or files: refused with the reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise OSError(
                exc.errno,
                f"the logs directory {path} is a symbolic link; refusing to write logs there",
            ) from None
        raise
    problem = _not_private(os.fstat(fd))
    if problem:
        os.close(fd)
        raise OSError(
            errno.EPERM,
            f"the logs directory {path} {problem}; refusing to write logs "
            "there (remove it, or keep the database in a private directory)",
        )
    return fd


def check_private_dir(path: Path) -> None:
    """Raise OSError (with the reason) unless ``path`` is a private directory of ours."""
    os.close(open_private_dir(path))


def _not_private(found: os.stat_result) -> str | None:
    if found.st_uid != os.geteuid():
        return f"belongs to uid {found.st_uid}, not to this user"
    if found.st_mode & 0o022:
        return f"is writable by others (mode {stat.S_IMODE(found.st_mode):o})"
    return None


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
