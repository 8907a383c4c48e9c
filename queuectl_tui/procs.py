"""Process identity and process-tree killing (psutil).

A PID alone is not an identity: the kernel reuses them. A process is "ours" only when both
its PID and its start time match what we recorded, so nothing here ever signals a stranger.

psutil is imported where a process is inspected beyond /proc/<pid>/stat (it costs ~10 ms of
every command's start): on Linux, ``start_time`` and ``process_status`` read that file
themselves, so ``status`` and ``enqueue`` never load it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

#: The host name recorded with workers and attempts. QUEUECTL_HOSTNAME overrides it where the
#: system's name is not unique among the machines sharing a database (cloned containers).
_HOST = os.environ.get("QUEUECTL_HOSTNAME") or socket.gethostname()
_TOLERANCE = 0.05  # seconds; create_time is derived from boot time and clock ticks
SIGKILL = 9  # signal.SIGKILL (9 on every POSIX system): importing signal costs ~0.5 ms a start

#: Every process of a job carries ``marker(shell pid, shell start time)`` in this variable
#: (unless it clears its environment), so recovery can find those that left the job's group.
MARKER_VAR = "QUEUECTL_JOB_PROCESS"


def hostname() -> str:
    return _HOST


def start_time(pid: int) -> float | None:
    """psutil's ``create_time`` of ``pid``. Read straight from /proc on Linux (the same sum:
    boot time plus the start in clock ticks), with the boot time read at most once a second:
    a worker asks this once per job, and psutil.Process() costs ~90 us of it."""
    if _PROC_STAT:
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:  # not open(): a buffered file object costs six more system calls
                data = os.read(fd, 4096)
            finally:
                os.close(fd)
            ticks = int(data[data.rindex(b")") + 2 :].split()[19])
        except (OSError, ValueError, IndexError):
            return None
        return ticks / _CLOCK_TICKS + _boot_time()
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


_PROC_STAT = sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if _PROC_STAT else 100
_boot = (0.0, 0.0)  # (monotonic time read, boot time)


def _boot_time() -> float:
    """psutil.boot_time() on Linux: the ``btime`` line of /proc/stat."""
    global _boot
    now = time.monotonic()
    if now - _boot[0] > 1.0:
        with open("/proc/stat", "rb") as handle:
            for line in handle:
                if line.startswith(b"btime"):
                    _boot = (now, float(line.split()[1]))
                    break
            else:
                raise RuntimeError("line 'btime' not found in /proc/stat")
    return _boot[1]


_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def crowding() -> float | None:
    """Runnable tasks per CPU this process may run on, now (the kernel's running count in
    /proc/loadavg, the caller included): above one, every CPU has tasks waiting and each of
    them gets about 1/crowding of a CPU. None without /proc/loadavg."""
    if not _PROC_STAT:
        return None
    try:
        fd = os.open("/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 256)
        finally:
            os.close(fd)
        return int(data.split()[3].split(b"/")[0]) / _CPUS
    except (OSError, ValueError, IndexError):
        return None


#: psutil's names of the process states in /proc/<pid>/stat (psutil.STATUS_*).
_STATUSES = {
    b"R": "running",
    b"S": "sleeping",
    b"D": "disk-sleep",
    b"T": "stopped",
    b"t": "tracing-stop",
    b"Z": "zombie",
    b"X": "dead",
    b"x": "dead",
    b"K": "wake-kill",
    b"W": "waking",
    b"I": "idle",
    b"P": "parked",
}


def process_status(pid: int | None, started: float | None) -> str | None:
    """``same_process(pid, started).status()`` (a psutil.STATUS_* name), or None when there
    is no such live process. On Linux read from /proc/<pid>/stat alone, without psutil."""
    if not pid or started is None:
        return None
    if not _PROC_STAT:
        proc = same_process(pid, started)
        if proc is None:
            return None
        import psutil

        try:
            return proc.status()
        except psutil.Error:
            return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        fields = data[data.rindex(b")") + 2 :].split()
        status, ticks = fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None
    if abs(ticks / _CLOCK_TICKS + _boot_time() - started) > _TOLERANCE:
        return None
    name = _STATUSES.get(status, "?")
    return None if name == "zombie" else name


def same_process(pid: int | None, started: float | None) -> psutil.Process | None:
    """The live process with this PID and start time, or None (gone, reused, or a zombie)."""
    if not pid or started is None:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > _TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def kill_tree(
    pid: int | None,
    started: float | None,
    *,
    sig: int = SIGKILL,
    wait: float = 2.0,
    search: bool = True,
) -> int:
    """Kill everything of the job whose shell had this PID and start time. Returns how many
    processes were signalled; with ``wait``, returns once they are gone (or zombies: exited).

    Found are the shell with its descendants (collected before anything is signalled, so
    children re-parented by their parent's death are still found) and, with ``search`` (a scan
    of the process table, for recovery), two kinds of processes that outlive the shell:
    members of its process group, which exists as long as one member lives and keeps the
    kernel from reusing the PID, started at or after the shell; and processes carrying the
    job's marker (``MARKER_VAR``), even those that left the group (setsid). Then their
    descendants. A PID now owned by a stranger (other start time) means that group is not the
    job's. The caller that owns the shell as a child passes ``wait=0`` and reaps it itself
    (psutil would steal its status).
    """
    if not pid or started is None:
        return 0
    import psutil

    root = same_process(pid, started)
    group = search and not _someone_else(pid, started)
    hit: set[int] = set()
    victims: list[psutil.Process] = []
    for round_ in range(5):  # again while new processes turn up (one forked before the signal)
        found = _job_processes(pid, started, root, group, search)
        fresh = [p for p in found if p.pid not in hit and p.pid != os.getpid()]
        if not fresh:
            break
        if round_ == 0 and root is not None:
            try:  # the live shell leads its own group (start_new_session): all of it is ours
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in fresh:
            try:
                proc.send_signal(sig)
                hit.add(proc.pid)
                victims.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    if wait:
        _wait_exited(victims, wait)
    return len(hit)


def _someone_else(pid: int, started: float) -> bool:
    """Is this PID now a different process than the job's shell (so its group is not ours)?"""
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) > _TOLERANCE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _job_processes(
    pid: int, started: float, root: psutil.Process | None, group: bool, search: bool
) -> list[psutil.Process]:
    import psutil

    found = {}
    if root is not None:
        found[root.pid] = root
    if search:
        for proc in psutil.process_iter():
            try:
                if proc.create_time() < started - _TOLERANCE:
                    continue  # older than the job: cannot be one of its processes
                if (group and os.getpgid(proc.pid) == pid) or _marked(proc, pid, started):
                    found[proc.pid] = proc
            except (psutil.Error, ProcessLookupError, PermissionError):
                pass
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.Error:
            pass
    return list(found.values())


