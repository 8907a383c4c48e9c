"""Live figures about workers and their jobs' processes (psutil), for the console.

Plain data, no textual: the console calls ``WorkerMonitor.sample`` from a thread and draws what
it returns. CPU percentages need two readings of the same process, so the monitor keeps the
psutil.Process objects between samples (keyed by PID and start time, so a reused PID starts a
new series); the first sample of a process reports 0 %.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from queuectl_tui import engine, procs, settings
from queuectl_tui.run import usage
from queuectl_tui.store.models import Attempt, Job, Worker, WorkerStatus


@dataclass
class Usage:
    """CPU (percent of one core, summed over processes) and resident memory (bytes)."""

    cpu: float
    rss: int
    processes: int = 1


@dataclass
class WorkerStats:
    id: int
    host: str
    pid: int
    status: str  # idle | busy | stopping | lost
    alive: bool
    local: bool
    started_at: float
    heartbeat_age: float
    current_job: str | None = None
    job_started_at: float | None = None
    process: Usage | None = None  # the worker process itself
    job_tree: Usage | None = None  # the running job's shell and every descendant

    @property
    def busy(self) -> bool:
        """Running a job: busy, or stopping while it finishes one (as ``engine.busy``)."""
        return self.alive and (
            self.status == WorkerStatus.BUSY
            or (self.status == WorkerStatus.STOPPING and self.current_job is not None)
        )

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.started_at)

    def job_runtime(self, now: float) -> float | None:
        return None if self.job_started_at is None else max(0.0, now - self.job_started_at)


@dataclass
class WorkerMonitor:
    """Samples every worker row with its process figures; keeps psutil state between calls."""

    _procs: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)
    trees: TreeReader = field(default_factory=lambda: TreeReader())
    #: An idle worker's own figures are read again only after this many seconds (its CPU %
    #: is then the average since the last reading): at one reading a second, /proc reads of
    #: every idle worker were half of a console's reads at rest, and the figures' flicker
    #: (0.0 %, 0.1 %) redrew the workers pane every second.
    idle_every: float = 5.0
    _idle_usage: dict[tuple[int, float], tuple[float, Usage | None]] = field(default_factory=dict)

    def sample(self, now: float | None = None) -> list[WorkerStats]:
        now = time.time() if now is None else now
        lease = settings.get("lease")
        running = engine.running_attempts()
        seen: set[tuple[int, float]] = set()
        result = []
        for row in Worker.select().order_by(Worker.id):
            alive = engine.worker_alive(row, now=now, lease=lease)
            local = row.host == procs.hostname()
            stats = WorkerStats(
                id=row.id,
                host=row.host,
                pid=row.pid,
                status=row.status if alive else WorkerStatus.LOST,
                alive=alive,
                local=local,
                started_at=row.started_at,
                heartbeat_age=max(0.0, now - row.heartbeat_at),
                current_job=row.current_job,
            )
            if local and alive:
                stats.process = self._worker_usage(row, now, seen)
            held = running.get(row.current_job) if row.current_job else None
            if held is not None and held[0].worker_id == row.id:
                job, attempt = held
                stats.job_started_at = attempt.started_at
                if local and attempt.pid:
                    stats.job_tree = self.tree(attempt.pid, attempt.pid_started, seen)
                    if stats.job_tree is not None:  # the job detail's chart
                        self.trees.record(attempt.seq, now, stats.job_tree)
            result.append(stats)
        for key in set(self._procs) - seen:
            del self._procs[key]
        for key in set(self._idle_usage) - seen:
            del self._idle_usage[key]
        self.trees.forget({attempt.seq for _, attempt in running.values()})
        return result

    def _worker_usage(self, row: Worker, now: float, seen: set[tuple[int, float]]) -> Usage | None:
        """The worker process's own CPU and memory; an idle one's at most every ``idle_every``
        seconds (its last figures meanwhile: no /proc read at all)."""
        key = (row.pid, row.proc_started)
        kept = self._idle_usage.get(key)
        idle = row.status == WorkerStatus.IDLE
        if idle and kept is not None and 0 <= now - kept[0] < self.idle_every:
            seen.add(key)  # keep its psutil.Process (the CPU % is measured from its last reading)
            for known in self._procs:
                if known[0] == row.pid:
                    seen.add(known)
            return kept[1]
        usage_now = self._usage([self._process(row.pid, row.proc_started, seen)])
        if idle:
            self._idle_usage[key] = (now, usage_now)
        else:
            self._idle_usage.pop(key, None)
        return usage_now

    def job_tree(
        self, job: Job, attempt: Attempt, now: float
    ) -> tuple[JobTree, list[tuple[float, float, int]]]:
        """A running job's tree now, and its (time, CPU %, RSS) series as seen so far."""
        tree = self.trees.read(job, attempt, now)
        return tree, list(self.trees.history.get(attempt.seq, ()))

    def tree(
        self, pid: int, started: float | None, seen: set[tuple[int, float]] | None = None
    ) -> Usage | None:
        """Summed usage of a process and all its descendants (None when it is gone)."""
        seen = set() if seen is None else seen
        root = self._process(pid, started, seen)
        if root is None:
            return None
        members: list[psutil.Process | None] = [root]
        for child in self._descendants(pid):
            try:
                members.append(self._cached(psutil.Process(child), seen))
            except psutil.Error:
                continue
        return self._usage(members)

    @staticmethod
    def _descendants(pid: int) -> list[int]:
        """Every descendant of ``pid``, through /proc/PID/task/*/children: psutil's recursive
        children() reads every process of the host, for each busy worker at every refresh
        (most of a console's CPU on a busy host)."""
        found: list[int] = []
        todo = usage.children(pid)
        while todo:
            child = todo.pop()
            if child not in found:
                found.append(child)
                todo.extend(usage.children(child))
        return found

    def _process(
        self, pid: int, started: float | None, seen: set[tuple[int, float]]
    ) -> psutil.Process | None:
        proc = procs.same_process(pid, started)
        return None if proc is None else self._cached(proc, seen)

    def _cached(self, proc: psutil.Process, seen: set[tuple[int, float]]) -> psutil.Process | None:
        try:
            key = (proc.pid, proc.create_time())
        except psutil.Error:
            return None
        seen.add(key)
        return self._procs.setdefault(key, proc)

    @staticmethod
    def _usage(members: list[psutil.Process | None]) -> Usage | None:
        cpu, rss, count = 0.0, 0, 0
        for proc in members:
            if proc is None:
                continue
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                count += 1
            except psutil.Error:
                continue
        return Usage(cpu, rss, count) if count else None


