"""Fixtures for every test module (helpers are plain functions in helpers.py)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
from pg_support import (
    PG_URL,
    SKIP_REASON,
    drop_pending,
    drop_schema,
    drop_schema_later,
    fresh_schema,
    ready_schema,
)

import helpers
from helpers import T0, Result, marked, needs_process, run_cli, run_in_process

#: Test modules whose tests run on both backends (the ``backend`` parameter); elsewhere, and for
#: tests marked ``sqlite_only`` (they read the SQLite file or its locks), SQLite alone. Tests
#: marked ``both_backends`` join them from any module.
BOTH_BACKENDS = {"test_engine", "test_cli"}

#: Modules of long tests (tens of seconds each on two cores), started first in parallel runs.
LONG_FIRST = {
    "test_reliability_load",
    "test_reliability_db",
    "test_reliability_processes",
    "test_tui_snapshots",
    "test_reliability_security",
    "test_bulk_enqueue",
    "test_web",
    "test_worker_processes",
    "test_postgres",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: reads or locks the SQLite file itself")
    config.addinivalue_line("markers", "both_backends: runs on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "netns: two hosts in network namespaces (root, PostgreSQL)")
    config.addinivalue_line(
        "markers",
        "slow: takes a minute or more (installs a virtualenv); "
        "-m 'not slow' leaves it out, the whole suite runs it",
    )
    config.addinivalue_line(
        "markers",
        "real_cli: the cli fixture runs every command as a "
        "process of its own (signals, terminals, its environment)",
    )
    config.addinivalue_line(
        "markers",
        "alone: runs with no other test beside it (it measures "
        "time, or shares what other tests would disturb)",
    )


def pytest_generate_tests(metafunc):
    uses_db = "home" in metafunc.fixturenames or "backend" in metafunc.fixturenames
    if not uses_db or metafunc.definition.get_closest_marker("sqlite_only"):
        return
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in BOTH_BACKENDS or metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


# --- what a test started: the process-table scans run only when there is something to find ---
# A scan of every process (its command line and environment) costs ~35 ms of CPU on a quiet
# machine and several times that on a busy one; the suite made three or four per test. A test
# that started no process (most run the engine and the CLI in-process) left nothing behind, so
# its scans are skipped; the rest look only at processes younger than the test.

#: Events of the audit hooks (PEP 578) raised when this process starts another.
_STARTING = frozenset(
    {
        "subprocess.Popen",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.posix_spawnp",
        "os.spawn",
        "os.system",
    }
)
_starts = [0]  # processes this process started, in all (audit hooks cannot be removed: one)


def _count_starts(event: str, args) -> None:
    if event in _STARTING:
        _starts[0] += 1


sys.addaudithook(_count_starts)
_test_began = {"starts": 0, "at": 0.0}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _test_began.update(starts=_starts[0], at=time.time())
    helpers.TEST_BEGAN = _test_began["at"]


def _started_any() -> bool:
    """Whether this test (its fixtures included) started a process."""
    return _starts[0] != _test_began["starts"]


@contextlib.contextmanager
def _uncounted():
    """Start a process the fixture itself stops (nothing for the scans to find)."""
    before = _starts[0]
    try:
        yield
    finally:
        _starts[0] = before


def pytest_sessionfinish(session):
    if PG_URL:
        drop_pending()


def pytest_collection_modifyitems(config, items):
    """A parameter marked ``sqlite_only`` (one case of a test that runs on both) is left out on
    PostgreSQL."""
    drop = [
        item
        for item in items
        if getattr(item, "callspec", None) is not None
        and item.callspec.params.get("backend") == "postgres"
        and item.get_closest_marker("sqlite_only")
    ]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in drop]
    # In parallel runs (loadgroup, no reordering: xdist hands tests out in this order) the
    # longest start first, so the run does not end waiting for one of them, and the tests that
    # run alone come last, as one group, so none waits long for the room (see _Room).
    for item in items:
        if item.get_closest_marker("alone"):
            item.add_marker(pytest.mark.xdist_group("alone"))

    def rank(item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        if item.get_closest_marker("alone"):
            return 3
        return 1 if item.module.__name__.rpartition(".")[2] in LONG_FIRST else 2

    items.sort(key=rank)


# --- running beside other tests (pytest-xdist: the -n of pyproject's addopts) ----------------


class _Room:
    """A readers-writer lock between the processes of one run, on two lock files: every test
    holds the room shared; a test marked ``alone`` holds it exclusively. The gate, held by a
    test waiting to be alone, keeps new tests out meanwhile, so it is not starved."""

    def __init__(self, base: str):
        self.gate = open(base + ".gate", "a+b")  # noqa: SIM115 (held for the whole run)
        self.room = open(base + ".room", "a+b")  # noqa: SIM115

    @contextlib.contextmanager
    def enter(self, alone: bool):
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(self.gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self.gate, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def _room():
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:  # one process: nothing runs beside anything
        yield None
        return
    room = _Room(os.path.join(tempfile.gettempdir(), f"queuectl-tests-{run}"))
    yield room
    room.gate.close()
    room.room.close()


@pytest.fixture(autouse=True)
def _turn(request: pytest.FixtureRequest, _room):
    """Set up, run and tear down each test inside the room (see ``_Room``)."""
    if _room is None:
        yield
        return
    with _room.enter(alone=request.node.get_closest_marker("alone") is not None):
        yield


@pytest.fixture
def backend(request) -> str:
    """ "sqlite", or "postgres" (a schema of its own on QUEUECTL_TEST_PG; skipped without it)."""
    name = getattr(request, "param", "sqlite")
    if name == "postgres" and not PG_URL:
        pytest.skip(SKIP_REASON)
    return name


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> Path:
    """A private QUEUECTL_HOME for this test (also for the in-process engine); on PostgreSQL,
    QUEUECTL_DB names a fresh schema holding an empty queue (``pg_support.ready_schema``: what
    the first command would have made), dropped afterwards."""
    path = tmp_path / "qhome"
    monkeypatch.setenv("QUEUECTL_HOME", str(path))
    monkeypatch.delenv("QUEUECTL_DB", raising=False)
    if backend != "postgres":
        yield path
        return
    schema, url = ready_schema()
    monkeypatch.setenv("QUEUECTL_DB", url)
    monkeypatch.setattr(helpers, "DB_URL", url)
    try:
        yield path
    finally:
        _kill_workers(path)
        from queuectl_tui.store import close_db

        close_db()
        drop_schema_later(schema)


@pytest.fixture
def db(home: Path):
    """The engine's database opened in-process on ``home``; closed (and workers reaped) after."""
    from queuectl_tui.store import close_db, open_db

    database = open_db(helpers.DB_URL or home / "queuectl.db")
    yield database
    _kill_workers(home)
    close_db()


