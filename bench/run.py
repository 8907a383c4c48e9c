"""The benchmark: queuectl against its peers and its targets, written to bench/BENCHMARKS.md.

Installs the peers into bench/out/peers (once; nothing system-wide): a private venv with huey,
rq and the redis client (pip), and redis-server and task-spooler from Debian's packages
(``apt-get download`` + ``dpkg -x``, run with LD_LIBRARY_PATH). A peer that cannot be installed
is reported as such. Then measures, each figure the median of its runs:

- drain: N jobs of ``true`` as a fraction of the 2-process spawn ceiling measured in the same
  run: queuectl (``worker start --count N --foreground --burst``, N = 1, 2, 4, 8), huey, RQ
  (SimpleWorker and the forking Worker), task-spooler, each with 2 workers/slots;
- scale: a 1,000,000-job database (bench/seed.py): claim time (also with priority aging on),
  status/list/show query times, the execution stats of a window (one queue and four),
  draining 200 jobs there vs on an empty database, and the console (bench/tui_bench.py);
- bulk enqueue (bench/bulk_enqueue.py), cold start of the CLI, pickup latency
  (bench/latency.py), idle worker CPU and RSS, worker RSS under a 200 MB output flood;
- web: ``queuectl-tui web`` at rest with one page open in Debian's Chromium (bench/web_bench.py):
  CPU of the server, of the tab's console and of Chromium;
- postgres, when a server is named (``--pg URL`` or QUEUECTL_BENCH_PG; a role that may create
  databases): queuectl beside pgqueuer and procrastinate (installed into bench/out/peers/pgvenv,
  driven by bench/pg_peer_driver.py), each measurement in a fresh database dropped after it:
  drains with 1, 2, 4, 8 queuectl workers and 2, 8 of each peer's (a shell and a no-op task),
  each against a spawn ceiling measured right before it, with the server's CPU per job
  (bench/pgserver.py); statements, transactions and rows per job (a logged drain apart); bulk
  enqueue of the same jobs; and, kept from before, queuectl's pickup latency from idle (woken by
  LISTEN/NOTIFY) and bulk enqueue of varied specs, each in a fresh schema. The old engine
  (``--pg-old REV``) is drained beside this checkout's, for the bars that compare with it.
- retention: 500,000 completed jobs pruned by 2 workers while they drain new ones, beside the
  same drain without pruning, and the longest wait for the write lock meanwhile;
- idle, a day at rest (bench/idle.py): 1, 2, 4 and 8 idle workers, a ``wait --all``, a
  ``logs -f`` of a pending job and the console on its main screen, CPU of each over a window
  (60 s; ``--idle-window`` for a quick look), on SQLite and on PostgreSQL when one is named;
- console: a real console idle on every tab and page while jobs arrive, CPU per place
  (bench/console_idle.py; needs tmux);
- schedules: a schedule of ``--every 1s`` with two workers running (detached) for 60 s (20 s with
  --quick): jobs made per due time (bar: the window's seconds, +-1), how late each was made and
  started after its due time, and the workers' CPU meanwhile;

queuectl is measured from the checkout this file lives in (PYTHONPATH = its root), so re-run it
after engine changes. Writes bench/BENCHMARKS.md (a run of some groups replaces their sections
only), bench/drain.svg and bench/out/results.json.

Run: python bench/run.py                (full: about 15 minutes on 2 cores)
     python bench/run.py --quick        (small sizes, for iteration: a minute or two)
     python bench/run.py --only drain   (some groups only; also with --quick)
     python bench/run.py --only postgres --pg postgresql://user:password@host:port/db
                                        (30-36 minutes at a load average of 12-20 on 2 cores,
                                        about 6 by estimate when quiet; --quick: 3 at a load of 8)
     python bench/run.py --only idle --idle-window 10   (a quick look at idle CPU)
     python bench/run.py --report-only  (re-render from bench/out/results.json)
bench/notes.md, when present, is copied into BENCHMARKS.md as "Why the misses": keep it true
to the engine being measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PEERS = OUT / "peers"
PY = sys.executable
DEBS = ["redis-server", "redis-tools", "libjemalloc2", "liblzf1", "task-spooler"]

FULL = dict(
    drain_jobs=2000,
    drain_repeat=3,
    workers=[1, 2, 4, 8],
    scale_jobs=1_000_000,
    claims=50,
    scale_drain=200,
    bulk_lines=100_000,
    bulk_repeat=3,
    bulk_big=1_000_000,
    bulk_cap_s=120,
    cold_runs=20,
    latency_jobs=100,
    latency_idle=0.3,
    tui_repeat=3,
    tui_fresh=3,
    flood_mb=200,
    web_idle_s=10,
    schedule_s=60,
    pg_jobs=2000,
    pg_passes=2,
    pg_ceiling_spawns=2000,
    pg_statement_jobs=1000,
    pg_bulk_lines=100_000,
    console_seconds=10,
    retention_completed=500_000,
    retention_drain=10_000,
    retention_passes=3,
)
QUICK = dict(
    drain_jobs=300,
    drain_repeat=1,
    workers=[1, 2, 4, 8],
    scale_jobs=100_000,
    claims=20,
    scale_drain=50,
    bulk_lines=10_000,
    bulk_repeat=1,
    bulk_big=100_000,
    bulk_cap_s=30,
    cold_runs=5,
    latency_jobs=20,
    latency_idle=0.1,
    tui_repeat=1,
    tui_fresh=1,
    flood_mb=20,
    web_idle_s=5,
    schedule_s=20,
    pg_jobs=300,
    pg_passes=1,
    pg_ceiling_spawns=600,
    pg_statement_jobs=200,
    pg_bulk_lines=10_000,
    console_seconds=3,
    retention_completed=50_000,
    retention_drain=2_000,
    retention_passes=1,
)


def env(home: Path | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    e["PYTHONPATH"] = str(ROOT)
    if home is not None:  # on PostgreSQL: this host's logs go there, not to ~/.queuectl
        e["QUEUECTL_HOME"] = str(home)
    return e


def cli(db: Path | str, *args: str) -> list[str]:
    return [PY, "-m", "queuectl_tui", "--db", str(db), *args]


def med(values) -> float:
    return statistics.median(values)


def reap(proc: subprocess.Popen) -> float:
    """Wait for proc; CPU seconds of it and of everything it reaped."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- peers -----------------------------------------------------------------------------------


