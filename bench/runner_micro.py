"""Per-job wall and CPU time of N ``true`` jobs run back to back, no database:
(a) the ceiling ``subprocess.run("true", shell=True)``, (b) ``runner.run``, (c) ``JobHost.run``.

CPU is user+sys of this process and its reaped children (``resource.getrusage``); the host
shell is closed (and so reaped) inside (c)'s measurement. Usage: python bench/runner_micro.py [N]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from queuectl_tui.run.launch import exec as runner
from queuectl_tui.run.launch.host import JobHost


def cpu() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(name: str, n: int, body) -> None:
    wall, used = time.perf_counter(), cpu()
    body(n)
    wall, used = time.perf_counter() - wall, cpu() - used
    print(
        f"{name:<10} {1000 * wall / n:6.3f} ms/job wall  {1000 * used / n:6.3f} ms/job CPU",
        flush=True,
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with tempfile.TemporaryDirectory() as tmp:
        opts = {
            "cwd": tmp,
            "env": env,
            "log_path": Path(tmp) / "log",
            "max_log_bytes": 1 << 20,
            "timeout": None,
        }

        def ceiling(count):
            for _ in range(count):
                subprocess.run("true", shell=True, env=env, cwd=tmp)

        def run(count):
            for _ in range(count):
                runner.run("true", **opts)

        def host(count):
            with JobHost() as jobs:
                for _ in range(count):
                    jobs.run("true", **opts)

        measure("ceiling", n, ceiling)
        measure("runner", n, run)
        measure("jobhost", n, host)


if __name__ == "__main__":
    main()
