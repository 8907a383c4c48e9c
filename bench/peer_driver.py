"""Drain a peer queue of N jobs that each run ``subprocess.run("true", shell=True)``.

Runs inside the peers' private venv (bench/out/peers/venv, made by bench/run.py), never with
queuectl on the path. Enqueues first, then starts the consumers and times from their start to
the moment the peer reports every job done (polled every 5 ms); prints one JSON object:
``{"jobs", "wall_s", "jobs_per_s", "cpu_ms_per_job"}``. CPU is user+sys of the consumer
processes and everything they reaped (os.wait4), so it includes their start-up and shutdown.

  python peer_driver.py huey --dir D --jobs N [--workers 2]
  python peer_driver.py rq --dir D --jobs N --port P --worker-class rq.worker.SimpleWorker
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HUEY_TASKS = """
import os, subprocess
from huey import SqliteHuey
huey = SqliteHuey(filename=os.environ["BENCH_HUEY_DB"])

@huey.task()
def run_true():
    subprocess.run("true", shell=True)
    return 1
"""

RQ_TASKS = """
import subprocess

def run_true():
    subprocess.run("true", shell=True)
    return 1
"""


def reap(proc: subprocess.Popen) -> float:
    """Wait for ``proc``; return its and its reaped descendants' CPU seconds."""
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime


def poll(done, jobs: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while done() < jobs:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out with {done()} of {jobs} jobs done")
        time.sleep(0.005)
    return time.perf_counter()


def huey(args: argparse.Namespace) -> dict:
    (args.dir / "benchhueytasks.py").write_text(HUEY_TASKS)
    os.environ["BENCH_HUEY_DB"] = str(args.dir / "huey.db")
    sys.path.insert(0, str(args.dir))
    import benchhueytasks as tasks

    for _ in range(args.jobs):
        tasks.run_true()
    env = dict(os.environ, PYTHONPATH=str(args.dir))
    start = time.perf_counter()
    consumer = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "huey_consumer"),
            "benchhueytasks.huey",
            "-k",
            "process",
            "-w",
            str(args.workers),
            "-d",
            "0.001",
            "-m",
            "0.01",
            "-q",
        ],
        cwd=args.dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = poll(tasks.huey.result_count, args.jobs, args.timeout)
    finally:
        consumer.send_signal(signal.SIGINT)  # huey's graceful stop
    return {"wall_s": end - start, "cpu_s": reap(consumer)}


def rq(args: argparse.Namespace) -> dict:
    (args.dir / "benchrqtasks.py").write_text(RQ_TASKS)
    sys.path.insert(0, str(args.dir))
    import benchrqtasks as tasks
    from redis import Redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    redis = Redis(host="127.0.0.1", port=args.port)
    redis.flushdb()  # a clean slate: the finished-job registry is what we count
    queue = Queue("bench", connection=redis)
    for _ in range(args.jobs):
        queue.enqueue(tasks.run_true)
    finished = FinishedJobRegistry(queue=queue)
    env = dict(os.environ, PYTHONPATH=str(args.dir))
    start = time.perf_counter()
    workers = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "rq"),
                "worker",
                "--burst",
                "-q",
                "-w",
                args.worker_class,
                "-u",
                f"redis://127.0.0.1:{args.port}",
                "-n",
                f"bench-{n}-{os.getpid()}",
                "bench",
            ],
            cwd=args.dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(args.workers)
    ]
    try:
        end = poll(lambda: len(finished), args.jobs, args.timeout)
    finally:
        cpu = sum(reap(w) for w in workers)  # burst workers exit once the queue is empty
    return {"wall_s": end - start, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer", choices=["huey", "rq"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int)
    parser.add_argument("--worker-class", default="rq.worker.SimpleWorker")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    result = (huey if args.peer == "huey" else rq)(args)
    print(
        json.dumps(
            {
                "jobs": args.jobs,
                "wall_s": result["wall_s"],
                "jobs_per_s": args.jobs / result["wall_s"],
                "cpu_ms_per_job": result["cpu_s"] * 1000 / args.jobs,
            }
        )
    )


if __name__ == "__main__":
    main()