def install_peers() -> dict:
    """Make bench/out/peers/{venv,debs}; return per-peer status (path or why not)."""
    PEERS.mkdir(parents=True, exist_ok=True)
    status = {}
    venv = PEERS / "venv"
    try:
        if not (venv / "bin" / "huey_consumer").exists() or not (venv / "bin" / "rq").exists():
            subprocess.run([PY, "-m", "venv", str(venv)], check=True, capture_output=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", "huey", "rq", "redis"],
                check=True,
                capture_output=True,
                timeout=600,
            )
        out = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('huey'), m.version('rq'), m.version('redis'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        status["huey"], status["rq"], status["redis-py"] = out
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        status["venv_error"] = f"pip install huey rq redis failed: {str(exc)[:200]}"
    root = PEERS / "debs"
    x = root / "x"
    try:
        if not (x / "usr/bin/redis-server").exists() or not (x / "usr/bin/tsp").exists():
            root.mkdir(exist_ok=True)
            got = subprocess.run(
                ["apt-get", "download", *DEBS], cwd=root, capture_output=True, text=True
            )
            if got.returncode:
                subprocess.run(["apt-get", "update", "-q"], capture_output=True)
                subprocess.run(
                    ["apt-get", "download", *DEBS], cwd=root, check=True, capture_output=True
                )
            for deb in root.glob("*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(x)], check=True, capture_output=True)
        for name, pkg in (("redis-server", "redis-server"), ("tsp", "task-spooler")):
            ver = subprocess.run(
                ["dpkg-deb", "-f", str(next(root.glob(f"{pkg}_*.deb"))), "Version"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            status[name] = ver
    except (subprocess.SubprocessError, OSError, StopIteration) as exc:
        status["debs_error"] = f"apt-get download {' '.join(DEBS)} failed: {str(exc)[:200]}"
    return status


def deb_env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    e["LD_LIBRARY_PATH"] = str(PEERS / "debs/x/usr/lib/x86_64-linux-gnu")
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_driver(args: list[str]) -> dict:
    out = subprocess.run(
        [str(PEERS / "venv/bin/python"), str(BENCH / "peer_driver.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=deb_env(),
    )
    if out.returncode:
        raise RuntimeError((out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1])
    return json.loads(out.stdout)


def drain_huey(jobs: int, tmp: Path) -> dict:
    return peer_driver(["huey", "--dir", str(tmp), "--jobs", str(jobs), "--workers", "2"])


def drain_rq(jobs: int, tmp: Path, worker_class: str) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [
            str(PEERS / "debs/x/usr/bin/redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(tmp),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        env=deb_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:  # wait until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        return peer_driver(
            [
                "rq",
                "--dir",
                str(tmp),
                "--jobs",
                str(jobs),
                "--workers",
                "2",
                "--port",
                str(port),
                "--worker-class",
                worker_class,
            ]
        )
    finally:
        server.terminate()
        server.wait()


#: task-spooler keeps one waiting client process per queued job and accepts at most ~1000.
TSP_MAX_QUEUED = 900


def drain_tsp(jobs: int, tmp: Path) -> dict:
    """2 slots; two blocker jobs hold them while the jobs are queued, then are released."""
    jobs = min(jobs, TSP_MAX_QUEUED)
    tsp = str(PEERS / "debs/x/usr/bin/tsp")
    e = dict(deb_env(), TS_SOCKET=str(tmp / "ts.sock"), TMPDIR=str(tmp))
    go = tmp / "go"

    def ts(*args: str) -> str:
        return subprocess.run(
            [tsp, *args], env=e, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        ts("-S", "2")
        for _ in range(2):
            ts("sh", "-c", f"while [ ! -e {go} ]; do sleep 0.001; done")
        ids = [ts("true") for _ in range(jobs)]
        start = time.perf_counter()
        go.touch()
        for job_id in ids[-2:]:  # the last two queued are the last to start on 2 slots
            ts("-w", job_id)
        wall = time.perf_counter() - start
    finally:
        subprocess.run([tsp, "-K"], env=e, capture_output=True)
    return {"jobs": jobs, "wall_s": wall, "jobs_per_s": jobs / wall, "cpu_ms_per_job": None}


def ceiling(spawns: int) -> dict:
    """subprocess.run("true", shell=True) in a loop split over 2 processes."""
    code = f"import subprocess\nfor _ in range({spawns // 2}): subprocess.run('true', shell=True)"
    start = time.perf_counter()
    procs = [subprocess.Popen([PY, "-c", code]) for _ in range(2)]
    cpu = sum(reap(p) for p in procs)
    wall = time.perf_counter() - start
    return {
        "jobs": spawns,
        "wall_s": wall,
        "jobs_per_s": spawns / wall,
        "cpu_ms_per_job": cpu * 1000 / spawns,
    }


def enqueue_file(db: Path, lines: list[str], tmp: Path | None = None) -> None:
    path = (tmp or db.parent) / "jobs.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    subprocess.run(
        cli(db, "enqueue", "-f", str(path)), check=True, stdout=subprocess.DEVNULL, env=env(tmp)
    )


def count_done(db: Path, after_seq: int = 0):
    sql = "SELECT count(*) FROM job WHERE seq > ? AND state IN ('completed', 'dead')"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def done() -> int:
        return conn.execute(sql, (after_seq,)).fetchone()[0]

    return done


def wait_count(done, jobs: int, timeout: float = 900) -> float:
    deadline = time.monotonic() + timeout
    while done() < jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {done()} of {jobs} done")
        time.sleep(0.005)
    return time.perf_counter()


def drain_queuectl(jobs: int, workers: int, tmp: Path) -> dict:
    db = tmp / "queuectl.db"
    enqueue_file(db, ['{"command": "true"}'] * jobs, tmp)
    done = count_done(db)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cli(db, "worker", "start", "--count", str(workers), "--foreground", "--burst"),
        stdout=subprocess.DEVNULL,
        env=env(tmp),
    )
    try:
        end = wait_count(done, jobs)
    finally:
        cpu = reap(proc)  # --burst: it exits once the queue is empty
    return {
        "jobs": jobs,
        "wall_s": end - start,
        "jobs_per_s": jobs / (end - start),
        "cpu_ms_per_job": cpu * 1000 / jobs,
    }


#: Directories of the drain runs, removed when the section ends, not after each run: ext4
#: slows the creation of new files for minutes after thousands were deleted (it skips
#: recently freed inodes one by one), and a run that writes a log file per job would pay for
#: the cleanup of the run before it (measured: 1,400 against 3,100 jobs/s).
_RUN_DIRS: list[tempfile.TemporaryDirectory] = []


def repeat(fn, times: int, *args) -> dict:
    runs = []
    for _ in range(times):
        _RUN_DIRS.append(tempfile.TemporaryDirectory(prefix="qbench-"))
        runs.append(fn(*args, Path(_RUN_DIRS[-1].name)))
    out = {
        "jobs": runs[0]["jobs"],
        "runs": len(runs),
        "wall_s": med(r["wall_s"] for r in runs),
        "jobs_per_s": med(r["jobs_per_s"] for r in runs),
    }
    cpu = [r["cpu_ms_per_job"] for r in runs if r["cpu_ms_per_job"] is not None]
    out["cpu_ms_per_job"] = med(cpu) if cpu else None
    return out


def bench_drain(cfg: dict, peers: dict) -> dict:
    jobs, times = cfg["drain_jobs"], cfg["drain_repeat"]
    res: dict = {"ceiling": [], "rows": {}}
    spawn = lambda: res["ceiling"].append(ceiling(max(jobs, 2000))["jobs_per_s"])  # noqa: E731
    spawn()
    for n in cfg["workers"]:
        log(f"drain: queuectl, {n} worker(s)")
        res["rows"][f"queuectl, {n} worker{'s' if n > 1 else ''}"] = repeat(
            lambda tmp, n=n: drain_queuectl(jobs, n, tmp), times
        )
    spawn()
    have_venv = "venv_error" not in peers
    have_debs = "debs_error" not in peers
    for name, ok, why, fn in (
        (
            "huey SqliteHuey, 2 processes",
            have_venv,
            peers.get("venv_error"),
            lambda tmp: drain_huey(jobs, tmp),
        ),
        (
            "RQ SimpleWorker x2",
            have_venv and have_debs,
            peers.get("venv_error") or peers.get("debs_error"),
            lambda tmp: drain_rq(jobs, tmp, "rq.worker.SimpleWorker"),
        ),
        (
            "RQ Worker (forking) x2",
            have_venv and have_debs,
            peers.get("venv_error") or peers.get("debs_error"),
            lambda tmp: drain_rq(jobs, tmp, "rq.worker.Worker"),
        ),
        (
            "task-spooler, 2 slots",
            have_debs,
            peers.get("debs_error"),
            lambda tmp: drain_tsp(jobs, tmp),
        ),
    ):
        log(f"drain: {name}")
        if not ok:
            res["rows"][name] = {"error": f"not installed: {why}"}
            continue
        try:
            res["rows"][name] = repeat(fn, times)
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            res["rows"][name] = {"error": str(exc)[:200]}
    spawn()
    while _RUN_DIRS:
        _RUN_DIRS.pop().cleanup()
    res["ceiling_jobs_per_s"] = med(res["ceiling"])
    for row in res["rows"].values():
        if "jobs_per_s" in row:
            row["x_ceiling"] = row["jobs_per_s"] / res["ceiling_jobs_per_s"]
    return res


# --- scale -----------------------------------------------------------------------------------


def timed(fn, times: int) -> float:
    """Median ms of fn()."""
    out = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return med(out)


def cli_ms(args: list[str], times: int) -> float:
    return timed(
        lambda: subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env()), times
    )


def drain_extra(db: Path, jobs: int) -> float:
    """Seconds for 1 worker to run ``jobs`` new top-priority jobs of ``true`` on ``db``."""
    if not db.exists():
        subprocess.run(cli(db, "status"), check=True, stdout=subprocess.DEVNULL, env=env())
    conn = sqlite3.connect(db)
    last = conn.execute("SELECT coalesce(max(seq), 0) FROM job").fetchone()[0]
    conn.close()
    enqueue_file(db, ['{"command": "true", "priority": 10}'] * jobs)
    done = count_done(db, last)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cli(db, "worker", "start", "--foreground"), stdout=subprocess.DEVNULL, env=env()
    )
    try:
        end = wait_count(done, jobs)
    finally:
        proc.send_signal(signal.SIGTERM)
        reap(proc)
    return end - start


def bench_scale(cfg: dict, tmp: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(BENCH))
    import seed

    from queuectl_tui import engine, present
    from queuectl_tui.store import close_db, open_db

    db = tmp / "big" / "queuectl.db"
    db.parent.mkdir()
    res = {"jobs": cfg["scale_jobs"], "seed_s": seed.seed(db, cfg["scale_jobs"])}
    log("scale: queries")
    open_db(db)
    some_id = engine.list_jobs(state="completed", limit=1)[0].id

    def show() -> None:
        job = engine.get_job(some_id)
        [present.attempt_dict(a, engine.log_path(a)) for a in engine.attempts_of(job)]
        present.job_dict(job, full=True)
        present.explain(engine.why_facts(job))

    res["query_ms"] = {
        "status": timed(engine.stats, 10),
        "list --state pending --limit 50": timed(
            lambda: engine.list_jobs(state="pending", limit=50), 10
        ),
        "show ID": timed(show, 10),
    }
    worker = engine.register_worker(pid=os.getpid())
    res["claim_ms"] = timed(lambda: engine.claim(worker), cfg["claims"])
    log("scale: claims with priority aging on, execution stats")
    from queuectl_tui import settings

    started = time.perf_counter()
    settings.set_value("priority_aging", 1)  # re-ranks every waiting job in one transaction
    res["aging_rerank_s"] = time.perf_counter() - started
    res["claim_aging_ms"] = timed(lambda: engine.claim(worker), cfg["claims"])
    settings.reset("priority_aging")
    engine.unregister_worker(worker.id)
    res["stats"] = bench_stats(db)
    close_db()
    res["command_ms"] = {
        "status": cli_ms(cli(db, "status"), 5),
        "list --state pending --limit 50": cli_ms(
            cli(db, "list", "--state", "pending", "--limit", "50"), 5
        ),
        "show ID": cli_ms(cli(db, "show", some_id), 5),
    }
    log("scale: drain on the big database and on an empty one")
    res["drain_big_s"] = drain_extra(db, cfg["scale_drain"])
    small = tmp / "small" / "queuectl.db"
    small.parent.mkdir()
    res["drain_small_s"] = drain_extra(small, cfg["scale_drain"])
    res["drain_ratio"] = res["drain_big_s"] / res["drain_small_s"]
    shutil.rmtree(db.parent)
    return res


def bench_stats(db: Path) -> dict:
    """``metrics.execution_stats`` (the query time of ``stats``) on the seeded database, whose
    history spans its last two hours: a 1 h window holds ~39% of its attempts (its whole minutes
    come from the per-minute rollups, its edges from the attempts). Then the same on a copy of it
    spread over 4 queues."""
    import seed

    from queuectl_tui import metrics
    from queuectl_tui.store import close_db, open_db

    def measure(path: Path) -> dict:
        open_db(path)
        now = engine_now()
        one = metrics.execution_stats(now - 3600, None, now)
        out = {"attempts_1h": one["overall"]["attempts"], "sampled_every_1h": one["sampled_every"]}
        for label, window in (("1h", 3600), ("10m", 600)):
            out[f"ms_{label}"] = timed(lambda: metrics.execution_stats(now - window, None, now), 5)
        out["ms_timeline_1h"] = timed(lambda: metrics.timeline(now - 3600, now, 30), 3)
        close_db()
        return out

    def engine_now() -> float:
        from peewee import fn

        from queuectl_tui.store.models import Attempt

        return Attempt.select(fn.MAX(Attempt.finished_at)).scalar() + 200  # the seed's "now"

    res = {"one_queue": measure(db)}
    four = db.parent / "four.db"
    seed.seed(four, seed_count(db), queues=4)
    res["four_queues"] = measure(four)
    four.unlink()
    return res


def seed_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM job").fetchone()[0]
    finally:
        conn.close()


def bench_tui(cfg: dict) -> dict:
    out = subprocess.run(
        [
            PY,
            str(BENCH / "tui_bench.py"),
            "--jobs",
            str(cfg["scale_jobs"]),
            "--fast-seed",
            "--repeat",
            str(cfg["tui_repeat"]),
            "--fresh",
            str(cfg["tui_fresh"]),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env(),
        timeout=1200,
    )
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout)


def bench_console(cfg: dict) -> dict:
    """The console idle on every tab and page while jobs arrive (bench/console_idle.py)."""
    out = subprocess.run(
        [PY, str(BENCH / "console_idle.py"), "--json", "--seconds", str(cfg["console_seconds"])],
        capture_output=True,
        text=True,
        env=env(),
        timeout=900,
    )
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout)


# --- enqueue, cold start, worker -------------------------------------------------------------


def bench_bulk(cfg: dict, tmp: Path) -> dict:
    def run(lines: int, times: int) -> dict:
        out = subprocess.run(
            [
                PY,
                str(BENCH / "bulk_enqueue.py"),
                "--lines",
                str(lines),
                "--repeat",
                str(times),
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env(),
            check=True,
        )
        data = json.loads(out.stdout)  # bench/bulk_enqueue.py's summary, in our key names
        return {**data, "wall_s": data["median_seconds"], "jobs_per_s": data["jobs_per_second"]}

    res = {"rate": run(cfg["bulk_lines"], cfg["bulk_repeat"])}
    big = cfg["bulk_big"]
    expected = big / res["rate"]["jobs_per_s"]
    if expected <= cfg["bulk_cap_s"]:
        res["big"] = run(big, 1)
    else:  # too slow to finish here: the peak RSS seen before stopping it is a lower bound
        path = tmp / "big.jsonl"
        path.write_text('{"command": "true"}\n' * big)
        proc = subprocess.Popen(
            cli(tmp / "bulk" / "queuectl.db", "enqueue", "-f", str(path)),
            stdout=subprocess.DEVNULL,
            env=env(),
        )
        ps, peak, start = psutil.Process(proc.pid), 0, time.monotonic()
        while proc.poll() is None and time.monotonic() - start < cfg["bulk_cap_s"]:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        res["big"] = {
            "lines": big,
            "peak_rss_mb": peak / 2**20,
            "stopped_after_s": cfg["bulk_cap_s"],
            "expected_s": expected,
        }
    return res


def bench_cold(cfg: dict, tmp: Path) -> dict:
    # As installed (pip compiles it), the package has its bytecode, as peewee and click of the
    # baseline do; a checkout may have none, and with PYTHONDONTWRITEBYTECODE set each run
    # would compile it anew (~20 ms): measured is the start, not the compiler.
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(ROOT / "queuectl_tui")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    db = tmp / "cold" / "queuectl.db"
    subprocess.run(cli(db, "status"), check=True, stdout=subprocess.DEVNULL, env=env())
    commands = {
        "python -c 'import peewee, click'": [PY, "-c", "import peewee, click"],
        "enqueue true": cli(db, "enqueue", "true"),
        "status": cli(db, "status"),
    }
    res = {}
    for name, args in commands.items():
        walls, cpus = [], []
        for _ in range(cfg["cold_runs"]):
            start = time.perf_counter()
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, env=env())
            cpus.append(reap(proc) * 1000)
            walls.append((time.perf_counter() - start) * 1000)
        res[name] = {"wall_ms": med(walls), "cpu_ms": med(cpus)}
    return res


def bench_latency(cfg: dict, pg: str | None = None) -> dict:
    out = subprocess.run(
        [
            PY,
            str(BENCH / "latency.py"),
            "--jobs",
            str(cfg["latency_jobs"]),
            "--idle",
            str(cfg["latency_idle"]),
            "--json",
            *(["--pg", pg] if pg else []),
        ],
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    )
    return json.loads(out.stdout)


def bench_idle(window: float, pg: str | None) -> dict:
    """A day at rest (bench/idle.py) on SQLite, and on PostgreSQL when a server is named."""
    res: dict = {}
    for name, url in (("sqlite", None), ("postgres", pg)):
        if name == "postgres" and not url:
            continue
        log(f"idle: {name}, {window:.0f} s per row")
        out = subprocess.run(
            [
                PY,
                str(BENCH / "idle.py"),
                "--window",
                str(window),
                "--json",
                *(["--pg", url] if url else []),
            ],
            capture_output=True,
            text=True,
            env=env(),
            check=True,
        )
        res[name] = json.loads(out.stdout)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    res["measured"] = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit,
        "command": f"python bench/run.py --only idle"
        f"{'' if window == 60 else f' --idle-window {window:g}'}"
        f"{' --pg URL' if pg else ''}",
    }
    # The console on every page and tab while jobs arrive (bar: under 2 % of a core) is
    # measured by its own function, beside this one, into res["console_pages"].
    return res


def _retention_seed(db: Path, completed: int) -> float:
    """A database holding ``completed`` completed jobs (ended 2 h to 3 min ago, one attempt
    each; bench/seed.py, the other states deleted). Returns the seconds it took."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(BENCH))
    import seed

    from queuectl_tui.store import close_db, open_db

    started = time.perf_counter()
    seed.seed(db, int(completed / 0.6) + 10)
    database = open_db(db)
    with database.atomic():
        database.execute_sql(
            "DELETE FROM attempt WHERE job_seq IN (SELECT seq FROM job WHERE state != 'completed')"
        )
        database.execute_sql("DELETE FROM job WHERE state != 'completed'")
        extra = database.execute_sql("SELECT count(*) FROM job").fetchone()[0] - completed
        database.execute_sql(
            f"DELETE FROM job WHERE seq IN (SELECT seq FROM job ORDER BY seq DESC "
            f"LIMIT {max(extra, 0)})"
        )
    database.execute_sql("VACUUM")
    close_db()
    return time.perf_counter() - started


def _retention_pass(db: Path, tmp: Path, prune: bool, jobs: int) -> dict:
    """Drain ``jobs`` new jobs of ``true`` with 2 workers (``worker start --count 2
    --foreground``) on ``db``, pruning (keep_completed 60 s: every seeded job is due) or not
    (none), while a probe in this process takes the write lock as a claim does
    (``write_transaction``) every 10 ms and times each wait."""
    import threading

    from queuectl_tui.store import close_db, open_db, write_transaction

    subprocess.run(
        cli(db, "config", "set", "keep_completed", "60" if prune else "none"),
        check=True,
        stdout=subprocess.DEVNULL,
        env=env(tmp),
    )
    conn = sqlite3.connect(db, timeout=30)
    last = conn.execute("SELECT coalesce(max(seq), 0) FROM job").fetchone()[0]
    seeded = lambda: conn.execute("SELECT count(*) FROM job WHERE seq <= ?", (last,)).fetchone()[0]  # noqa: E731
    before = seeded()
    enqueue_file(db, ['{"command": "true", "priority": 10}'] * jobs, tmp)
    done = count_done(db, last)
    waits: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        open_db(db)
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                with write_transaction():
                    pass
                waits.append(time.perf_counter() - t0)
                stop.wait(0.01)
        finally:
            close_db()

    prober = threading.Thread(target=probe, daemon=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cli(db, "worker", "start", "--count", "2", "--foreground"),
        stdout=subprocess.DEVNULL,
        env=env(tmp),
    )
    prober.start()
    try:
        end = wait_count(done, jobs)
    finally:
        stop.set()
        prober.join()
        proc.send_signal(signal.SIGTERM)
        reap(proc)
    pruned = before - seeded()
    conn.close()
    waits.sort()
    return {
        "prune": prune,
        "jobs": jobs,
        "wall_s": end - start,
        "jobs_per_s": jobs / (end - start),
        "pruned": pruned,
        "pruned_per_s": pruned / (end - start),
        "probes": len(waits),
        "wait_max_ms": waits[-1] * 1000 if waits else None,
        "wait_p99_ms": waits[int(0.99 * (len(waits) - 1))] * 1000 if waits else None,
        "load": os.getloadavg(),
    }


def _retention_holds(db: Path, tmp: Path, jobs: int) -> dict:
    """How long each pruning transaction holds the write lock (what a claim can wait behind
    it): 2 workers drain ``jobs`` jobs on ``db`` without pruning, while this process prunes
    with the workers' own step (``retention.prune_step``) and pacing, timing each of its write
    transactions from the lock taken to the commit."""
    import threading
    from contextlib import contextmanager

    from queuectl_tui import retention, settings
    from queuectl_tui.run import loop as worker
    from queuectl_tui.store import close_db, open_db, write_transaction

    subprocess.run(
        cli(db, "config", "set", "keep_completed", "none"),
        check=True,
        stdout=subprocess.DEVNULL,
        env=env(tmp),
    )
    conn = sqlite3.connect(db, timeout=30)
    last = conn.execute("SELECT coalesce(max(seq), 0) FROM job").fetchone()[0]
    conn.close()
    enqueue_file(db, ['{"command": "true", "priority": 10}'] * jobs, tmp)
    done = count_done(db, last)
    holds: list[float] = []
    steps: list[float] = []

    @contextmanager
    def timed():
        with write_transaction():
            started = time.perf_counter()
            yield
        holds.append(time.perf_counter() - started)

    stop = threading.Event()
    cfg = settings.DEFAULTS._replace(keep_completed=60.0)

    def prune() -> None:
        open_db(db)
        retention.write_transaction = timed
        try:
            while not stop.is_set():
                started = time.perf_counter()
                went = retention.prune_step(cfg, holder="bench")
                elapsed = time.perf_counter() - started
                if went:
                    steps.append(elapsed)
                stop.wait(max(0.005, elapsed * worker.PRUNE_BUSY_GAP) if went else 1.0)
        finally:
            retention.write_transaction = write_transaction
            close_db()

    pruner = threading.Thread(target=prune, daemon=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cli(db, "worker", "start", "--count", "2", "--foreground"),
        stdout=subprocess.DEVNULL,
        env=env(tmp),
    )
    pruner.start()
    try:
        end = wait_count(done, jobs)
    finally:
        stop.set()
        pruner.join()
        proc.send_signal(signal.SIGTERM)
        reap(proc)
    holds.sort()
    return {
        "jobs_per_s": jobs / (end - start),
        "transactions": len(holds),
        "rows_per_transaction": retention.CHUNK,
        "hold_p50_ms": holds[len(holds) // 2] * 1000 if holds else None,
        "hold_p99_ms": holds[int(0.99 * (len(holds) - 1))] * 1000 if holds else None,
        "hold_max_ms": holds[-1] * 1000 if holds else None,
        "step_max_ms": max(steps) * 1000 if steps else None,
        "load": os.getloadavg(),
    }


def bench_retention(cfg: dict, tmp: Path) -> dict:
    """Pruning while 2 workers drain: the drain rate beside the same drain without pruning
    (bar: within 10 %), and the longest wait for the write lock (bar: 50 ms)."""
    completed, jobs = cfg["retention_completed"], cfg["retention_drain"]
    base, pruned = tmp / "keep" / "queuectl.db", tmp / "prune" / "queuectl.db"
    base.parent.mkdir()
    pruned.parent.mkdir()
    log(f"retention: seeding {completed:,} completed jobs")
    res: dict = {"completed": completed, "seed_s": _retention_seed(base, completed), "passes": []}
    shutil.copy(base, pruned)
    for i in range(cfg["retention_passes"]):
        for prune in (False, True):
            log(f"retention: pass {i + 1}, {'pruning' if prune else 'not pruning'}")
            res["passes"].append(
                _retention_pass(
                    pruned if prune else base, pruned.parent if prune else base.parent, prune, jobs
                )
            )
    for key, prune in (("keep", False), ("prune", True)):
        rows = [p for p in res["passes"] if p["prune"] is prune]
        res[key] = {
            "jobs_per_s": med(r["jobs_per_s"] for r in rows),
            "wait_max_ms": max(r["wait_max_ms"] or 0 for r in rows),
            "wait_p99_ms": med(r["wait_p99_ms"] or 0 for r in rows),
            "pruned_per_s": med(r["pruned_per_s"] for r in rows),
        }
    res["drain_ratio"] = res["prune"]["jobs_per_s"] / res["keep"]["jobs_per_s"]
    log("retention: the write lock held by each pruning transaction")
    res["holds"] = _retention_holds(pruned, pruned.parent, jobs)
    shutil.rmtree(base.parent)
    shutil.rmtree(pruned.parent)
    return res


def retention_report(rt: dict) -> list[str]:
    keep, prune = rt["keep"], rt["prune"]
    lines = [
        f"## Retention: pruning {rt['completed']:,} completed jobs while 2 workers drain",
        "",
        "A database of completed jobs (bench/seed.py, one attempt each, no log files) copied "
        "twice; on each, 2 workers (`worker start --count 2 --foreground`) drain "
        f"{rt['passes'][0]['jobs']:,} new jobs of `true`, once with `keep_completed` none "
        "and once with 60 s (every seeded job due: the workers prune while they drain), "
        "alternating, median of the passes. A probe thread takes the write lock as a claim "
        "does (`write_transaction`) every 10 ms and times its wait.",
        "",
        "| | jobs/s | probe wait p99 ms | probe wait max ms | pruned jobs/s | target | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| not pruning | {keep['jobs_per_s']:,.0f} | {keep['wait_p99_ms']:.1f} | "
        f"{keep['wait_max_ms']:.1f} | | | |",
        f"| pruning | {prune['jobs_per_s']:,.0f} | {prune['wait_p99_ms']:.1f} | "
        f"{prune['wait_max_ms']:.1f} | {prune['pruned_per_s']:,.0f} | drain >= 0.9x | "
        f"{verdict(rt['drain_ratio'] >= 0.9)} |",
        "",
        f"Drain with pruning: {rt['drain_ratio']:.2f}x the drain without. Passes (load, 1 min): "
        + "; ".join(
            f"{'prune' if p['prune'] else 'keep'} {p['jobs_per_s']:,.0f}/s ({p['load'][0]:.1f})"
            for p in rt["passes"]
        )
        + ". The probe's waits "
        "move with the load as much as with pruning: the wait pruning can cause is the time "
        "one of its transactions holds the lock, measured below.",
        "",
    ]
    h = rt.get("holds")
    if h and h["hold_max_ms"] is not None:
        lines += [
            "The same drain without the workers pruning, this process pruning beside them "
            "with their step and pacing (`retention.prune_step`, then 19x the step's time): "
            "how long each pruning transaction held the write lock, from taking it to its "
            f"commit ({h['transactions']:,} transactions of up to {h['rows_per_transaction']} "
            f"jobs; load {h['load'][0]:.1f}).",
            "",
            "| hold p50 ms | hold p99 ms | hold max ms | longest step ms | target | result |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {h['hold_p50_ms']:.1f} | {h['hold_p99_ms']:.1f} | {h['hold_max_ms']:.1f} | "
            f"{h['step_max_ms']:.1f} | max < 50 ms | {check(h['hold_max_ms'], 50)} |",
            "",
        ]
    return lines


def bench_worker(cfg: dict, tmp: Path) -> dict:
    db = tmp / "idle" / "queuectl.db"
    out = subprocess.run(
        cli(db, "worker", "start", "--json"), capture_output=True, text=True, env=env(), check=True
    )
    proc = psutil.Process(json.loads(out.stdout)[0]["pid"])
    try:
        time.sleep(1.0)  # settle after start-up: we measure the idle loop
        before, start = proc.cpu_times(), time.monotonic()
        time.sleep(5.0)
        after, span = proc.cpu_times(), time.monotonic() - start
        res = {
            "idle_cpu_pct": 100 * (after.user + after.system - before.user - before.system) / span,
            "idle_rss_mb": proc.memory_info().rss / 2**20,
        }
        size = cfg["flood_mb"] * 1_000_000
        enqueue_file(
            db,
            [
                json.dumps(
                    {"command": f"yes 0123456789012345678901234567890123456789 | head -c {size}"}
                )
            ],
        )
        done, samples = count_done(db), []
        deadline = time.monotonic() + 600
        while done() < 1 and time.monotonic() < deadline:
            samples.append(proc.memory_info().rss / 2**20)
            time.sleep(0.05)
        res["flood_mb"] = cfg["flood_mb"]
        res["flood_rss_mb"] = {
            "before": res["idle_rss_mb"],
            "max": max(samples, default=0),
            "after": proc.memory_info().rss / 2**20,
        }
    finally:
        subprocess.run(cli(db, "worker", "stop"), capture_output=True, env=env())
    return res


def bench_schedules(cfg: dict, tmp: Path) -> dict:
    """``schedule add tick --every 1s true`` with two detached workers for ``schedule_s``
    seconds: each due time in the window must make one job (ids are NAME@due time, so a repeat
    would be refused; a missing one is a due time no worker made)."""
    db = tmp / "schedules" / "queuectl.db"
    window = cfg["schedule_s"]
    subprocess.run(
        cli(db, "config", "set", "poll_interval", "5"), capture_output=True, env=env(), check=True
    )
    out = subprocess.run(
        cli(db, "worker", "start", "--count", "2", "--json"),
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    )
    procs = [psutil.Process(row["pid"]) for row in json.loads(out.stdout)]
    try:
        time.sleep(1.0)  # the workers settle: idle from here on
        cpu_before = [p.cpu_times() for p in procs]
        added = time.time()
        subprocess.run(
            cli(db, "schedule", "add", "tick", "--every", "1s", "--", "true"),
            capture_output=True,
            env=env(),
            check=True,
        )
        start = time.monotonic()
        time.sleep(window + 2.0)  # the window's last due time and a margin to run it
        span = time.monotonic() - start
        cpu_after = [p.cpu_times() for p in procs]
        load = os.getloadavg()
    finally:
        subprocess.run(cli(db, "worker", "stop"), capture_output=True, env=env())
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    rows = conn.execute(
        "SELECT j.id, j.run_at, j.created_at, a.started_at, j.state FROM job j LEFT JOIN attempt a "
        "ON a.job_seq = j.seq AND a.number = 1 WHERE j.schedule = 'tick' ORDER BY j.run_at"
    ).fetchall()
    first = conn.execute("SELECT created_at FROM schedule WHERE name = 'tick'").fetchone()[0]
    conn.close()
    # The window: the due times first + 1 ... first + window (every schedule counts from its creation).
    inside = [r for r in rows if first < r[1] <= first + window]
    made_late = [r[2] - r[1] for r in inside]
    started_late = [r[3] - r[1] for r in inside if r[3] is not None]
    cpu = [
        100 * (a.user + a.system - b.user - b.system) / span
        for a, b in zip(cpu_after, cpu_before, strict=True)
    ]
    return {
        "window_s": window,
        "due_times": window,
        "jobs": len(inside),
        "distinct": len({r[1] for r in inside}),
        "completed": sum(1 for r in inside if r[4] == "completed"),
        "made_late_ms": {"p50": 1000 * med(made_late), "max": 1000 * max(made_late)}
        if made_late
        else None,
        "started_late_ms": {"p50": 1000 * med(started_late), "max": 1000 * max(started_late)}
        if started_late
        else None,
        "worker_cpu_pct": cpu,
        "load": load,
        "added_at": added,
    }


def schedules_report(res: dict) -> list[str]:
    ok = abs(res["jobs"] - res["due_times"]) <= 1 and res["distinct"] == res["jobs"]
    made, started = res["made_late_ms"] or {}, res["started_late_ms"] or {}
    return [
        "## Schedules (a job every second, two workers)",
        "",
        f"`schedule add tick --every 1s -- true` with two detached workers (`worker start --count 2`, "
        f"poll_interval 5 s, so the due times end the idle workers' sleep, not a poll) for "
        f"{res['window_s']:.0f} s; load average then {'/'.join(f'{x:.1f}' for x in res['load'])}. "
        "Each due time must make exactly one job, whichever worker looks first.",
        "",
        "| figure | value | target | result |",
        "| --- | --- | --- | --- |",
        f"| jobs made for the window's {res['due_times']} due times | {res['jobs']} "
        f"({res['distinct']} distinct due times, {res['completed']} completed) | "
        f"{res['due_times']} +-1, no repeat | {verdict(ok)} |",
        f"| made after its due time, median (max) | {fmt(made.get('p50'))} ms ({fmt(made.get('max'))}) | | |",
        f"| started after its due time, median (max) | {fmt(started.get('p50'))} ms "
        f"({fmt(started.get('max'))}) | | |",
        f"| each worker's CPU meanwhile, % of a core | "
        f"{', '.join(f'{c:.2f}' for c in res['worker_cpu_pct'])} | | |",
        "",
    ]


def bench_web(cfg: dict) -> dict:
    """The web console at rest, one page open (bench/web_bench.py; needs Debian's chromium)."""
    out = subprocess.run(
        [PY, str(BENCH / "web_bench.py"), "--seconds", str(cfg["web_idle_s"]), "--json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout)


# --- postgres --------------------------------------------------------------------------------

PG_VENV = PEERS / "pgvenv"
#: The PostgreSQL peers, pinned to the minor versions measured beside queuectl so far.
PG_PEERS = ["pgqueuer~=1.6.0", "procrastinate~=3.10.0", "asyncpg", "psycopg[binary,pool]"]
#: The engine the scale-out bars are measured against ("2 workers drain at twice the old
#: rate"): the last one with the global advisory lock. Drained in the same run, beside this
#: checkout's, unless its queuectl_tui/ is this checkout's (then the ratio is 1 by definition).
PG_OLD_ENGINE = "012f555"


def install_pg_peers() -> dict:
    """bench/out/peers/pgvenv with pgqueuer and procrastinate (once); their versions."""
    python = PG_VENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        "import importlib.metadata as m; print(*(m.version(p) for p in "
        "('pgqueuer', 'asyncpg', 'procrastinate', 'psycopg')))",
    ]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode:
        subprocess.run([PY, "-m", "venv", "--clear", str(PG_VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(PG_VENV / "bin" / "pip"), "install", "-q", *PG_PEERS],
            check=True,
            capture_output=True,
            timeout=900,
        )
    versions = subprocess.run(probe, check=True, capture_output=True, text=True).stdout.split()
    return dict(zip(("pgqueuer", "asyncpg", "procrastinate", "psycopg"), versions, strict=True))


def old_engine(rev: str | None) -> tuple[Path | None, str | None]:
    """(source root of the engine at ``rev``, its commit); root None when it is this checkout's."""
    if not rev or rev == "none":
        return None, None
    git = lambda *a: subprocess.run(
        ["git", *a], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--verify", "--short", f"{rev}^{{commit}}")
    if not subprocess.run(
        ["git", "diff", "--quiet", commit, "--", "queuectl_tui"], cwd=ROOT
    ).returncode:
        return None, commit
    dest = OUT / "old-engine" / commit
    if not (dest / "queuectl_tui").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit, "queuectl_tui"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest, commit


def pg_peer_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("QUEUECTL_")
    }


def pg_peer(*args: str, timeout: float = 600) -> dict:
    out = subprocess.run(
        [str(PG_VENV / "bin/python"), str(BENCH / "pg_peer_driver.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=pg_peer_env(),
    )
    if out.returncode:
        raise RuntimeError((out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1])
    return json.loads(out.stdout)


class PgSystem:
    """How one system is set up, fed, worked and counted in a fresh database."""

    def __init__(self, name: str, task: str, root: Path = ROOT):
        self.name, self.task, self.root = name, task, root

    def queuectl_env(self, tmp: Path) -> dict[str, str]:
        # PYTHONSAFEPATH: ``python -m`` would put the current directory (this checkout, when
        # the benchmark runs from it) ahead of PYTHONPATH, and so run this engine as the old one
        return dict(env(tmp), PYTHONPATH=str(self.root), PYTHONSAFEPATH="1")

    def install(self, url: str, tmp: Path) -> None:
        if self.name == "queuectl":
            subprocess.run(
                cli(url, "status"), check=True, capture_output=True, env=self.queuectl_env(tmp)
            )
        else:
            pg_peer("install", self.name, "--dsn", url)

    def enqueue(self, url: str, jobs: int, tmp: Path) -> dict:
        """Enqueue ``jobs`` in one call of a fresh process; wall seconds of the process (and of
        the call alone, for the peers)."""
        start = time.perf_counter()
        if self.name == "queuectl":
            path = tmp / f"jobs-{jobs}.jsonl"
            if not path.exists():
                path.write_text('{"command": "true"}\n' * jobs)
            subprocess.run(
                cli(url, "enqueue", "-f", str(path)),
                check=True,
                stdout=subprocess.DEVNULL,
                env=self.queuectl_env(tmp),
            )
            call = None
        else:
            call = pg_peer(
                "enqueue", self.name, "--dsn", url, "--jobs", str(jobs), "--task", self.task
            )["call_s"]
        return {"process_s": time.perf_counter() - start, "call_s": call}

    def workers(self, url: str, n: int, tmp: Path) -> list[subprocess.Popen]:
        if self.name == "queuectl":  # one command forks the n workers
            cmds, e = (
                [cli(url, "worker", "start", "--count", str(n), "--foreground", "--burst")],
                self.queuectl_env(tmp),
            )
        else:
            cmds = [
                [
                    str(PG_VENV / "bin/python"),
                    str(BENCH / "pg_peer_driver.py"),
                    "worker",
                    self.name,
                    "--dsn",
                    url,
                ]
            ] * n
            e = pg_peer_env()
        procs = []
        for i, cmd in enumerate(cmds):
            with open(tmp / f"worker-{i}.err", "wb") as err:
                procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=e))
        return procs

    def done_sql(self, jobs: int) -> str:
        return {
            "queuectl": "SELECT count(*) FROM job WHERE state IN ('completed', 'dead')",
            "pgqueuer": f"SELECT {jobs} - count(*) FROM pgqueuer",  # an ended job leaves the queue table
            "procrastinate": "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('succeeded', 'failed')",
        }[self.name]


def exited(proc: subprocess.Popen) -> bool:
    """Whether ``proc`` has ended, leaving it unreaped (reap() then reads its CPU)."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def reap_all(procs: list[subprocess.Popen], tmp: Path, timeout: float = 120) -> float:
    """Wait for the workers to exit by themselves (burst / drain / one-shot); their CPU seconds."""
    deadline = time.monotonic() + timeout
    while not all(exited(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    for p in procs:
        if not exited(p):
            p.kill()
    cpu = sum(reap(p) for p in procs)
    failed = [i for i, p in enumerate(procs) if p.returncode]
    if failed:
        import pgserver

        raise RuntimeError(
            f"worker exited {procs[failed[0]].returncode}: "
            f"{pgserver.log_tail(tmp / f'worker-{failed[0]}.err') or 'no message'}"
        )
    return cpu


def drain_pg(
    server, system: PgSystem, workers: int, jobs: int, tmp: Path, count_statements: bool = False
) -> dict:
    """Drain ``jobs`` in a fresh database. Timed: wall from the workers' start to the moment a
    count of done jobs (polled every 10 ms on a connection of its own, left out of the server's
    CPU) reaches ``jobs``; CPU of the workers and of the server. With ``count_statements``: not
    timed; the statements, transactions and rows the drain cost the server."""
    import pgserver

    with server.database(f"{system.name}_{system.task}_{workers}") as (db, url):
        system.install(url, tmp)
        system.enqueue(url, jobs, tmp)
        if count_statements:
            server.quiet(db)
            before = server.db_stats(db)
            with server.statement_log(db) as statements:
                procs = system.workers(url, workers, tmp)
                reap_all(procs, tmp, timeout=600)
                server.quiet(db)
                conn = pgserver.connect(url)
                done = pgserver.query(conn, system.done_sql(jobs))[0][0]
                conn.close()
                if done != jobs:
                    raise RuntimeError(f"the workers exited with {done} of {jobs} jobs done")
                after = server.db_stats(db)
                return {
                    "jobs": jobs,
                    "statements_per_job": statements() / jobs,
                    **{f"{k}_per_job": (after[k] - before[k]) / jobs for k in after},
                }
        poller = pgserver.connect(url)
        try:
            me = pgserver.query(poller, "SELECT pg_backend_pid()")[0][0]
            sql = system.done_sql(jobs)
            meter = server.cpu_meter(db, exclude={me})
            if meter:
                meter.start()
            start = time.perf_counter()
            procs = system.workers(url, workers, tmp)
            try:
                deadline = time.monotonic() + 600
                while pgserver.query(poller, sql)[0][0] < jobs:
                    if time.monotonic() > deadline or all(exited(p) for p in procs):
                        raise RuntimeError(
                            f"{pgserver.query(poller, sql)[0][0]} of {jobs} done: "
                            + ("timed out" if time.monotonic() > deadline else "the workers exited")
                        )
                    time.sleep(0.01)
                end = time.perf_counter()
                server_cpu = meter.stop() if meter else None
            finally:
                cpu = reap_all(procs, tmp)
        finally:
            poller.close()
    wall = end - start
    out = {
        "jobs": jobs,
        "wall_s": wall,
        "jobs_per_s": jobs / wall,
        "cpu_ms_per_job": cpu * 1000 / jobs,
    }
    if server_cpu:
        out["server_ms_per_job"] = (server_cpu["backend"] + server_cpu["background"]) * 1000 / jobs
        out["server_background_ms_per_job"] = server_cpu["background"] * 1000 / jobs
    return out


def pg_rows(old_root: Path | None, peers: bool) -> list[tuple[str, PgSystem, list[int]]]:
    """(label, system, worker counts) of the drain table, in its order."""
    rows = [("queuectl, `true`", PgSystem("queuectl", "true"), [1, 2, 4, 8])]
    if old_root:
        rows.append(("queuectl, old engine", PgSystem("queuectl", "true", old_root), [2]))
    for peer in ("pgqueuer", "procrastinate") if peers else ():
        for task, what in (("shell", "shell task"), ("noop", "no-op task")):
            rows.append((f"{peer}, {what}", PgSystem(peer, task), [2, 8]))
    return rows


def bench_postgres(cfg: dict, pg: str | None, old_rev: str | None = PG_OLD_ENGINE) -> dict:
    """queuectl beside pgqueuer and procrastinate on the PostgreSQL server ``pg`` names, each
    measurement in a fresh database: drains (each after its own spawn ceiling; passes in a
    rotated order), statements per job (a logged drain apart), bulk enqueue, and queuectl's
    pickup latency from idle."""
    import pgserver
    import psycopg2

    if not pg:
        raise RuntimeError(
            "no server named: --pg postgresql://user:password@host:port/db (or QUEUECTL_BENCH_PG)"
        )
    server = pgserver.Server(pg)
    failures = (RuntimeError, subprocess.SubprocessError, OSError, psycopg2.Error)
    log("postgres: installing pgqueuer and procrastinate into bench/out/peers/pgvenv")
    old_root, old_commit = old_engine(old_rev)
    try:
        peers = install_pg_peers()
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        peers = {"error": f"pip install {' '.join(PG_PEERS)} failed: {str(exc)[:200]}"}
        log(f"postgres: {peers['error']}")
    res: dict = {
        "server": server.version,
        "peers": peers,
        "old_engine": old_commit,
        "old_engine_measured": old_root is not None,
        "why_no_server_cpu": server.why_no_cpu,
        "why_no_statements": server.why_no_statements,
        "rows": {},
        "ceilings": [],
    }
    rows = pg_rows(old_root, "error" not in peers)
    jobs, passes, spawns = cfg["pg_jobs"], cfg["pg_passes"], cfg["pg_ceiling_spawns"]
    plan = [(label, system, n) for label, system, counts in rows for n in counts]
    runs: dict[tuple[str, int], list[dict]] = {(label, n): [] for label, _, n in plan}
    for p in range(passes):
        shift = p * len(plan) // passes
        for label, system, n in plan[shift:] + plan[:shift]:
            log(f"postgres: drain {jobs} jobs, {label}, {n} worker(s) (pass {p + 1}/{passes})")
            with tempfile.TemporaryDirectory(prefix="qbench-") as name:
                ceiling_now = ceiling(spawns)["jobs_per_s"]
                res["ceilings"].append(ceiling_now)
                try:
                    run = drain_pg(server, system, n, jobs, Path(name))
                except failures as exc:
                    run = {"error": str(exc)[:300]}
                    log(f"postgres: failed: {run['error']}")
            run["ceiling"] = ceiling_now
            if "jobs_per_s" in run:
                run["x_ceiling"] = run["jobs_per_s"] / ceiling_now
            runs[(label, n)].append(run)
    for label, _, counts in rows:
        res["rows"][label] = {"drains": {str(n): summarize(runs[(label, n)]) for n in counts}}
    res["ratios"] = pass_ratios(runs, old_root is not None)
    for label, system, _ in rows:  # queuectl's at 2 and 8 workers, the others' at 2
        if "no-op" in label or not server.log_path:
            continue
        for n in [2, 8] if label == "queuectl, `true`" else [2]:
            log(f"postgres: statements per job, {label}, {n} workers")
            with tempfile.TemporaryDirectory(prefix="qbench-") as name:
                try:
                    got = drain_pg(
                        server,
                        system,
                        n,
                        cfg["pg_statement_jobs"],
                        Path(name),
                        count_statements=True,
                    )
                except failures as exc:
                    got = {"error": str(exc)[:300]}
            res["rows"][label].setdefault("statements", {})[str(n)] = got
    res["bulk"] = bench_pg_bulk(server, cfg, "error" not in peers, failures)
    log("postgres: pickup latency")
    res["latency"] = bench_latency(cfg, pg)
    log("postgres: bulk enqueue of varied specs (bench/bulk_enqueue.py)")
    out = subprocess.run(
        [
            PY,
            str(BENCH / "bulk_enqueue.py"),
            "--lines",
            str(cfg["bulk_lines"]),
            "--repeat",
            str(cfg["bulk_repeat"]),
            "--json",
            "--pg",
            pg,
        ],
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    )
    res["bulk_varied"] = json.loads(out.stdout)
    res["ceiling_jobs_per_s"] = med(res["ceilings"])
    return res


def summarize(runs: list[dict]) -> dict:
    """Medians over the passes of one drain, and the spread (min-max) of its rate."""
    good = [r for r in runs if "jobs_per_s" in r]
    if not good:
        return {"error": runs[0].get("error", "not measured") if runs else "not measured"}
    out = {"jobs": good[0]["jobs"], "passes": len(good)}
    for key in (
        "jobs_per_s",
        "x_ceiling",
        "cpu_ms_per_job",
        "server_ms_per_job",
        "server_background_ms_per_job",
        "ceiling",
    ):
        values = [r[key] for r in good if r.get(key) is not None]
        if values:
            out[key] = med(values)
    out["jobs_per_s_range"] = [
        min(r["jobs_per_s"] for r in good),
        max(r["jobs_per_s"] for r in good),
    ]
    if len(good) < len(runs):
        out["failed_passes"] = [r["error"] for r in runs if "error" in r]
    return out


def pass_ratios(runs: dict, have_old: bool) -> dict:
    """Ratios of x-ceiling figures within each pass (median over the passes): what the bars
    compare, so that a pass slowed by other programs slows both sides of a ratio."""
    q = "queuectl, `true`"

    def ratio(a: tuple[str, int], b: tuple[str, int]) -> float | None:
        if a not in runs or b not in runs:
            return None
        pairs = [
            (x["x_ceiling"], y["x_ceiling"])
            for x, y in zip(runs[a], runs[b], strict=True)
            if "x_ceiling" in x and "x_ceiling" in y
        ]
        return med([x / y for x, y in pairs]) if pairs else None

    out = {
        "2w_vs_pgqueuer_shell": ratio((q, 2), ("pgqueuer, shell task", 2)),
        "4w_vs_2w": ratio((q, 4), (q, 2)),
        "8w_vs_2w": ratio((q, 8), (q, 2)),
    }
    out["2w_vs_old"] = ratio((q, 2), ("queuectl, old engine", 2)) if have_old else 1.0
    return out


def bench_pg_bulk(server, cfg: dict, peers: bool, failures: tuple) -> dict:
    """``enqueue -f`` of N lines ``{"command": "true"}`` against pgqueuer's list enqueue and
    procrastinate's batch defer of N jobs, each into a fresh database whose schema is made
    before the clock starts; whole process (start-up, imports, connecting included)."""
    lines, times = cfg["pg_bulk_lines"], cfg["bulk_repeat"]
    systems = [PgSystem("queuectl", "true")]
    if peers:
        systems += [PgSystem("pgqueuer", "shell"), PgSystem("procrastinate", "shell")]
    runs: dict[str, list[dict]] = {s.name: [] for s in systems}
    with tempfile.TemporaryDirectory(prefix="qbench-") as name:
        tmp = Path(name)
        for p in range(times):
            for system in systems[p % len(systems) :] + systems[: p % len(systems)]:
                log(f"postgres: bulk enqueue of {lines:,}, {system.name} ({p + 1}/{times})")
                try:
                    with server.database(f"bulk_{system.name}") as (_, url):
                        system.install(url, tmp)
                        runs[system.name].append(system.enqueue(url, lines, tmp))
                except failures as exc:
                    runs[system.name].append({"error": str(exc)[:300]})
    out = {"lines": lines}
    for sysname, got in runs.items():
        good = [r for r in got if "process_s" in r]
        if not good:
            out[sysname] = {"error": got[0]["error"] if got else "not measured"}
            continue
        row = {"runs": len(good), "process_s": med(r["process_s"] for r in good)}
        row["jobs_per_s"] = lines / row["process_s"]
        calls = [r["call_s"] for r in good if r["call_s"] is not None]
        if calls:
            row["call_jobs_per_s"] = lines / med(calls)
        out[sysname] = row
    return out


# --- report ----------------------------------------------------------------------------------


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "os": f"{platform.system()} {platform.release()}",
        "load_start": os.getloadavg(),
    }


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "**miss**")


def check(value: float, target: float, higher_is_better: bool = False) -> str:
    """'pass', or '**miss**' with how far off."""
    if value >= target if higher_is_better else value <= target:
        return "pass"
    if higher_is_better:
        return f"**miss**: {value / target:.2f} of the target"
    return f"**miss**: {value / target:.2f}x the limit"


def fmt(v, digits=1) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def pg_report(p: dict, r: dict) -> list[str]:
    """The PostgreSQL section: queuectl beside the peers, the scale-out bars, kept figures."""
    peers = p.get("peers", {})
    load = lambda xs: "/".join(f"{x:.1f}" for x in xs)  # noqa: E731
    rows, ratios = p["rows"], p["ratios"]
    q = rows["queuectl, `true`"]
    jobs = next((d["jobs"] for d in q["drains"].values() if "jobs" in d), r["config"]["pg_jobs"])
    ceilings = p["ceilings"]
    old = p.get("old_engine")
    peer_line = (
        f"Peers not measured: {peers['error']}."
        if "error" in peers
        else f"Peers: pgqueuer {peers.get('pgqueuer', '?')} (asyncpg {peers.get('asyncpg', '?')}), "
        f"procrastinate {peers.get('procrastinate', '?')} (psycopg {peers.get('psycopg', '?')})."
    )
    lines = [
        f"## PostgreSQL ({p['server']}, on this machine)",
        "",
        f"Measured {r['date']} at commit `{r['commit']}` (`{r['command']}`); load average "
        f"(1/5/15 min) {load(r['machine']['load_start'])} at the start, {load(r['machine']['load_end'])} "
        f"at the end. {peer_line}",
        "",
        f"Every measurement in a fresh database, dropped after it. **Drain**: {jobs:,} jobs enqueued in "
        "one call, then the workers start; wall time from their start until a count of done jobs "
        "(polled every 10 ms) reaches them all. Each drain comes right after its own spawn ceiling "
        '(`subprocess.run("true", shell=True)` in a loop over 2 processes: median '
        f'{med(ceilings):,.0f}/s, {min(ceilings):,.0f}-{max(ceilings):,.0f} in this run), and "x ceiling" '
        f"divides the drain by it; {r['config']['pg_passes']} pass{'es' if r['config']['pg_passes'] > 1 else ''} "
        "in a rotated order, medians. "
        "queuectl: `worker start --count N --foreground --burst`, jobs of `true` (its job host runs "
        "them in a subshell of a long-lived `sh`, no exec: cheaper than the peers' spawn). pgqueuer: N "
        "processes in drain mode with its defaults (a batch of 10 per dequeue, run at once; ends "
        "written back in batches), through its supervisor API (`pgq run` of 1.6.0 fails at start-up). "
        "procrastinate: N processes of `run_worker(concurrency=1, wait=False)` (`--one-shot`). Shell "
        'task: `subprocess.run("true", shell=True)` in a thread; no-op: an async task that does '
        "nothing. **Server CPU**: the backends of the measured database (less the benchmark's poller) "
        "and the server's background processes, from `/proc/PID/schedstat` during the drain "
        "(bench/pgserver.py). **Statements**: `pg_stat_statements` would need a restart of a shared "
        "server, so a separate drain of "
        f"{r['config']['pg_statement_jobs']:,} jobs with `log_statement = 'all'` set on its database "
        "alone, whose lines of the server's log are counted (one per statement sent, BEGIN and COMMIT "
        "included); transactions and rows written come from `pg_stat_database` after its sessions end.",
        "",
    ]
    if p.get("why_no_server_cpu"):
        lines += [f"Server CPU not measured: {p['why_no_server_cpu']}.", ""]
    if p.get("why_no_statements"):
        lines += [f"Statements not counted: {p['why_no_statements']}.", ""]

    def per_workers(row: dict, key: str, digits: int) -> str:
        cells = []
        for n in ("1", "2", "4", "8"):
            d = row["drains"].get(n)
            cells.append("–" if d is None else ("err" if key not in d else f"{d[key]:,.{digits}f}"))
        return " / ".join(cells)

    def statements(row: dict) -> tuple[str, str]:
        got = row.get("statements", {})
        if not got:
            return "n/a", "n/a"
        first = " / ".join(f"{fmt(s.get('statements_per_job'), 2)} ({n} w)" for n, s in got.items())
        second = " / ".join(
            f"{fmt(s.get('transactions_per_job'), 2)}, {fmt(s.get('rows_written_per_job'), 1)} ({n} w)"
            for n, s in got.items()
        )
        return first, second

    lines += [
        "| system | jobs/s, 1 / 2 / 4 / 8 workers | x ceiling | server CPU ms/job | statements per job | "
        "transactions, rows written per job | workers' CPU ms/job |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, row in rows.items():
        name = f"{label} (`{old}`)" if label == "queuectl, old engine" else label
        stmts, xacts = statements(row)
        lines.append(
            f"| {name} | {per_workers(row, 'jobs_per_s', 0)} | {per_workers(row, 'x_ceiling', 2)} | "
            f"{per_workers(row, 'server_ms_per_job', 2)} | {stmts} | {xacts} | "
            f"{per_workers(row, 'cpu_ms_per_job', 2)} |"
        )
    errors = [
        f"- {label}, {n} workers: {d.get('error') or '; '.join(d['failed_passes'])}"
        for label, row in rows.items()
        for n, d in row["drains"].items()
        if "error" in d or "failed_passes" in d
    ]
    errors += [
        f"- statements, {label}, {n} workers: {s['error']}"
        for label, row in rows.items()
        for n, s in row.get("statements", {}).items()
        if "error" in s
    ]
    lines += [""] + (["Failed:", ""] + errors + [""] if errors else [])

    bulk = p.get("bulk", {})
    lines += [
        f"Bulk enqueue of {bulk.get('lines', 0):,} jobs, each system into a fresh database whose schema "
        "exists; whole process (Python start-up, imports, connecting; queuectl also reads and checks "
        'the file of lines `{"command": "true"}`), median of '
        f"{r['config']['bulk_repeat']}:",
        "",
        "| system | jobs/s (whole process) | wall s | jobs/s (the call alone) |",
        "| --- | --- | --- | --- |",
    ]
    for name, label in (
        ("queuectl", "queuectl `enqueue -f FILE.jsonl`"),
        ("pgqueuer", "pgqueuer `Queries.enqueue` of lists"),
        ("procrastinate", "procrastinate `batch_defer_async`"),
    ):
        b = bulk.get(name, {"error": "not measured"})
        if "error" in b:
            lines.append(f"| {label} | n/a | n/a | {b['error']} |")
        else:
            lines.append(
                f"| {label} | {b['jobs_per_s']:,.0f} | {b['process_s']:.2f} | {fmt(b.get('call_jobs_per_s'), 0)} |"
            )
    lines.append("")

    lat = p.get("latency", {})
    two = q["drains"].get("2", {})
    worst_cpu = [d["server_ms_per_job"] for d in q["drains"].values() if "server_ms_per_job" in d]
    worst_stmt = [
        s["statements_per_job"]
        for s in q.get("statements", {}).values()
        if "statements_per_job" in s
    ]
    qb, pb = bulk.get("queuectl", {}), bulk.get("pgqueuer", {})
    bulk_ratio = (
        qb["jobs_per_s"] / pb["jobs_per_s"] if "jobs_per_s" in qb and "jobs_per_s" in pb else None
    )
    x = lambda v: "n/a" if v is None else f"{v:.2f}x"  # noqa: E731
    old_note = (
        f"`{old}` drained in this run"
        if p.get("old_engine_measured")
        else f"the engine measured is `{old}`'s: 1 by definition"
        if old
        else "no old engine named"
    )
    checks = [
        (
            f"2 workers drain ≥ 2x the old engine's rate ({old_note}; x ceiling, within each pass)",
            x(ratios.get("2w_vs_old")),
            None if ratios.get("2w_vs_old") is None else ratios["2w_vs_old"] >= 2,
        ),
        (
            f"2 workers drain ≥ pgqueuer's shell-task rate (x ceiling, within each pass; queuectl {fmt(two.get('x_ceiling'), 2)})",
            x(ratios.get("2w_vs_pgqueuer_shell")),
            None
            if ratios.get("2w_vs_pgqueuer_shell") is None
            else ratios["2w_vs_pgqueuer_shell"] >= 1,
        ),
        (
            "4 workers no slower than 2 (x ceiling, within each pass)",
            x(ratios.get("4w_vs_2w")),
            None if ratios.get("4w_vs_2w") is None else ratios["4w_vs_2w"] >= 1,
        ),
        (
            "8 workers no slower than 2 (x ceiling, within each pass)",
            x(ratios.get("8w_vs_2w")),
            None if ratios.get("8w_vs_2w") is None else ratios["8w_vs_2w"] >= 1,
        ),
        (
            "server CPU per job ≤ 0.3 ms (the most of 1, 2, 4, 8 workers)",
            f"{max(worst_cpu):.2f} ms" if worst_cpu else "n/a",
            max(worst_cpu) <= 0.3 if worst_cpu else None,
        ),
        (
            "statements per job ≤ 1 (the most of 2, 8 workers)",
            f"{max(worst_stmt):.2f}" if worst_stmt else "n/a",
            max(worst_stmt) <= 1 if worst_stmt else None,
        ),
        (
            f"bulk enqueue of {bulk.get('lines', 0):,} lines ≥ pgqueuer's list enqueue (whole process)",
            x(bulk_ratio),
            None if bulk_ratio is None else bulk_ratio >= 1,
        ),
        (
            f"pickup latency from idle, median ≤ 10 ms ({lat.get('jobs', 0)} jobs)",
            f"{lat['median_ms']:.1f} ms" if "median_ms" in lat else "n/a",
            lat["median_ms"] <= 10 if "median_ms" in lat else None,
        ),
    ]
    lines += [
        "The scale-out bars (issue 21):",
        "",
        "| bar | measured | result |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {label} | {value} | {met(ok)} |" for label, value, ok in checks]
    lines.append("")

    bv = p.get("bulk_varied")
    lines += [
        "Kept figures (queuectl alone, each in a fresh schema):",
        "",
        "| figure | measured |",
        "| --- | --- |",
    ]
    if lat:
        lines.append(
            f"| pickup latency from idle (LISTEN/NOTIFY), {lat['jobs']} jobs: median / p90 / p99 | "
            f"{lat['median_ms']:.1f} / {lat['p90_ms']:.1f} / {lat['p99_ms']:.1f} ms |"
        )
    if bv:
        lines.append(
            f"| bulk enqueue, {bv['lines']:,} lines of varied specs (bench/bulk_enqueue.py), median of "
            f"{len(bv['runs'])} | {bv['median_seconds']:.2f} s = {bv['jobs_per_second']:,} jobs/s |"
        )
    lines.append("")
    return lines


def report(r: dict, command: str) -> str:
    m = r["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `bench/run.py` on {r['date']} at commit `{r['commit']}`.",
        "",
        f"- command: `{command}`",
        f"- machine: {m['cores']} cores, {m['cpu']}, {m['ram_gb']} GB RAM, {m['os']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}",
        f"- load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in m['load_start'])}, at end "
        f"{'/'.join(f'{x:.1f}' for x in m['load_end'])} (other processes shared the cores: ratios to the "
        "ceiling measured in the same run are the figures to compare)",
        f"- peers: {', '.join(f'{k} {v}' for k, v in r['peers'].items()) or 'not needed by these groups'}",
        "",
    ]
    d = r.get("drain")
    if d:
        ceil = d["ceiling_jobs_per_s"]
        lines += [
            f"## Drain: {d['rows'][next(iter(d['rows']))]['jobs']:,} jobs of `true`",
            "",
            f'Spawn ceiling (`subprocess.run("true", shell=True)` in a loop over 2 processes): '
            f"{ceil:,.0f} spawns/s (median of {len(d['ceiling'])} measured before, between and after; "
            f"{', '.join(f'{c:,.0f}' for c in d['ceiling'])}). Wall time is from starting the "
            "workers to the last job recorded done; CPU is the workers and everything they reaped.",
            "",
            "![drain rate per peer](drain.svg)",
            "",
            "| runner | jobs/s | x ceiling | CPU ms/job | target | result |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, row in d["rows"].items():
            if "error" in row:
                lines.append(f"| {name} | n/a | n/a | n/a | | {row['error']} |")
                continue
            target = name == "queuectl, 2 workers"
            note = (
                f" ({row['jobs']} jobs: tsp holds ~1000 queued at most)"
                if row["jobs"] != d["rows"]["queuectl, 1 worker"]["jobs"]
                else ""
            )
            lines.append(
                f"| {name}{note} | {row['jobs_per_s']:,.0f} | {row['x_ceiling']:.2f} | "
                f"{fmt(row['cpu_ms_per_job'], 2)} | {'>= 0.8x' if target else ''} | "
                f"{check(row['x_ceiling'], 0.8, True) if target else ''} |"
            )
        lines.append("")
    s = r.get("scale")
    if s:
        lines += [
            f"## Scale: {s['jobs']:,} jobs (20% pending, 60% completed, 10% dead, 10% failed in backoff; "
            f"seeded in {s['seed_s']:.1f} s)",
            "",
            "| figure | measured | target | result |",
            "| --- | --- | --- | --- |",
            f"| one claim (`engine.claim`), median | {s['claim_ms']:.2f} ms | < 1 ms | {check(s['claim_ms'], 1)} |",
        ]
        if "claim_aging_ms" in s:
            lines.append(
                f"| one claim with `priority_aging 1` (re-ranking the waiting jobs took "
                f"{s['aging_rerank_s']:.1f} s), median | {s['claim_aging_ms']:.2f} ms | < 1 ms | "
                f"{check(s['claim_aging_ms'], 1)} |"
            )
        for name, st in (s.get("stats") or {}).items():
            label = name.replace("_", " ")
            lines.append(
                f"| `stats` (metrics.execution_stats), {label}, 1 h window ({st['attempts_1h']:,} "
                f"attempts{', percentiles from 1 in ' + str(st['sampled_every_1h']) if st['sampled_every_1h'] > 1 else ''}), "
                f"median | {st['ms_1h']:.0f} ms | < 100 ms | {check(st['ms_1h'], 100)} |"
            )
            lines.append(
                f"| `stats --since 10m`, {label}, median (console chart, 1 h: {st['ms_timeline_1h']:.0f} ms) | "
                f"{st['ms_10m']:.0f} ms | < 100 ms | {check(st['ms_10m'], 100)} |"
            )
        for name, ms in s["query_ms"].items():
            lines.append(
                f"| `{name}`: engine calls, median (whole command: {s['command_ms'][name]:.0f} ms) | "
                f"{ms:.1f} ms | < 50 ms | {check(ms, 50)} |"
            )
        lines.append(
            f"| draining {r['config']['scale_drain']} jobs, 1 worker: here / near-empty database | "
            f"{s['drain_big_s']:.2f} s / {s['drain_small_s']:.2f} s = {s['drain_ratio']:.2f} | <= 1.5 | "
            f"{check(s['drain_ratio'], 1.5)} |"
        )
        lines.append("")
    t = r.get("tui")
    if t:
        lines += [
            f"## Console on {r['config']['scale_jobs']:,} jobs (bench/tui_bench.py --fast-seed)",
            "",
        ]
        if "error" in t:
            lines += [f"Not measured: {t['error']}", ""]
        else:
            lines += [
                "| operation | wall ms (median) | UI ms (median) | longest callback ms | target | result |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for name in ("open", "open, fresh process", "refresh", "tab", "next_page", "filter"):
                row = t.get(name)
                if row:
                    lines.append(
                        f"| {name} | {row['wall_ms_median']:.0f} | {row['ui_ms_median']:.0f} | "
                        f"{row['stall_ms_max']:.0f} | no stall > 100 ms | {check(row['stall_ms_max'], 100)} |"
                    )
            lines.append("")
    b = r.get("bulk")
    if b:
        big = b["big"]
        rss = f"{big['peak_rss_mb']:,.0f} MB"
        if "stopped_after_s" in big:
            rss = (
                f">= {rss} (stopped after {big['stopped_after_s']} s; a full run would take "
                f"~{big['expected_s']:.0f} s at the rate above)"
            )
        lines += [
            "## Bulk enqueue (`enqueue -f` of JSON Lines, bench/bulk_enqueue.py)",
            "",
            "| figure | measured | target | result |",
            "| --- | --- | --- | --- |",
            f"| {b['rate']['lines']:,} lines | {b['rate']['jobs_per_s']:,.0f} jobs/s | >= 100,000 | "
            f"{check(b['rate']['jobs_per_s'], 100_000, True)} |",
            f"| peak RSS, {big['lines']:,} lines | {rss} | < 100 MB | {check(big['peak_rss_mb'], 100)} |",
            "",
        ]
    c = r.get("cold")
    if c:
        base = c["python -c 'import peewee, click'"]
        lines += [
            f"## Cold start (median of {r['config']['cold_runs']} runs)",
            "",
            "| command | wall ms | CPU ms | wall / CPU vs baseline | target | result |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, row in c.items():
            if row is base:
                lines.append(
                    f"| `{name}` (baseline) | {row['wall_ms']:.0f} | {row['cpu_ms']:.0f} | 1.00 / 1.00 | | |"
                )
                continue
            rw, rc = row["wall_ms"] / base["wall_ms"], row["cpu_ms"] / base["cpu_ms"]
            lines.append(
                f"| `queuectl-tui {name}` | {row['wall_ms']:.0f} | {row['cpu_ms']:.0f} | {rw:.2f} / {rc:.2f} | "
                f"<= 1.3x | {check(max(rw, rc), 1.3)} |"
            )
        lines.append("")
    lat, w = r.get("latency"), r.get("worker")
    if lat or w:
        lines += [
            "## Kept figures",
            "",
            "| figure | measured | target | result |",
            "| --- | --- | --- | --- |",
        ]
        if lat:
            lines += [
                f"| pickup latency from idle, median ({lat['jobs']} jobs) | {lat['median_ms']:.1f} ms | <= 10 ms | "
                f"{check(lat['median_ms'], 10)} |",
                f"| pickup latency from idle, p99 | {lat['p99_ms']:.1f} ms | <= 50 ms | {check(lat['p99_ms'], 50)} |",
            ]
        if w:
            f = w["flood_rss_mb"]
            lines += [
                f"| idle worker CPU over 5 s | {w['idle_cpu_pct']:.2f}% of a core | < 1% | {check(w['idle_cpu_pct'], 1)} |",
                f"| idle worker RSS | {w['idle_rss_mb']:.1f} MB | < 30 MB | {check(w['idle_rss_mb'], 30)} |",
                f"| worker RSS during a {w['flood_mb']} MB output flood: before / max / after | "
                f"{f['before']:.1f} / {f['max']:.1f} / {f['after']:.1f} MB | flat (max within 5 MB of before) | "
                f"{verdict(f['max'] - f['before'] <= 5)} |",
            ]
        lines.append("")
    wb = r.get("web")
    if wb:
        lines += ["## Web: the console in a browser (bench/web_bench.py)", ""]
        if "error" in wb:
            lines += [f"Not measured: {wb['error']}", ""]
        else:
            lines += [
                f"`queuectl-tui web` on an empty queue, one page open in headless Chromium (first screen "
                f"after {wb['first_screen_s']:.1f} s), CPU over {wb['window_s']:.0f} s from /proc/PID/stat; "
                f"load average then {'/'.join(f'{x:.1f}' for x in wb['load'])}.",
                "",
                "| process | CPU, % of a core | target | result |",
                "| --- | --- | --- | --- |",
                f"| the server (aiohttp, textual-serve) | {wb['server_cpu_pct']:.2f} | < 1 | "
                f"{check(wb['server_cpu_pct'], 1)} |",
                f"| the tab's console (the console's own idle figure) | {wb['console_cpu_pct']:.2f} | | |",
                f"| Chromium, every process | {wb['chromium_cpu_pct']:.2f} | | |",
                "",
            ]
    ci = r.get("console")
    if ci and "places" in ci:
        lines += [
            "## Idle console while jobs arrive (bench/console_idle.py)",
            "",
            f"A real console in a {ci['size']} pseudo-terminal (tmux) on {ci['jobs']} jobs, one "
            f"more every {ci['every_s']} s; CPU of its process from /proc over "
            f"{ci['seconds_per_place']} s in each place (load average {ci['load'][0]:.1f}).",
            "",
            "| place | CPU, % of a core | target | result |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {place} | {pct:.2f} | < {ci['bar_pct']:g} | {check(pct, ci['bar_pct'])} |"
            for place, pct in ci["places"].items()
        ]
        lines.append("")
    idle = r.get("idle")
    if idle:
        lines += idle_report(idle)
    if r.get("schedules"):
        lines += schedules_report(r["schedules"])
    if r.get("retention"):
        lines += retention_report(r["retention"])
    if r.get("postgres"):
        lines += pg_report(r["postgres"], r)
    if r.get("errors"):
        lines += ["## Not measured", ""] + [f"- {k}: {v}" for k, v in r["errors"].items()] + [""]
    notes = BENCH / "notes.md"  # hand-written: why the misses of the engine measured here
    if notes.exists():
        lines += ["## Why the misses", "", notes.read_text().strip(), ""]
    lines += ["Raw figures: `bench/out/results.json` (not committed).", ""]
    return "\n".join(lines)


def idle_report(idle: dict) -> list[str]:
    """The day-at-rest tables: one row per worker count, one column per process."""
    lines = [
        "## A day at rest (bench/idle.py)",
        "",
        "Idle workers (`worker start --count N`, detached) on an empty queue, beside them a "
        "`wait --all` and a `logs -f` of a job scheduled a day ahead, and the console on its "
        "main screen in a pseudo-terminal (tmux). CPU of each process from /proc/PID/stat "
        "(a worker with its job host shell) over the window, after 4 s of settling. Bar: "
        "each under 1 % of a core.",
    ]
    if "measured" in idle:
        m = idle["measured"]
        lines[-1] += f" Measured on {m['date']} at commit `{m['commit']}` (`{m['command']}`)."
    lines.append("")
    for backend, res in idle.items():
        if backend not in ("sqlite", "postgres"):
            continue
        lines += [
            f"### {'SQLite' if backend == 'sqlite' else 'PostgreSQL'}, {res['window_s']:.0f} s "
            "per row",
            "",
            "| idle workers | each worker, % of a core (max) | `wait --all` | `logs -f` | "
            "console | load (1 min) | result |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in res["rows"]:
            cpu = row["cpu_pct"]
            workers = [v for k, v in cpu.items() if k.startswith("worker ")]
            others = [cpu.get(k) for k in ("wait --all", "logs -f", "console")]
            over = [
                f"{name} {v / res['bar_pct']:.2f}x the limit"
                for name, v in cpu.items()
                if v is not None and v >= res["bar_pct"]
            ]
            result = f"**miss**: {', '.join(over)}" if over else "pass"
            lines.append(
                f"| {row['workers']} | {fmt(max(workers, default=None), 2)} | "
                + " | ".join(fmt(v, 2) for v in others)
                + f" | {row['load'][0]:.1f} | {result} |"
            )
        lines.append("")
    return lines


def svg(drain: dict) -> str:
    """A horizontal bar chart of drain rate as x ceiling, with the 0.8 target and the ceiling."""
    rows = [(n, r.get("x_ceiling")) for n, r in drain["rows"].items()]
    top = max([1.0] + [v for _, v in rows if v is not None]) * 1.1
    label_w, bar_w, row_h, pad = 250, 420, 26, 30
    height = pad * 2 + row_h * len(rows) + 20
    x = lambda v: label_w + bar_w * v / top  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-weight="bold">Drain rate of {next(iter(drain["rows"].values())).get("jobs", "")} '
        f"jobs of true, x the 2-process spawn ceiling ({drain['ceiling_jobs_per_s']:,.0f}/s)</text>",
    ]
    for i, (name, v) in enumerate(rows):
        y = pad + 10 + i * row_h
        color = "#2b6cb0" if name.startswith("queuectl") else "#a0aec0"
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{name}</text>')
        if v is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 15}" fill="#c53030">not measured</text>')
            continue
        out.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{x(v) - label_w:.1f}" height="{row_h - 8}" fill="{color}"/>'
        )
        out.append(f'<text x="{x(v) + 4:.1f}" y="{y + 15}">{v:.2f}</text>')
    bottom = pad + 10 + len(rows) * row_h
    for v, label, dash in ((0.8, "target 0.8", "4,3"), (1.0, "ceiling", "")):
        out.append(
            f'<line x1="{x(v):.1f}" y1="{pad + 5}" x2="{x(v):.1f}" y2="{bottom}" stroke="#c53030" '
            f'stroke-dasharray="{dash}"/>'
        )
        out.append(
            f'<text x="{x(v):.1f}" y="{bottom + 15}" text-anchor="middle" fill="#c53030">{label}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(results: dict, command: str) -> None:
    text = report(results, command)
    path = BENCH / "BENCHMARKS.md"
    tried = [g for g in GROUPS if g in results or g in results.get("errors", {})]
    if set(tried) != set(GROUPS) and path.exists():
        text = splice(path.read_text(), text, tried, [g for g in tried if g in results])
    path.write_text(text)
    if "drain" in results:
        (BENCH / "drain.svg").write_text(svg(results["drain"]))


#: The first word of each group's heading in BENCHMARKS.md.
HEADINGS = {
    "drain": "Drain",
    "scale": "Scale",
    "tui": "Console",
    "bulk": "Bulk",
    "cold": "Cold",
    "latency": "Kept",
    "worker": "Kept",
    "web": "Web",
    "idle": "A",
    "console": "Idle",
    "schedules": "Schedules",
    "retention": "Retention:",
    "postgres": "PostgreSQL",
}


def sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(what precedes the first "## " heading, [(heading's first word, section text)])."""
    parts = text.split("\n## ")
    return parts[0], [(part.split(None, 1)[0], "## " + part) for part in parts[1:]]


def splice(old: str, new: str, tried: list[str], measured: list[str]) -> str:
    """BENCHMARKS.md after a run of some groups only: the sections of those it measured from
    ``new``, every other section (and the header, which describes the run that measured those)
    from ``old``; "Not measured" lists the failures of both runs, but of the groups not tried now."""
    mine = {HEADINGS[g] for g in measured}
    if "Kept" in mine and not {"latency", "worker"} <= set(measured):
        mine.discard("Kept")  # one of its two groups alone: the old section stays whole
    head, old_parts = sections(old.split("\nRaw figures:")[0])
    new_parts = dict(sections(new.split("\nRaw figures:")[0])[1])
    out, placed = [head.rstrip("\n")], set()
    for word, part in old_parts:
        if word in mine:
            if word in new_parts:
                out.append(new_parts[word].rstrip("\n"))
                placed.add(word)
        elif (
            word == "Not"
        ):  # "Not measured": the old lines of groups not measured now, the new ones
            keep = [
                line
                for line in part.splitlines()[2:]
                if line.startswith("- ") and line[2:].split(":", 1)[0] not in tried
            ]
            fresh = [
                line for line in new_parts.get("Not", "").splitlines()[2:] if line.startswith("- ")
            ]
            if keep or fresh:
                out.append("\n".join(["## Not measured", "", *keep, *fresh]))
            placed.add("Not")
        else:
            if word == "Why":  # new sections not in the old file go before the notes
                out += [
                    new_parts[w].rstrip("\n") for w in new_parts if w in mine and w not in placed
                ]
                placed |= mine
            out.append(part.rstrip("\n"))
    out += [
        new_parts[w].rstrip("\n")
        for w in new_parts
        if (w in mine or w == "Not") and w not in placed
    ]
    return "\n\n".join(out) + "\n\nRaw figures: `bench/out/results.json` (not committed).\n"


GROUPS = [
    "drain",
    "scale",
    "tui",
    "bulk",
    "cold",
    "latency",
    "worker",
    "web",
    "idle",
    "console",
    "schedules",
    "retention",
    "postgres",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for iteration")
    parser.add_argument("--only", nargs="*", choices=GROUPS, help="run only these groups")
    parser.add_argument(
        "--pg",
        default=os.environ.get("QUEUECTL_BENCH_PG"),
        help="a PostgreSQL URL: adds the postgres group (fresh schemas there)",
    )
    parser.add_argument(
        "--pg-old",
        default=PG_OLD_ENGINE,
        metavar="REV",
        help="the engine the postgres group's bars compare with, drained in the same run "
        f"(a git revision; default {PG_OLD_ENGINE}, the last with the global lock; 'none': skip)",
    )
    parser.add_argument(
        "--idle-window",
        type=float,
        default=60.0,
        help="seconds each idle row is measured (default 60; less for a quick look)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite BENCHMARKS.md and drain.svg from bench/out/results.json, measuring nothing",
    )
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((OUT / "results.json").read_text())
        write(results, results["command"])
        return
    cfg = QUICK if args.quick else FULL
    groups = args.only or [g for g in GROUPS if g != "postgres" or args.pg]
    command = (
        "python bench/run.py"
        + (" --quick" if args.quick else "")
        + (f" --only {' '.join(args.only)}" if args.only else "")
        + (" --pg URL" if args.pg else "")
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    results: dict = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit,
        "command": command,
        "config": cfg,
        "machine": machine(),
        "errors": {},
    }
    results["peers"] = {}
    if "drain" in groups:  # the peers are drained there only
        log("installing peers into bench/out/peers")
        results["peers"] = install_peers()
    with tempfile.TemporaryDirectory(prefix="qbench-") as name:
        tmp = Path(name)
        for group, fn in (
            ("drain", lambda: bench_drain(cfg, results["peers"])),
            ("scale", lambda: bench_scale(cfg, tmp)),
            ("tui", lambda: bench_tui(cfg)),
            ("bulk", lambda: bench_bulk(cfg, tmp)),
            ("cold", lambda: bench_cold(cfg, tmp)),
            ("latency", lambda: bench_latency(cfg)),
            ("worker", lambda: bench_worker(cfg, tmp)),
            ("web", lambda: bench_web(cfg)),
            ("idle", lambda: bench_idle(args.idle_window, args.pg)),
            ("console", lambda: bench_console(cfg)),
            ("schedules", lambda: bench_schedules(cfg, tmp)),
            ("retention", lambda: bench_retention(cfg, tmp)),
            ("postgres", lambda: bench_postgres(cfg, args.pg, args.pg_old)),
        ):
            if group not in groups:
                continue
            log(f"{group}")
            try:
                results[group] = fn()
            except Exception as exc:  # one group failing must not lose the others' figures
                results["errors"][group] = f"{type(exc).__name__}: {str(exc)[:300]}"
                log(f"{group} failed: {results['errors'][group]}")
    results["machine"]["load_end"] = os.getloadavg()
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write(results, command)
    log("wrote bench/BENCHMARKS.md, bench/drain.svg, bench/out/results.json")


if __name__ == "__main__":
    main()
