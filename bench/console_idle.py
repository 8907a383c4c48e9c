"""The console idle while jobs arrive: CPU of a real console process on each tab and page.

A console left open in a corner must cost next to nothing, whatever it shows. This starts the
real console (``python -m queuectl_tui --db DB``) in a tmux pseudo-terminal (120x35 unless told),
on a database of --jobs jobs of every state (demo.seed_bulk), enqueues one job every --every
seconds from this process meanwhile (no worker runs: the rows only arrive), and moves the
console over every tab, a few pages (forward, then back twice after rows arrived: the page that
used to lose its anchor), the output pane, a job's detail, the queues and the stats, in turn.
In each place it waits --settle seconds, then reads the console process's CPU time from
/proc/PID/stat over --seconds seconds. CPU time is fair on a loaded machine; the load average
is reported beside it. Bar: under 2 % of a core in every place.

Needs tmux (``apt-get install -y tmux``). Run: python bench/console_idle.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
BAR = 2.0  # % of a core

#: (place, keys that lead there from the previous place, text on screen once it is there); a
#: number among the keys is a pause of that many seconds (rows arrive meanwhile).
PLACES = [
    ("all, page 1", [], "page 1 of"),
    ("all, page 2", ["]"], "page 2 of"),
    ("all, page 3", ["]"], "page 3 of"),
    ("all, back to page 2", ["["], "page 2 of"),
    ("all, back to the head after arrivals", [2.5, "[", 1.5, "[", 1.5, "["], "page "),
    ("pending", ["2"], "Pending"),
    ("processing", ["3"], "Processing"),
    ("completed", ["4"], "Completed"),
    ("completed, page 2", ["]"], "page 2 of"),
    ("failed", ["5"], "Failed"),
    ("dlq", ["6"], "DLQ"),
    ("all, output pane open", ["1", "o"], "Output"),
    ("job detail", ["o", "Enter"], "Attempts"),
    ("queues", ["Escape", "Q"], "Queues"),
    ("stats", ["Escape", "m"], "Execution"),
]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True
    ).stdout


def wait_for(session: str, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in screen(session):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {text!r} on the console:\n{screen(session)}")
        time.sleep(0.1)


class Arrivals(threading.Thread):
    """Enqueues one job every ``every`` seconds until stopped (in this process, by the engine)."""

    def __init__(self, db: Path, every: float) -> None:
        super().__init__(daemon=True)
        self.db, self.every, self.count = db, every, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        from queuectl_tui import engine, spec
        from queuectl_tui.store import open_db

        open_db(self.db)
        while not self.stopped.wait(self.every):
            self.count += 1
            engine.enqueue(
                [spec.normalize({"id": f"arrival-{self.count:04d}", "command": "true"})],
                cwd="/tmp",
                env={},
            )


def measure(
    jobs: int = 500,
    seconds: float = 5.0,
    settle: float = 1.5,
    every: float = 1.0,
    size: tuple[int, int] = (120, 35),
) -> dict:
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed (apt-get install -y tmux)")
    sys.path.insert(0, str(ROOT))
    from queuectl_tui import demo
    from queuectl_tui.store import close_db, open_db

    with tempfile.TemporaryDirectory(prefix="qconsole-") as tmp:
        db = Path(tmp) / "queuectl.db"
        open_db(db)
        demo.seed_bulk(jobs)
        close_db()
        session = f"qidle{os.getpid()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
        env["PYTHONPATH"] = str(ROOT)
        command = f"exec {sys.executable} -m queuectl_tui --db {db}"
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                session,
                "-x",
                str(size[0]),
                "-y",
                str(size[1]),
                "-e",
                "TERM=xterm-256color",
                "-e",
                f"PYTHONPATH={ROOT}",
                command,
            ],
            check=True,
            env=env,
        )
        arrivals = Arrivals(db, every)
        rows, footers = {}, {}
        try:
            pid = int(
                subprocess.run(
                    ["tmux", "list-panes", "-t", session, "-F", "#{pane_pid}"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()[0]
            )
            wait_for(session, "page 1 of")
            arrivals.start()
            for place, keys, text in PLACES:
                for key in keys:
                    if isinstance(key, float):
                        time.sleep(key)
                        continue
                    subprocess.run(["tmux", "send-keys", "-t", session, key], check=True)
                    time.sleep(0.4)  # a key at a time, as a person presses them
                wait_for(session, text)
                time.sleep(settle)
                start_cpu, start = cpu_seconds(pid), time.monotonic()
                time.sleep(seconds)
                used = cpu_seconds(pid) - start_cpu
                rows[place] = round(100 * used / (time.monotonic() - start), 2)
                footers[place] = next(
                    (
                        line.strip()
                        for line in screen(session).splitlines()
                        if " jobs (" in line or " jobs  " in line
                    ),
                    "",
                )
        finally:
            arrivals.stopped.set()
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    return {
        "places": rows,
        "footers": footers,
        "worst_pct": max(rows.values()),
        "bar_pct": BAR,
        "jobs": jobs,
        "arrived": arrivals.count,
        "every_s": every,
        "seconds_per_place": seconds,
        "size": f"{size[0]}x{size[1]}",
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", type=int, default=500, help="jobs seeded before the console opens"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="CPU sampled this long in each place"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.5,
        help="seconds in a place before sampling (past the 3 s after a key in which "
        "the console draws its table every second: idle is what follows)",
    )
    parser.add_argument(
        "--every", type=float, default=1.0, help="seconds between two arriving jobs"
    )
    parser.add_argument("--size", default="120x35", help="terminal size, WxH")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(
        args.jobs,
        args.seconds,
        args.settle,
        args.every,
        tuple(int(n) for n in args.size.split("x")),
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"console idle, {result['jobs']} jobs seeded, one more every {result['every_s']} s, "
        f"terminal {result['size']}, CPU over {result['seconds_per_place']} s per place "
        f"(load average {'/'.join(map(str, result['load']))})"
    )
    for place, pct in result["places"].items():
        print(
            f"  {place:<36}{pct:>6.2f} % of a core  {'pass' if pct < BAR else 'MISS'}"
            f"  {result['footers'][place][:60]}"
        )
    print(f"  worst: {result['worst_pct']:.2f} % (bar: under {BAR} %)")


if __name__ == "__main__":
    main()
