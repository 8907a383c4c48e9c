"""Console responsiveness on a big queue: UI time to open, switch tabs and refresh.

Seeds a throwaway database with N jobs (default 100,000: 60% completed, 25% pending, 5% failed,
10% dead, one attempt per finished job), runs the console headless (Textual's run_test, so the
screen is laid out and rendered, but not written to a terminal) and measures, per operation:

- ui_ms: time the event loop spent running callbacks between the operation's start and the
  first screen update showing its result (every asyncio Handle is timed): how long input could
  have been delayed;
- cpu_ms: the event-loop thread's CPU time in those callbacks (the same work without the time
  other processes took the CPU from it: steadier on a busy machine);
- wall_ms: start to result on screen, including the database read in its thread. Tabs and
  pages are switched by calling the key's action; the filter is typed through Textual's Pilot
  (whose key press alone takes about 40 ms of wall time here) and applies 150 ms after the
  last keystroke;
- read_ms: the thread's database read alone.

"open" is measured twice: within one process (--repeat opens; Textual's caches are warm after
the first) and as the first open of a new process each time (--fresh), which is what starting
queuectl-tui does; a bare Textual app (a line, a table of 25 rows, a footer) is measured the same
ways as the floor any Textual console pays.

Every row also gives the longest single event-loop callback in the operation (stall_ms): the
longest time input could not be handled at all.

--fast-seed seeds with plain SQL (bench/seed.py: seconds for a million jobs, where the demo's
seeding takes minutes); its mix is 20% pending, 60% completed, 10% dead, 10% failed.

Run: python bench/tui_bench.py [--jobs 100000] [--fast-seed] [--repeat 5] [--fresh 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from queuectl_tui import demo
from queuectl_tui.store import close_db, open_db
from queuectl_tui.tui import data


class LoopClock:
    """Records when every event-loop callback ran (start, end)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, float]] = []  # wall start, wall end, CPU seconds
        self._original = asyncio.events.Handle._run

    def __enter__(self) -> LoopClock:
        spans, original = self.spans, self._original

        def timed(handle):
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(handle)
            finally:
                spans.append((start, time.perf_counter(), time.thread_time() - cpu))

        asyncio.events.Handle._run = timed
        return self

    def __exit__(self, *exc) -> None:
        asyncio.events.Handle._run = self._original

    def busy(self, start: float, end: float) -> tuple[float, float, float]:
        """(wall, CPU, longest single callback) seconds of callbacks run between start and end."""
        inside = [(s, e, c) for s, e, c in self.spans if e > start and s < end]
        return (
            sum(min(e, end) - max(s, start) for s, e, _ in inside),
            sum(c for _, _, c in inside),
            max((min(e, end) - max(s, start) for s, e, _ in inside), default=0.0),
        )

    def row(self, start: float, end: float) -> tuple[float, float, float, float]:
        """One measurement: (UI wall, UI CPU, elapsed, longest callback) seconds."""
        wall, cpu, longest = self.busy(start, end)
        return wall, cpu, end - start, longest


class ReadClock:
    """Times the thread-side reads (data.read_page / read_status)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {"read_page": [], "read_status": []}

    def __enter__(self) -> ReadClock:
        self._saved = {name: getattr(data, name) for name in self.times}
        for name, func in self._saved.items():
            setattr(data, name, self._wrap(name, func))
        return self

    def _wrap(self, name, func):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.times[name].append(time.perf_counter() - start)

        return timed

    def __exit__(self, *exc) -> None:
        for name, func in self._saved.items():
            setattr(data, name, func)


#: When a screen last wrote its changes to the (headless) terminal: a result is "on screen"
#: only after the next of these.
PAINTED = [0.0]


def track_painting() -> None:
    from textual.screen import Screen

    original = Screen._compositor_refresh

    def painted(screen) -> None:
        original(screen)
        PAINTED[0] = time.perf_counter()

    Screen._compositor_refresh = painted


async def until(pilot, condition, timeout: float = 30.0, paint_wait: float = 0.2) -> float:
    """Wait for condition(), then for the screen to be painted after it; return that time (or
    the time the condition was met, when nothing is painted within ``paint_wait``: a refresh
    that finds nothing changed has nothing to paint)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.0005)
    met = time.perf_counter()
    while PAINTED[0] < met:
        if time.perf_counter() - met > paint_wait:
            return met
        await asyncio.sleep(0.0005)
    return PAINTED[0]