def _marked(proc: psutil.Process, pid: int, started: float) -> bool:
    value = proc.environ().get(MARKER_VAR, "")
    mark_pid, _, mark_started = value.partition(":")
    try:
        return int(mark_pid) == pid and abs(float(mark_started) - started) <= _TOLERANCE
    except ValueError:
        return False


def marker(pid: int, started: float | None) -> str:
    """The value of ``MARKER_VAR`` in the environment of every process of this job."""
    return f"{pid}:{started!r}"


def _wait_exited(processes: list[psutil.Process], timeout: float) -> None:
    """Until each has exited. A zombie has: only its reaping is left, to whoever inherited it
    (a slow or non-reaping init may never do it), so psutil.wait_procs is no use here."""
    deadline = time.monotonic() + timeout
    alive = list(processes)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        if alive:
            time.sleep(0.01)


def _running(proc: psutil.Process) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- the worker as a child subreaper ---------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def become_subreaper() -> bool:
    """Make this process inherit the orphans of its descendants instead of init (Linux), so
    that a job's processes that left its group (setsid, setpgid, double fork) can still be
    found and killed by ``kill_leftovers``. Only for a process that runs jobs and nothing
    else: from then on, every descendant it has between jobs is a job's leftover."""
    global _subreaper
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _subreaper = True
    return True


def is_subreaper() -> bool:
    """Did ``become_subreaper`` make this process inherit its jobs' orphans?"""
    return _subreaper


_spared: set[int] = set()


def spare(pid: int) -> None:
    """A child of the worker that is none of a job's leftovers (a hook it runs): never killed
    or reaped by ``kill_leftovers``, never counted as a job's orphan (usage)."""
    _spared.add(pid)


def unspare(pid: int) -> None:
    _spared.discard(pid)


def spared() -> frozenset[int]:
    return frozenset(_spared)


def kill_leftovers(
    *,
    keep: int | None = None,
    group: int | None = None,
    wait: float = 2.0,
    reaped: Callable[[int, Any], None] | None = None,
) -> int:
    """In a subreaper worker, between jobs: kill every descendant but ``keep`` (the worker's
    job host shell) and reap them, and wait until process group ``group`` (the job's) is empty,
    so that an orphan still on its way to us (its parent dying in the group) is caught too.
    Returns how many were killed. Call only once the job's own shell has been reaped.
    ``reaped(pid, rusage)`` is told of each process reaped (``os.wait4``: what it cost).

    Costs a read of /proc/self/task/*/children (and one kill(0)) when the job left nothing
    behind; a no-op in a process that is not a subreaper (whose other children are none of its
    jobs' business)."""
    if not _subreaper:
        return 0
    killed: set[int] = set()
    deadline = time.monotonic() + wait
    while True:
        children = [pid for pid in _children() if pid != keep and pid not in _spared]
        busy = False
        for pid in children:
            try:
                done, _, rusage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done:
                if reaped is not None:
                    reaped(done, rusage)
                continue
            busy = True
            if pid not in killed:
                _kill_with_descendants(pid)
                killed.add(pid)
        if group is not None and not busy:
            try:
                os.killpg(group, 0)
                busy = True  # members still dying: their orphans will come to us
            except (ProcessLookupError, PermissionError):
                group = None
        if not busy or time.monotonic() > deadline:
            return len(killed)  # done, or unkillable (stuck in the kernel): leave it
        time.sleep(0.002)


def _children() -> list[int]:
    """This process's children: orphans re-parented to a subreaper may hang under any thread."""
    try:
        pids: list[int] = []
        for task in os.listdir("/proc/self/task"):  # after every job: plain reads, no file objects
            fd = os.open(f"/proc/self/task/{task}/children", os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = b""
                while chunk := os.read(fd, 65536):
                    data += chunk
            finally:
                os.close(fd)
            pids.extend(int(pid) for pid in data.split())
        return pids
    except OSError:  # no CONFIG_PROC_CHILDREN: ask psutil (a scan of /proc)
        import psutil

        try:
            return [proc.pid for proc in psutil.Process().children()]
        except psutil.Error:
            return []


def _kill_with_descendants(pid: int) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
        victims = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return
    for victim in victims:
        try:
            victim.send_signal(SIGKILL)
        except psutil.Error:
            pass
