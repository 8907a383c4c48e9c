"""Bulk enqueue speed: `queuectl-tui enqueue -f` of N JSON Lines into a fresh database.

Each repetition writes N lines of ``{"command": "true"}`` to a file, runs the CLI on a new
database and times it; peak RSS is that process's own (os.wait4). Prints the median wall time,
jobs/s and the largest peak RSS. Run: python bench/bulk_enqueue.py --lines N --repeat R [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(lines_file: Path, tmp: Path, run: int) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    db = tmp / f"bulk{run}" / "queuectl.db"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "queuectl_tui", "--db", str(db), "enqueue", "-f",
                             str(lines_file)], stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"enqueue -f exited with {proc.returncode}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        lines_file = tmp / "jobs.jsonl"
        lines_file.write_text('{"command": "true"}\n' * args.lines)
        runs = [one(lines_file, tmp, n) for n in range(args.repeat)]
    wall = statistics.median(w for w, _ in runs)
    result = {"lines": args.lines, "wall_s": round(wall, 3), "jobs_per_s": round(args.lines / wall, 1),
              "peak_rss_mb": round(max(r for _, r in runs), 1)}
    print(json.dumps(result) if args.json else
          f"{args.lines:,} lines: {result['wall_s']} s, {result['jobs_per_s']:,} jobs/s, peak RSS {result['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
