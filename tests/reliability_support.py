"""Helpers for the reliability suite (tests/test_reliability_*.py): the scale knob, byte-level
snapshots of a data directory, process hunting by a unique token, and privilege dropping for
the permission tests (root ignores file modes)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from helpers import Result

ROOT = Path(__file__).resolve().parent.parent
STRESS = ROOT / "bench" / "stress.py"

#: Size of the load and chaos scenarios: 1.0 is the full 4 producers x 2,000 jobs. The default
#: keeps the whole reliability suite to a couple of minutes on a 2-core CI machine; run
#: QUEUECTL_STRESS_SCALE=1 pytest tests/test_reliability_load.py for the full size.
DEFAULT_SCALE = 0.5
SCALE = float(os.environ.get("QUEUECTL_STRESS_SCALE") or DEFAULT_SCALE)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (the database and its logs):
    byte-for-byte, so "unchanged" means unchanged, not "the same rows".

    Two SQLite side files are not data and are left out: ``-shm`` (the shared-memory index of
    the write-ahead log, rebuilt by whoever opens the database, even a reader) and an empty
    ``-wal`` (a log with nothing in it, which a reader that cannot delete it leaves behind).
    A ``-wal`` with content is data and counts."""
    result = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith("-shm"):
            continue
        data = path.read_bytes()
        if path.name.endswith("-wal") and not data:
            continue
        result[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return result


def one_line_error(result: Result, code: int) -> str:
    """The expected exit code, exactly one line on stderr, no traceback; returns the line."""
    assert result.code == code, (f"exit {result.code}, wanted {code}\nstdout: {result.out[-2000:]}\n"
                                 f"stderr: {result.err[-2000:]}")
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, f"wanted one line on stderr, got:\n{result.err}"
    assert lines[0].strip(), "the error line is empty"
    return lines[0]


def succeeded(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out[-2000:]}\nstderr: {result.err[-2000:]}"
    assert "Traceback" not in result.err, result.err
    return result


def token() -> str:
    """A unique number usable as a ``sleep`` argument, so its processes can be found."""
    return f"{600 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"


def processes_with(text: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if text in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def kill_processes_with(text: str) -> None:
    for proc in processes_with(text):
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
    for proc in psutil.process_iter(["cmdline", "environ", "status"]):
        try:
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            env = proc.info.get("environ") or {}
            if marker in " ".join(proc.info["cmdline"] or []) or marker in env.get("QUEUECTL_HOME", ""):
                proc.send_signal(signal.SIGKILL)
                victims.append(proc)
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=5)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a parent that is not us counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- permissions -----------------------------------------------------------------------------

_PR_CAPBSET_DROP = 24
_DAC_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _drop_dac() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def permission_preexec():
    """A preexec_fn under which file modes bind the child like any user.

    Not root: nothing to do. Root (as in CI): the child keeps uid 0 (so it can still run the
    interpreter under /root) but loses the capabilities that let root ignore file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from its bounding set before exec, so a
    0500 directory is read-only to it exactly as to its owner. Skips the test if that is not
    possible here (no CAP_SETPCAP, not Linux)."""
    if os.geteuid() != 0:
        return None
    if not sys.platform.startswith("linux"):
        pytest.skip("running as root and cannot drop the DAC capabilities on this platform")
    import subprocess
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_drop_dac, check=True,
                       capture_output=True)
    except (subprocess.SubprocessError, OSError):
        pytest.skip("running as root without CAP_SETPCAP: cannot make file modes bind a child")
    return _drop_dac