def first_page_shown(screen) -> bool:
    """The console is open: counts read and the first page of jobs in the table."""
    return (
        screen.page is not None
        and screen.status is not None
        and screen.table.row_count == len(screen.page.jobs)
    )


def bare_app():
    """A minimal Textual app (a line, a 25-row table, a footer): the floor any console pays."""
    from textual.app import App
    from textual.binding import Binding
    from textual.widgets import DataTable, Footer, Static

    class Bare(App):
        BINDINGS = [Binding("q", "quit", "Quit"), Binding("n", "bell", "New")]

        def compose(self):
            yield Static("header")
            yield DataTable()
            yield Footer()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("id", "command", "state")
            for n in range(25):
                table.add_row(f"job-{n}", "echo hello", "pending")

    return Bare()


async def measure_bare(
    repeat: int, size: tuple[int, int]
) -> list[tuple[float, float, float, float]]:
    from textual.widgets import DataTable

    results = []
    with LoopClock() as loop:
        for _ in range(repeat):
            app = bare_app()
            start = time.perf_counter()
            async with app.run_test(size=size) as pilot:
                end = await until(
                    pilot, lambda: app.query(DataTable) and app.query_one(DataTable).row_count == 25
                )
                results.append(loop.row(start, end))
    return results


async def measure(db_path: Path, repeat: int, size: tuple[int, int], fresh: dict) -> dict:
    from queuectl_tui.tui.app import QueueApp
    from queuectl_tui.tui.screens.main import TABS, MainScreen

    results: dict[str, list[tuple[float, float]]] = {
        "open": [],
        "open: start-up": [],
        "open: data": [],
        "tab": [],
        "refresh": [],
        "next_page": [],
        "filter": [],
    }
    mount_times: list[float] = []
    original_on_mount = MainScreen.on_mount

    def on_mount(screen) -> None:
        original_on_mount(screen)
        mount_times.append(time.perf_counter())

    MainScreen.on_mount = on_mount
    with LoopClock() as loop, ReadClock() as reads:
        for _ in range(repeat):
            app = QueueApp(db_path, refresh_interval=3600)
            start = time.perf_counter()
            async with app.run_test(size=size) as pilot:
                screen = app.screen
                end = await until(pilot, lambda: first_page_shown(screen))
                results["open"].append(loop.row(start, end))
                mounted = mount_times.pop()
                results["open: start-up"].append(loop.row(start, mounted))
                results["open: data"].append(loop.row(mounted, end))
                await pilot.pause(0.05)
                for tab, _, state in TABS[1:] + TABS[:1]:
                    start = time.perf_counter()
                    screen.action_tab(
                        tab
                    )  # what the number key runs (Pilot.press adds ~40 ms of its own)
                    end = await until(
                        pilot,
                        lambda: (
                            screen.page is not None
                            and screen.page.view.state == state
                            and not screen.page_reads.busy
                        ),
                    )
                    results["tab"].append(loop.row(start, end))
                    await pilot.pause(0.02)
                for _ in range(5):
                    start = time.perf_counter()
                    screen.tick()
                    end = await until(
                        pilot, lambda: not screen.page_reads.busy and not screen._status_busy
                    )
                    results["refresh"].append(loop.row(start, end))
                    await pilot.pause(0.02)
                start = time.perf_counter()
                screen.action_page(1)  # what ] runs
                end = await until(
                    pilot, lambda: screen.page.start > 0 and not screen.page_reads.busy
                )
                results["next_page"].append(loop.row(start, end))
                await pilot.press("slash", *"item 424")
                start = time.perf_counter()
                await pilot.press("2")  # the last keystroke: the filter applies once typing pauses
                end = await until(
                    pilot,
                    lambda: screen.page.view.search == "item 4242" and not screen.page_reads.busy,
                )
                results["filter"].append(loop.row(start, end))
                await pilot.press("escape", "q")
    results["open: bare Textual app"] = await measure_bare(repeat, size)
    results.update(fresh)
    MainScreen.on_mount = original_on_mount
    summary = {}
    for name, values in results.items():
        row = {"n": len(values)}
        row["stall_ms_max"] = round(max(v[3] for v in values) * 1000, 1)
        for index, kind in enumerate(("ui", "cpu", "wall")):
            ms = [v[index] * 1000 for v in values]
            row[f"{kind}_ms_median"] = round(statistics.median(ms), 1)
            row[f"{kind}_ms_max"] = round(max(ms), 1)
        summary[name] = row
    for name, values in reads.times.items():
        summary[name] = {
            "n": len(values),
            "read_ms_median": round(statistics.median(values) * 1000, 1),
            "read_ms_max": round(max(values) * 1000, 1),
        }
    return summary