@pytest.fixture
def add(db, tmp_path):
    """add(id, command="true", now=T0, **spec_fields) -> Job, enqueued in-process."""
    from queuectl_tui import engine, spec

    def add(job_id: str | None = None, command: str = "true", *, now: float = T0, **fields):
        raw = {"command": command, **fields}
        if job_id:
            raw["id"] = job_id
        return engine.enqueue([spec.normalize(raw, now=now)], cwd=str(tmp_path), env={}, now=now)[0]

    return add


@pytest.fixture
def worker(db):
    """A worker row registered at T0 (no process: the test claims and finishes for it)."""
    from queuectl_tui import engine

    return engine.register_worker(now=T0)


@pytest.fixture
def cli(home: Path, request: pytest.FixtureRequest):
    """``cli("status", "--json")`` runs the CLI on ``home`` and returns what it printed and its
    exit code: in this process (``helpers.run_in_process``: what a user sees, without an
    interpreter's start), except the commands that start or wait for processes
    (``helpers.needs_process``) and in tests marked ``real_cli``, which get a real process
    (``run_cli``), as ``cli_process`` always does."""
    real = request.node.get_closest_marker("real_cli") is not None

    def call(*args: str, **kwargs) -> Result:
        if real or needs_process(args):
            return run_cli(home, *args, **kwargs)
        return run_in_process(home, *args, **kwargs)

    yield call
    _kill_workers(home)