# --- the running jobs' process trees (`ps`, the console's job detail) ---------------------------


@dataclass
class JobTree:
    """A running job with its process tree as read now (``ps f`` order)."""

    id: str
    worker_id: int | None
    host: str | None
    attempt: int
    started_at: float
    pid: int | None
    local: bool  # on this host: its processes can be read
    processes: list[usage.ProcInfo] = field(default_factory=list)
    paused: bool = False  # stopped (SIGSTOP), as its worker recorded

    def runtime(self, now: float) -> float:
        return max(0.0, now - self.started_at)

    def totals(self) -> Usage:
        """CPU % and RSS summed over the tree."""
        return Usage(
            sum(p.cpu_percent or 0.0 for p in self.processes),
            sum(p.rss for p in self.processes),
            len(self.processes),
        )


@dataclass
class TreeReader:
    """Reads job trees; CPU % of a process is over the time since this reader last saw it
    (the first time: over its lifetime, as ps(1) shows it). Keeps, per attempt, the series
    of its tree's CPU % and RSS seen by this reader (the console's chart)."""

    _last: dict[tuple[int, float], tuple[float, float]] = field(default_factory=dict)
    history: dict[int, list[tuple[float, float, int]]] = field(default_factory=dict)
    max_points: int = 600

    def read(self, job: Job, attempt: Attempt, now: float | None = None) -> JobTree:
        now = time.time() if now is None else now
        tree = JobTree(
            job.id,
            attempt.worker_id,
            attempt.host,
            attempt.number,
            attempt.started_at,
            attempt.pid,
            attempt.host == procs.hostname(),
            paused=job.paused,
        )
        pid, started = attempt.pid, attempt.pid_started
        if tree.local and not pid:  # not in the database until the worker's next heartbeat
            pid, started = engine.noted_process(attempt) or (None, None)
        tree.pid = pid
        if not tree.local or not pid:
            return tree
        worker = Worker.get_or_none(Worker.id == attempt.worker_id) if attempt.worker_id else None
        leader = usage._stat(pid) if usage.PROC else None
        tree.processes = usage.read_tree(
            pid,
            started,
            commands=True,
            worker=worker.pid if worker is not None and worker.host == procs.hostname() else None,
            keep={leader[0]} if leader else None,
        )
        clock = time.monotonic()
        for row in tree.processes:
            key = (row.pid, row.started)
            before = self._last.get(key)
            if before is None:
                spent, elapsed = row.cpu_seconds, max(time.time() - row.started, 1e-6)
            else:
                spent, elapsed = row.cpu_seconds - before[0], max(clock - before[1], 1e-6)
            row.cpu_percent = max(0.0, 100.0 * spent / elapsed)
            self._last[key] = (row.cpu_seconds, clock)
        if tree.processes:
            self.record(attempt.seq, now, tree.totals())
        return tree

    def record(self, seq: int, now: float, totals: Usage) -> None:
        series = self.history.setdefault(seq, [])
        if series and now - series[-1][0] < 0.5:
            series[-1] = (series[-1][0], totals.cpu, totals.rss)  # two readers, one point
        else:
            series.append((now, totals.cpu, totals.rss))
        del series[: -self.max_points]

    def forget(self, keep: set[int]) -> None:
        """Drop the series of attempts not in ``keep`` (seqs) and readings of gone processes."""
        for seq in set(self.history) - keep:
            del self.history[seq]
        if len(self._last) > 4096:
            self._last.clear()


def job_trees(reader: TreeReader | None = None, now: float | None = None) -> list[JobTree]:
    """Every running job with its process tree, oldest claim first."""
    reader = reader or TreeReader()
    running = sorted(engine.running_attempts().values(), key=lambda pair: pair[1].started_at)
    return [reader.read(job, attempt, now) for job, attempt in running]