async def one_open(
    kind: str, db_path: Path, size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """The first open in this process (what running queuectl-tui does): ours or the bare app."""
    with LoopClock() as loop:
        if kind == "bare":
            from textual.widgets import DataTable

            app = bare_app()
            start = time.perf_counter()
            async with app.run_test(size=size) as pilot:
                end = await until(
                    pilot, lambda: app.query(DataTable) and app.query_one(DataTable).row_count == 25
                )
        else:
            from queuectl_tui.tui.app import QueueApp

            app = QueueApp(db_path, refresh_interval=3600)
            start = time.perf_counter()
            async with app.run_test(size=size) as pilot:
                screen = app.screen
                end = await until(pilot, lambda: first_page_shown(screen))
        return loop.row(start, end)


def fresh_opens(
    db_path: Path, count: int, size: str
) -> dict[str, list[tuple[float, float, float]]]:
    results: dict[str, list] = {
        "open, fresh process": [],
        "open: bare Textual app, fresh process": [],
    }
    for _ in range(count):
        for kind, name in (
            ("ours", "open, fresh process"),
            ("bare", "open: bare Textual app, fresh process"),
        ):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one-open",
                    kind,
                    "--db",
                    str(db_path),
                    "--size",
                    size,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[name].append(tuple(json.loads(out)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument(
        "--fast-seed", action="store_true", help="seed with plain SQL (bench/seed.py)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="times the console is opened")
    parser.add_argument("--fresh", type=int, default=5, help="first opens, each in a new process")
    parser.add_argument("--size", default="120x35", help="terminal size, WxH")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one-open", choices=["ours", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(n) for n in args.size.split("x"))
    if args.one_open:
        track_painting()
        print(json.dumps(asyncio.run(one_open(args.one_open, Path(args.db or "."), size))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "queuectl.db"
        if args.fast_seed:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import seed

            seeded = seed.seed(db_path, args.jobs)
        else:
            open_db(db_path)
            started = time.perf_counter()
            demo.seed_bulk(args.jobs)
            seeded = time.perf_counter() - started
            close_db()
        fresh = fresh_opens(db_path, args.fresh, args.size)
        track_painting()
        summary = asyncio.run(measure(db_path, args.repeat, size, fresh))
    summary["setup"] = {
        "jobs": args.jobs,
        "seed_s": round(seeded, 1),
        "size": args.size,
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{args.jobs:,} jobs (seeded in {seeded:.1f}s), terminal {args.size}, console opened {args.repeat}x"
    )
    print(
        f"{'operation':<40}{'n':>4}  {'UI ms':>15}  {'UI CPU ms':>15}  {'wall ms':>15}   (median / max)"
        "  longest callback ms"
    )
    for name in summary:
        if "ui_ms_median" not in summary[name]:
            continue
        row = summary[name]
        print(
            f"{name:<40}{row['n']:>4}"
            + "".join(
                f"  {row[kind + '_ms_median']:>6.1f} / {row[kind + '_ms_max']:<6.1f}"
                for kind in ("ui", "cpu", "wall")
            )
            + f"  {row['stall_ms_max']:>6.1f}"
        )
    for name in ("read_page", "read_status"):
        row = summary[name]
        print(
            f"{name:<40}{row['n']:>4}   database read in its thread: {row['read_ms_median']:.1f} ms median, "
            f"{row['read_ms_max']:.1f} ms max"
        )


if __name__ == "__main__":
    main()
