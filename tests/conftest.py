from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

import helpers
from helpers import Result, run_cli
from pg_support import PG_URL, SKIP_REASON, fresh_schema, drop_schema

#: Test modules whose tests run on both backends (the ``backend`` parameter); elsewhere, and for
#: tests marked ``sqlite_only`` (they read the SQLite file or its locks), SQLite alone. Tests
#: marked ``both_backends`` join them from any module.
BOTH_BACKENDS = {"test_engine", "test_cli"}


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: reads or locks the SQLite file itself")
    config.addinivalue_line("markers", "both_backends: runs on SQLite and on PostgreSQL")


def pytest_generate_tests(metafunc):
    uses_db = "home" in metafunc.fixturenames or "backend" in metafunc.fixturenames
    if not uses_db or metafunc.definition.get_closest_marker("sqlite_only"):
        return
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in BOTH_BACKENDS or metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def pytest_collection_modifyitems(config, items):
    """A parameter marked ``sqlite_only`` (one case of a test that runs on both) is left out on
    PostgreSQL."""
    drop = [item for item in items if getattr(item, "callspec", None) is not None
            and item.callspec.params.get("backend") == "postgres"
            and item.get_closest_marker("sqlite_only")]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in drop]


@pytest.fixture
def backend(request) -> str:
    """"sqlite", or "postgres" (a schema of its own on QUEUECTL_TEST_PG; skipped without it)."""
    name = getattr(request, "param", "sqlite")
    if name == "postgres" and not PG_URL:
        pytest.skip(SKIP_REASON)
    return name


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> Path:
    """A private QUEUECTL_HOME for this test (also for the in-process engine); on PostgreSQL,
    QUEUECTL_DB names a fresh schema, dropped afterwards."""
    path = tmp_path / "qhome"
    monkeypatch.setenv("QUEUECTL_HOME", str(path))
    monkeypatch.delenv("QUEUECTL_DB", raising=False)
    if backend != "postgres":
        yield path
        return
    schema, url = fresh_schema()
    monkeypatch.setenv("QUEUECTL_DB", url)
    monkeypatch.setattr(helpers, "DB_URL", url)
    try:
        yield path
    finally:
        _kill_workers(path)
        from queuectl_tui.db import close_db
        close_db()
        drop_schema(schema)


@pytest.fixture
def db(home: Path):
    """The engine's database opened in-process on ``home``; closed (and workers reaped) after."""
    from queuectl_tui.db import close_db, open_db

    database = open_db(helpers.DB_URL or home / "queuectl.db")
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
            where = env.get("QUEUECTL_HOME") or ""
            if "queuectl_tui" in cmd and (marker in cmd or where == marker
                                          or where.startswith(marker + "/")):
                if proc.pid != os.getpid():
                    os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
