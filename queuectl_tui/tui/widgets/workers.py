"""The workers pane: every worker row with its process figures and its job's process tree."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from queuectl_tui.present import ago, percent, size
from queuectl_tui.run.monitor import Usage, WorkerStats
from queuectl_tui.tui.fmt import STATE_STYLE, cell, middle_cut
from queuectl_tui.tui.widgets.jobs_table import Column, KeyedTable

COLUMNS = (
    Column("id", "ID", 3),
    Column("pid", "PID", 7),
    Column("status", "Status", 8),
    Column("job", "Job", 20),
    Column("runtime", "Runtime", 7),
    Column("cpu", "CPU", 5),
    Column("mem", "Mem", 6),
    Column("uptime", "Uptime", 6),
    Column("beat", "Beat", 4),
    Column("tree_cpu", "Job CPU", 7),
    Column("tree_mem", "Job mem", 9),
)
#: Below 100 columns uptime and heartbeat age go (``queuectl-tui worker list`` has them).
NARROW = (
    Column("id", "ID", 3),
    Column("pid", "PID", 7),
    Column("status", "Status", 8),
    Column("job", "Job", 12),
    Column("runtime", "Runtime", 7),
    Column("cpu", "CPU", 5),
    Column("mem", "Mem", 6),
    Column("tree_cpu", "Tree", 5),
    Column("tree_mem", "Tree mem", 8),
)


def columns_for(width: int) -> tuple[Column, ...]:
    return COLUMNS if width >= 100 else NARROW


#: A live worker's heartbeat is at most a second or two old: under this many seconds its age
#: shows as "<Ns" (a heartbeat late past it counts up by the second).
BEAT_FRESH = 5


def beat_text(age: float, alive: bool) -> str:
    """The heartbeat's age at the grain that matters: "<5s" while it beats (0s, 1s, 0s ...
    rewrote the cell, and so redrew the pane, every second), by the second once it is late."""
    return f"<{BEAT_FRESH}s" if alive and age < BEAT_FRESH else ago(age)


def uptime_text(seconds: float) -> str:
    """How long a worker has run: by 10 s in its first minute, by the minute in its first
    hour, then as ``ago`` (hours and minutes): never a cell that changes every second."""
    whole = int(seconds)
    if whole < 10:
        return "<10s"
    if whole < 60:
        return f"{whole // 10 * 10}s"
    if whole < 3600:
        return f"{whole // 60}m"
    return ago(whole)


def _usage(usage: Usage | None) -> tuple[str, str]:
    if usage is None:
        return "-", "-"
    return percent(usage.cpu), size(usage.rss)


class WorkersTable(KeyedTable):
    """The cursor shows only while the pane has focus (it picks the worker '-' stops)."""

    def on_mount(self) -> None:
        self.show_cursor = False

    def on_focus(self) -> None:
        self.show_cursor = True

    def on_blur(self) -> None:
        self.show_cursor = False


class WorkersPane(Vertical):
    DEFAULT_CSS = """
    WorkersPane { height: 6; }
    WorkersPane #workers-title { height: 1; background: $boost; padding: 0 1; }
    WorkersPane WorkersTable { height: 1fr; }
    WorkersPane #workers-none { height: 1; color: $text-muted; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("Workers", id="workers-title")
        yield WorkersTable(id="workers-table")
        yield Static(
            "no workers: press + to start one (or: queuectl-tui worker start)", id="workers-none"
        )

    @staticmethod
    def height_for(screen_height: int) -> int:
        """A fixed height (title, header and 4 to 10 workers; more scroll), so that workers
        coming and going never move the jobs table: its page is sized to what it shows."""
        return max(6, min(12, screen_height // 5))

    def on_mount(self) -> None:
        self.styles.height = self.height_for(self.app.size.height)
        self.table.set_layout(columns_for(self.app.size.width))
        self.table.display = False
        self._last: tuple[list[WorkerStats], float] | None = None
        self._title = ""

    def on_resize(self) -> None:
        self.styles.height = self.height_for(self.screen.size.height)
        if self.table.set_layout(columns_for(self.size.width)) and self._last:
            self.set_workers(*self._last)

    @property
    def table(self) -> WorkersTable:
        return self.query_one(WorkersTable)

    def set_workers(self, workers: list[WorkerStats], now: float) -> None:
        self._last = (workers, now)
        alive = sum(1 for w in workers if w.alive)
        busy = sum(1 for w in workers if w.busy)
        lost = len(workers) - alive
        title = f"[b]Workers[/b]  {alive} alive · {busy} busy"
        if lost:
            title += (
                f" · [red]{lost} lost[/red] (recovered by the next worker, or: queuectl-tui "
                "recover)"
            )
        if title != self._title:  # each refresh: only a change is drawn
            self._title = title
            self.query_one("#workers-title", Static).update(title, layout=False)  # one line
        if self.table.display != bool(workers):
            self.query_one("#workers-none").display = not workers
            self.table.display = bool(workers)
        rows = []
        job_width = next(c.width for c in self.table.layout if c.key == "job")
        for w in workers:
            cpu, mem = _usage(w.process)
            tree_cpu, tree_mem = _usage(w.job_tree)
            if w.job_tree is not None and w.job_tree.processes > 1:
                tree_mem += f"/{w.job_tree.processes}p"
            cells = {
                "id": cell(w.id, justify="right"),
                "pid": cell(w.pid if w.local else f"{w.pid}@{w.host}"),
                "status": cell(w.status, STATE_STYLE.get(w.status, "")),
                "job": cell(w.current_job and middle_cut(w.current_job, job_width)),
                "runtime": cell(ago(w.job_runtime(now))),
                "cpu": cell(cpu, justify="right"),
                "mem": cell(mem, justify="right"),
                "uptime": cell(uptime_text(w.uptime(now))),
                "beat": cell(beat_text(w.heartbeat_age, w.alive), "red" if not w.alive else ""),
                "tree_cpu": cell(tree_cpu, justify="right"),
                "tree_mem": cell(tree_mem, justify="right"),
            }
            rows.append((str(w.id), tuple(cells[c.key] for c in self.table.layout)))
        self.table.show(rows)
