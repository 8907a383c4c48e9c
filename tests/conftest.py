from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from helpers import Result, run_cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private QUEUECTL_HOME for this test (also for the in-process engine)."""
    path = tmp_path / "qhome"
    monkeypatch.setenv("QUEUECTL_HOME", str(path))
    monkeypatch.delenv("QUEUECTL_DB", raising=False)
    return path


@pytest.fixture
def db(home: Path):
    """The engine's database opened in-process on ``home``; closed (and workers reaped) after."""
    from queuectl_tui.db import close_db, open_db

    database = open_db(home / "queuectl.db")
    yield database
    _kill_workers(home)
    close_db()


@pytest.fixture
def cli(home: Path):
    """``cli("status", "--json")`` runs the real CLI in a subprocess on ``home``."""
    def call(*args: str, **kwargs) -> Result:
        return run_cli(home, *args, **kwargs)

    yield call
    _kill_workers(home)


def _kill_workers(home: Path) -> None:
    """Never leave a detached worker behind a test (they would outlive pytest)."""
    marker = str(home)
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            env = proc.info.get("environ") or {}
            if "queuectl_tui" in cmd and (marker in cmd or env.get("QUEUECTL_HOME") == marker):
                if proc.pid != os.getpid():
                    os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
