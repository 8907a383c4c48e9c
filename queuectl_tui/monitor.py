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
from queuectl_tui.models import Worker


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
        return self.alive and (self.status == "busy"
                               or (self.status == "stopping" and self.current_job is not None))

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.started_at)

    def job_runtime(self, now: float) -> float | None:
        return None if self.job_started_at is None else max(0.0, now - self.job_started_at)


@dataclass
class WorkerMonitor:
    """Samples every worker row with its process figures; keeps psutil state between calls."""

    _procs: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)

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
                id=row.id, host=row.host, pid=row.pid, status=row.status if alive else "lost",
                alive=alive, local=local, started_at=row.started_at,
                heartbeat_age=max(0.0, now - row.heartbeat_at), current_job=row.current_job,
            )
            if local and alive:
                stats.process = self._usage([self._process(row.pid, row.proc_started, seen)])
            held = running.get(row.current_job) if row.current_job else None
            if held is not None and held[0].worker_id == row.id:
                job, attempt = held
                stats.job_started_at = attempt.started_at
                if local and attempt.pid:
                    stats.job_tree = self.tree(attempt.pid, attempt.pid_started, seen)
            result.append(stats)
        for key in set(self._procs) - seen:
            del self._procs[key]
        return result

    def tree(self, pid: int, started: float | None, seen: set | None = None) -> Usage | None:
        """Summed usage of a process and all its descendants (None when it is gone)."""
        seen = set() if seen is None else seen
        root = self._process(pid, started, seen)
        if root is None:
            return None
        try:
            members = [root] + [self._cached(child, seen) for child in root.children(recursive=True)]
        except psutil.Error:
            members = [root]
        return self._usage(members)

    def _process(self, pid: int, started: float | None, seen: set) -> psutil.Process | None:
        proc = procs.same_process(pid, started)
        return None if proc is None else self._cached(proc, seen)

    def _cached(self, proc: psutil.Process, seen: set) -> psutil.Process | None:
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
