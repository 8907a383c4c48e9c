"""A day at rest: the CPU of everything a person leaves running on an empty queue.

For 1, 2, 4 and 8 idle workers (``worker start --count N``, detached), beside them a
``wait --all`` and a ``logs -f`` of a pending job (scheduled a day ahead, so nothing runs it)
and the console on its main screen in a real pseudo-terminal (tmux on a private socket), it
reads each process's CPU from /proc/PID/stat (user + system, all threads; a worker with its
job host shell) over a window, after a few seconds of settling. The bar: each under 1 % of a
core. On SQLite by default; with --pg URL in a fresh schema of that PostgreSQL database.

Run: python bench/idle.py [--window 60] [--workers 1 2 4 8] [--pg URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pgschema  # bench/, beside this script
import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
SETTLE = 4.0  # seconds after everything started before the window opens
BAR = 1.0  # % of a core, for each process


def env(home: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    e.update(PYTHONPATH=str(ROOT), QUEUECTL_HOME=str(home))
    return e


def cli(db: Path | str, *args: str) -> list[str]:
    return [PY, "-m", "queuectl_tui", "--db", str(db), *args]


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of these processes (every thread), or None if the first is gone."""
    total = 0.0
    for n, pid in enumerate(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if n == 0:
                return None
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def tree(pid: int) -> list[int]:
    """The process and its descendants now (a worker and its job host shell)."""
    try:
        proc = psutil.Process(pid)
        return [pid] + [c.pid for c in proc.children(recursive=True)]
    except psutil.Error:
        return [pid]


class Console:
    """The console in tmux on a socket of its own (another tmux server's environment would
    leak in), its screen 120x35."""

    def __init__(self, db: Path | str, home: Path):
        self.socket = f"qidle{os.getpid()}"
        command = " ".join(
            f"'{part}'"
            for part in [
                "env",
                *[
                    f"{k}={v}"
                    for k, v in env(home).items()
                    if k in ("PYTHONPATH", "QUEUECTL_HOME", "PATH", "HOME", "LANG")
                ],
                "TERM=xterm-256color",
                *cli(db),
            ]
        )
        self.tmux(["new-session", "-d", "-s", "idle", "-x", "120", "-y", "35", "exec " + command])
        self.pid = int(self.tmux(["display", "-p", "-t", "idle", "#{pane_pid}"]).strip())

    def tmux(self, args: list[str]) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.tmux(["capture-pane", "-t", "idle", "-p"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the console never showed {text!r}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def at_rest(workers: int, window: float, pg: str | None, console: bool = True) -> dict:
    """Start everything on a fresh queue, measure each process over ``window`` seconds."""
    with tempfile.TemporaryDirectory(prefix="qidle-") as tmp:
        home = Path(tmp)
        schema = None
        db: Path | str = home / "queuectl.db"
        if pg:
            schema, db = pgschema.fresh(pg, "bench_idle")
        started: list[subprocess.Popen] = []
        screen = None
        try:
            e = env(home)
            subprocess.run(
                cli(db, "enqueue", "--id", "later", "--delay", "86400", "true"),
                check=True,
                stdout=subprocess.DEVNULL,
                env=e,
            )
            out = subprocess.run(
                cli(db, "worker", "start", "--count", str(workers), "--json"),
                check=True,
                capture_output=True,
                text=True,
                env=e,
            ).stdout
            pids = {f"worker {w['id']}": w["pid"] for w in json.loads(out)}
            for name, args in (
                ("wait --all", ["wait", "--all"]),
                ("logs -f", ["logs", "-f", "later"]),
            ):
                started.append(
                    subprocess.Popen(
                        cli(db, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=e
                    )
                )
                pids[name] = started[-1].pid
            if console and shutil.which("tmux"):
                screen = Console(db, home)
                screen.wait_for("later")  # the main screen, with the pending job on it
                pids["console"] = screen.pid
            time.sleep(SETTLE)
            trees = {name: tree(pid) for name, pid in pids.items()}
            before = {name: cpu_seconds(t) for name, t in trees.items()}
            start = time.monotonic()
            time.sleep(window)
            span = time.monotonic() - start
            after = {name: cpu_seconds(t) for name, t in trees.items()}
            load = os.getloadavg()
        finally:
            if screen is not None:
                screen.close()
            for proc in started:
                proc.kill()
                proc.wait()
            subprocess.run(
                cli(db, "worker", "stop", "--wait", "10"), capture_output=True, env=env(home)
            )
            if schema:
                pgschema.drop(pg, schema)
    cpu = {
        name: None
        if before[name] is None or after[name] is None
        else 100 * (after[name] - before[name]) / span
        for name in pids
    }
    return {"workers": workers, "window_s": round(span, 1), "load": load, "cpu_pct": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per row")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument(
        "--pg",
        default=os.environ.get("QUEUECTL_BENCH_PG"),
        help="a PostgreSQL URL: the queue in a fresh schema of it",
    )
    parser.add_argument("--no-console", action="store_true", help="leave the console out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [at_rest(n, args.window, args.pg, console=not args.no_console) for n in args.workers]
    if args.json:
        print(json.dumps({"window_s": args.window, "bar_pct": BAR, "rows": rows}))
        return
    for row in rows:
        print(
            f"{row['workers']} worker(s), {row['window_s']} s, load "
            f"{'/'.join(f'{x:.1f}' for x in row['load'])}:"
        )
        for name, pct in row["cpu_pct"].items():
            print(f"  {name:12} {'gone' if pct is None else f'{pct:6.2f} %'}")


if __name__ == "__main__":
    main()