@pytest.fixture
def cli_process(home: Path):
    """``cli_process("status")``: the real CLI in a subprocess on ``home``, always."""

    def call(*args: str, **kwargs) -> Result:
        return run_cli(home, *args, **kwargs)

    yield call
    _kill_workers(home)


def _young_processes(attrs: list[str]):
    """process_iter over the processes started since this test began (with a margin: psutil's
    start times count from a boot time rounded to the second), none if it started none."""
    if not _started_any():
        return
    since = _test_began["at"] - helpers.START_SLACK
    for proc in psutil.process_iter(["create_time", *attrs]):
        if (proc.info["create_time"] or 0) >= since and proc.pid != os.getpid():
            yield proc


def _kill_workers(home: Path) -> None:
    """Never leave a detached worker behind a test (they would outlive pytest)."""
    marker = str(home)
    for proc in _young_processes(["cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if "queuectl_tui" not in cmd:
                continue
            where = marker if marker in cmd else proc.environ().get("QUEUECTL_HOME") or ""
            if where == marker or where.startswith(marker + "/"):
                if os.getpgid(proc.pid) == proc.pid:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass


@pytest.fixture
def two_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two hosts (tests/netns.py) on a fresh PostgreSQL schema: ``network.hosts`` (each with its
    ``url``, ``cli()``, ``start_worker()``, ``cut()``, ``heal()``), ``network.url`` for this
    process. Skipped with the reason where they cannot be had, except on CI (CI=true), where
    that is a failure. Namespaces, rules and workers are removed whatever the test did."""
    import netns

    reason = netns.unavailable(PG_URL)
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"two hosts: {reason}")
        pytest.skip(f"two hosts: {reason}")
    monkeypatch.setenv("QUEUECTL_HOME", str(tmp_path / "here"))  # this process, a third host
    monkeypatch.delenv("QUEUECTL_DB", raising=False)
    schema, url = fresh_schema()
    network = netns.Network(url, tmp_path)
    try:
        yield network.up()
    finally:
        network.down()
        from queuectl_tui.store import close_db

        close_db()
        drop_schema(schema)


@pytest.fixture
def mark():
    """A unique marker for the processes of this test's jobs; leftovers are killed after."""
    marker = uuid.uuid4().hex
    yield marker
    for proc in marked(marker) if _started_any() else []:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


@pytest.fixture
def reap(tmp_path):
    """After the test, kill whatever it left running that belongs to its tmp_path (detached
    workers found by their --db or QUEUECTL_HOME, jobs by their command line), even when it
    failed half-way. Test modules enable it with ``pytestmark``."""
    yield
    marker = str(tmp_path)
    victims = []
    for proc in _young_processes(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if marker in " ".join(proc.info["cmdline"] or []) or marker in proc.environ().get(
                "QUEUECTL_HOME", ""
            ):
                proc.send_signal(signal.SIGKILL)
                victims.append(proc)
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=5)


# --- the console tests ---------------------------------------------------------------------


@pytest.fixture
def stable_terminal(monkeypatch: pytest.MonkeyPatch):
    """Colours on, local time = UTC (the tables show local times). The console tests use it
    for every test (``pytestmark``)."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def stand_in():
    """A harmless process standing in for the seeded 'running' workers and jobs: whatever a
    test signals by their PIDs reaches this sleep, never the test process."""
    with _uncounted():  # stopped here: nothing for the scans to find
        proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def seeded(db, home: Path, stand_in: int) -> Path | str:
    """The sample history at NOW, with three live-looking workers (two busy)."""
    from queuectl_tui import demo
    from tui_support import NOW, SEED_CWD

    demo.seed(NOW, cwd=SEED_CWD, running_pid=stand_in)
    return helpers.DB_URL or home / "queuectl.db"  # the URL on PostgreSQL


@pytest.fixture
def empty_db(db, home: Path) -> Path:
    return home / "queuectl.db"
