"""Where queuectl keeps its data, created private (0700 dirs, 0600 files) whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("QUEUECTL_HOME") or Path.home() / ".queuectl").expanduser()


def default_db_path() -> Path:
    env = os.environ.get("QUEUECTL_DB")
    return Path(env).expanduser() if env else home() / "queuectl.db"


def logs_dir(db_path: Path) -> Path:
    """Logs sit beside the database, so a database and its output move together."""
    return db_path.parent / "logs"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents, each 0700 whatever the umask.

    Only directories created here are given that mode: one that already exists may be shared
    (``--db /tmp/q.db`` must not make /tmp private) or set up so on purpose, and is left alone.
    """
    missing = []
    probe = path
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    return path


def create_private_file(path: Path) -> int:
    """Open a new file for writing, 0600 from birth (O_CREAT with mode, then fchmod past umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd
