"""What an attempt's process tree costs: CPU, peak memory, processes; and its tree right now.

Two sources, combined when the attempt ends (``Cost.merge``):

- The kernel's accounting, which misses nothing that was reaped: the CPU time of a process
  that has been waited for is added to its parent's children times (``cutime``/``cstime``),
  descendants included. ``jobhost`` reads its host shell's children times before and after a
  job (the host reaps the job's subshell, which reaps what it started); ``runner`` gets its
  shell's ``wait4`` usage; the worker (a subreaper) reaps the orphans with ``wait4`` too
  (``procs.kill_leftovers``), whose peak memory (``ru_maxrss``) comes with them.
- Sampling (``Meter``, driven by ``Sampler``): while a job runs past its first tick, the tree
  is read from /proc at least every ``SAMPLE_EVERY`` seconds: the sum of RSS over the tree
  (the peak of that sum is the attempt's peak), each process's own peak (``VmHWM``), and the
  processes seen. A job that ends before its first sample costs nothing more to measure: its
  peak is what the kernel reported for the processes the worker reaped (``runner``: the whole
  tree, through its shell's ``wait4``) and, for a job run by the job host (whose shell the
  host reaps, keeping no figure), the size of a job's shell (see ``jobhost``).

Linux only (/proc); elsewhere the figures stay empty (NULL). Nothing here imports textual.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from queuectl_tui import procs

if TYPE_CHECKING:
    from resource import struct_rusage

SAMPLE_EVERY = 0.2  # seconds between two readings of a running job's tree (<= 250 ms)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = procs._CLOCK_TICKS
PROC = procs._PROC_STAT  # /proc is there to read


@dataclass
class Cost:
    """An attempt's figures as recorded: None where nothing measured them."""

    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    pids: set[int] = field(default_factory=set)  # processes known to have been the job's

    @property
    def processes(self) -> int | None:
        return len(self.pids) or None

    def add_cpu(self, seconds: float | None) -> None:
        if seconds is not None:
            self.cpu_seconds = (self.cpu_seconds or 0.0) + max(0.0, seconds)

    def add_peak(self, rss: int | None) -> None:
        if rss:
            self.peak_rss_bytes = max(self.peak_rss_bytes or 0, rss)

    def reaped(self, pid: int, rusage: struct_rusage, *, peak: bool = True) -> None:
        """A process of the job reaped with ``os.wait4``: its CPU (descendants it reaped
        included) and, unless not ``peak``, its kernel peak (ru_maxrss: kilobytes on Linux)."""
        self.pids.add(pid)
        self.add_cpu(rusage.ru_utime + rusage.ru_stime)
        if peak:
            self.add_peak(rusage.ru_maxrss * 1024)

    def merge(self, meter: Meter | None) -> Cost:
        """The kernel's figures with what sampling saw: the larger CPU (sampling covers
        processes that escaped to init, outside a subreaper) and peak, every process seen."""
        if meter is None:
            return self
        self.pids |= meter.pids
        if meter.cpu_seen and meter.cpu_seen > (self.cpu_seconds or 0.0):
            self.cpu_seconds = meter.cpu_seen
        self.add_peak(meter.peak)
        return self


# --- reading a tree from /proc -----------------------------------------------------------------


@dataclass
class ProcInfo:
    pid: int
    ppid: int
    depth: int  # 0: a root (the job's shell, or an orphan of the job under the worker)
    started: float  # as procs.start_time
    state: str  # psutil's names: running, sleeping, zombie...
    cpu_seconds: float  # user + system of the process itself
    rss: int  # bytes
    hwm: int  # the process's own peak RSS (VmHWM), bytes
    command: str = ""  # filled by read_tree(commands=True)
    cpu_percent: float | None = None  # filled by TreeReader


def _stat(pid: int) -> tuple[int, str, float, int, float] | None:
    """(ppid, state letter, cpu seconds, rss bytes, start ticks) of a live process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        fields = data[data.rindex(b")") + 2 :].split()
        return (
            int(fields[1]),
            fields[0].decode(),
            (int(fields[11]) + int(fields[12])) / _TICKS,
            int(fields[21]) * _PAGE,
            int(fields[19]),
        )
    except (OSError, ValueError, IndexError):
        return None


def hwm(pid: int) -> int:
    """The process's peak resident size so far (``VmHWM``), bytes; 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (/proc/PID/task/*/children; a scan of /proc without it)."""
    try:
        pids: list[int] = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                pids.extend(int(p) for p in handle.read().split())
        return pids
    except FileNotFoundError:
        if os.path.exists(f"/proc/{pid}"):  # no CONFIG_PROC_CHILDREN
            import psutil

            try:
                return [p.pid for p in psutil.Process(pid).children()]
            except psutil.Error:
                return []
        return []
    except OSError:
        return []


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces, as ps shows them ([name] when it has none)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
        if raw:
            return " ".join(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0"))
        with open(f"/proc/{pid}/comm", "rb") as handle:
            return f"[{handle.read().strip().decode('utf-8', 'replace')}]"
    except OSError:
        return "?"


def read_tree(
    pid: int,
    started: float | None,
    *,
    worker: int | None = None,
    keep: set[int] | None = None,
    commands: bool = False,
) -> list[ProcInfo]:
    """The job's tree in ``ps f`` order: its shell (``pid``, only while it is the process that
    started at ``started``) with every descendant, then, when ``worker`` (a subreaper) is
    given, the worker's other children (orphans of the job, which left the tree) with theirs,
    except the PIDs in ``keep`` (the job host shell). [] when the shell is gone."""
    if not PROC or not pid or started is None:
        return []
    boot = procs._boot_time()
    found: list[ProcInfo] = []
    seen: set[int] = set()

    def visit(p: int, depth: int) -> None:
        if p in seen:
            return
        seen.add(p)
        info = _stat(p)
        if info is None:
            return
        ppid, letter, cpu, rss, ticks = info
        row = ProcInfo(
            p,
            ppid,
            depth,
            ticks / _TICKS + boot,
            procs._STATUSES.get(letter.encode(), "?"),
            cpu,
            rss,
            hwm(p),
        )
        if commands:
            row.command = command_line(p)
        found.append(row)
        for child in sorted(children(p)):
            visit(child, depth + 1)

    root = _stat(pid)
    if root is None or abs(root[4] / _TICKS + boot - started) > procs._TOLERANCE:
        return []
    visit(pid, 0)
    if worker:
        skip = {pid, *(keep or ()), *procs.spared()}  # hooks are the worker's own
        for orphan in sorted(children(worker)):
            if orphan not in skip and orphan not in seen:
                orphan_info = _stat(orphan)
                # An orphan of this job started after its shell (older ones belong to no job).
                if (
                    orphan_info is not None
                    and orphan_info[4] / _TICKS + boot >= started - procs._TOLERANCE
                ):
                    visit(orphan, 0)
    return found


# --- sampling while a job runs -----------------------------------------------------------------


class Meter:
    """One attempt's sampled figures; ``sample`` runs on the sampler thread."""

    def __init__(
        self, pid: int, started: float | None, *, host: int | None = None, worker: int | None = None
    ) -> None:
        self.pid, self.started, self.host, self.worker = pid, started, host, worker
        self.peak = 0  # the larger of the largest RSS sum and the largest VmHWM seen
        self.pids: set[int] = {pid}
        self._cpu: dict[tuple[int, float], float] = {}  # each process's CPU at its last reading
        self.samples = 0

    @property
    def cpu_seen(self) -> float:
        """A lower bound of the tree's CPU: each process seen, at its last reading."""
        return sum(self._cpu.values())

    def sample(self) -> None:
        rows = read_tree(
            self.pid, self.started, worker=self.worker, keep={self.host} if self.host else None
        )
        if not rows:
            return
        self.samples += 1
        total = 0
        for row in rows:
            total += row.rss
            self.peak = max(self.peak, row.hwm)
            self.pids.add(row.pid)
            self._cpu[(row.pid, row.started)] = row.cpu_seconds
        self.peak = max(self.peak, total)


class Sampler(threading.Thread):
    """One per worker: idle (blocked, no CPU) until ``watch`` hands it a job's meter; then
    samples it at once and every ``SAMPLE_EVERY`` seconds until ``unwatch``."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="queuectl-sampler")
        self._meter: Meter | None = None
        self._cond = threading.Condition()
        self._sampling = threading.Lock()  # held while a sample is taken

    def watch(self, meter: Meter) -> None:
        with self._cond:
            self._meter = meter
            self._cond.notify()
        if not self.is_alive():
            self.start()

    def unwatch(self) -> None:
        """Stop sampling; returns once no sample is under way (the meter is final)."""
        with self._cond:
            self._meter = None
            self._cond.notify()
        with self._sampling:
            pass

    def run(self) -> None:
        while True:
            with self._cond:
                while self._meter is None:
                    self._cond.wait()
                meter = self._meter
            with self._sampling:
                if self._meter is meter:
                    try:
                        meter.sample()
                    except Exception:  # a reading that fails is a sample missed, nothing more
                        pass
            with self._cond:
                if self._meter is meter:
                    self._cond.wait(SAMPLE_EVERY)


def open_stat(pid: int) -> int | None:
    """A descriptor of /proc/PID/stat for ``children_cpu`` (each pread reads it afresh: a
    quarter of the cost of opening it per reading, which a worker does once per job)."""
    if not PROC:
        return None
    try:
        return os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def children_cpu(stat_fd: int | None) -> float | None:
    """CPU seconds of the reaped children of a process (cutime + cstime in its /proc/PID/stat,
    open as ``stat_fd``), or None when it cannot be read (the process is gone)."""
    if stat_fd is None:
        return None
    try:
        data = os.pread(stat_fd, 1024, 0)
        fields = data[data.rindex(b")") + 2 :].split()
        return (int(fields[13]) + int(fields[14])) / _TICKS
    except (OSError, ValueError, IndexError):
        return None
