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
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask; set it explicitly on the leaf we own.
    if path.stat().st_mode & 0o777 != 0o700:
        try:
            os.chmod(path, 0o700)
        except PermissionError:
            pass
    return path


def create_private_file(path: Path) -> int:
    """Open a new file for writing, 0600 from birth (O_CREAT with mode, then fchmod past umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd
