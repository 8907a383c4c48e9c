"""How long cancelling the head of a long dependency chain keeps other writers out.

Makes a fresh SQLite database in a temporary directory with a chain of N jobs (each waits on
the one before it), starts another process that writes (one small write transaction) every
10 ms, and cancels the head in this one. Prints how long the cancel took and the longest and
median wait of the other writer: how long the cancel held the write lock at a stretch.

Run: python bench/chain_cancel.py [--jobs 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = r"""
import os, sys, time
from queuectl_tui.store import open_db, write_transaction
from queuectl_tui.store.models import Meta
open_db()
waits = []
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    began = time.monotonic()
    with write_transaction():
        Meta.insert(key="probe", value=str(began)).on_conflict(
            conflict_target=[Meta.key], update={Meta.value: str(began)}).execute()
    waits.append(time.monotonic() - began)
    time.sleep(0.01)
print(len(waits), max(waits), sorted(waits)[len(waits) // 2], flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as home:
        os.environ["QUEUECTL_HOME"] = home
        sys.path.insert(0, str(root))
        from queuectl_tui import engine, spec
        from queuectl_tui.store import open_db

        open_db()
        specs = (
            (
                f"line {n}",
                spec.normalize(
                    {"id": f"c{n}", "command": "true", **({"after": [f"c{n - 1}"]} if n else {})}
                ),
            )
            for n in range(args.jobs)
        )
        with engine.enqueue_stream(specs, cwd="/", env={}):
            pass
        stop = Path(home) / "stop"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(stop)],
            text=True,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        writer.stdout.readline()
        time.sleep(0.3)
        began = time.monotonic()
        engine.cancel("c0")
        took = time.monotonic() - began
        time.sleep(0.1)
        stop.touch()
        writes, longest, median = writer.communicate()[0].split()
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"chain of {args.jobs}: cancel {took:.2f} s, {engine.counts()['dead']} dead; the "
            f"other writer: {writes} writes, longest wait {float(longest):.3f} s, median "
            f"{float(median) * 1000:.1f} ms (load average {load})"
        )


if __name__ == "__main__":
    main()
