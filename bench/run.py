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
- console: a real console idle on every tab and page while jobs arrive, CPU per place
  (bench/console_idle.py; needs tmux);
- postgres, when a server is named (``--pg URL`` or QUEUECTL_BENCH_PG; each run in a fresh
  schema of that database): the same drain with 2 and 8 workers, pickup latency from idle
  (woken by LISTEN/NOTIFY) and bulk enqueue.

queuectl is measured from the checkout this file lives in (PYTHONPATH = its root), so re-run it
after engine changes. Writes bench/BENCHMARKS.md, bench/drain.svg and bench/out/results.json.

Run: python bench/run.py                (full: about 15 minutes on 2 cores)
     python bench/run.py --quick        (small sizes, for iteration: a minute or two)
     python bench/run.py --only drain   (some groups only; also with --quick)
     python bench/run.py --only postgres --pg postgresql://user:password@host:port/db
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

FULL = dict(drain_jobs=2000, drain_repeat=3, workers=[1, 2, 4, 8], scale_jobs=1_000_000,
            claims=50, scale_drain=200, bulk_lines=100_000, bulk_repeat=3, bulk_big=1_000_000,
            bulk_cap_s=120, cold_runs=20, latency_jobs=100, latency_idle=0.3, tui_repeat=3,
            tui_fresh=3, flood_mb=200, console_seconds=10)
QUICK = dict(drain_jobs=300, drain_repeat=1, workers=[1, 2, 4, 8], scale_jobs=100_000,
             claims=20, scale_drain=50, bulk_lines=10_000, bulk_repeat=1, bulk_big=100_000,
             bulk_cap_s=30, cold_runs=5, latency_jobs=20, latency_idle=0.1, tui_repeat=1,
             tui_fresh=1, flood_mb=20, console_seconds=3)


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
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "huey", "rq", "redis"],
                           check=True, capture_output=True, timeout=600)
        out = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('huey'), m.version('rq'), m.version('redis'))"],
                             check=True, capture_output=True, text=True).stdout.split()
        status["huey"], status["rq"], status["redis-py"] = out
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        status["venv_error"] = f"pip install huey rq redis failed: {str(exc)[:200]}"
    root = PEERS / "debs"
    x = root / "x"
    try:
        if not (x / "usr/bin/redis-server").exists() or not (x / "usr/bin/tsp").exists():
            root.mkdir(exist_ok=True)
            got = subprocess.run(["apt-get", "download", *DEBS], cwd=root, capture_output=True, text=True)
            if got.returncode:
                subprocess.run(["apt-get", "update", "-q"], capture_output=True)
                subprocess.run(["apt-get", "download", *DEBS], cwd=root, check=True, capture_output=True)
            for deb in root.glob("*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(x)], check=True, capture_output=True)
        for name, pkg in (("redis-server", "redis-server"), ("tsp", "task-spooler")):
            ver = subprocess.run(["dpkg-deb", "-f", str(next(root.glob(f"{pkg}_*.deb"))), "Version"],
                                 capture_output=True, text=True).stdout.strip()
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
    out = subprocess.run([str(PEERS / "venv/bin/python"), str(BENCH / "peer_driver.py"), *args],
                         capture_output=True, text=True, timeout=900, env=deb_env())
    if out.returncode:
        raise RuntimeError((out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1])
    return json.loads(out.stdout)


def drain_huey(jobs: int, tmp: Path) -> dict:
    return peer_driver(["huey", "--dir", str(tmp), "--jobs", str(jobs), "--workers", "2"])


def drain_rq(jobs: int, tmp: Path, worker_class: str) -> dict:
    port = free_port()
    server = subprocess.Popen([str(PEERS / "debs/x/usr/bin/redis-server"), "--port", str(port),
                               "--bind", "127.0.0.1", "--dir", str(tmp), "--save", "", "--appendonly", "no"],
                              env=deb_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        return peer_driver(["rq", "--dir", str(tmp), "--jobs", str(jobs), "--workers", "2",
                            "--port", str(port), "--worker-class", worker_class])
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
        return subprocess.run([tsp, *args], env=e, capture_output=True, text=True, check=True).stdout.strip()

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
    return {"jobs": spawns, "wall_s": wall, "jobs_per_s": spawns / wall, "cpu_ms_per_job": cpu * 1000 / spawns}


def enqueue_file(db: Path | str, lines: list[str], tmp: Path | None = None) -> None:
    path = (tmp or db.parent) / "jobs.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    subprocess.run(cli(db, "enqueue", "-f", str(path)), check=True, stdout=subprocess.DEVNULL, env=env(tmp))


def count_done(db: Path | str, after_seq: int = 0):
    sql = "SELECT count(*) FROM job WHERE seq > %s AND state IN ('completed', 'dead')"
    if isinstance(db, str):  # a PostgreSQL URL
        import psycopg2
        pg = psycopg2.connect(db)
        pg.autocommit = True

        def done_pg() -> int:
            with pg.cursor() as cursor:
                cursor.execute(sql, (after_seq,))
                return cursor.fetchone()[0]
        return done_pg
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def done() -> int:
        return conn.execute(sql.replace("%s", "?"), (after_seq,)).fetchone()[0]
    return done


def wait_count(done, jobs: int, timeout: float = 900) -> float:
    deadline = time.monotonic() + timeout
    while done() < jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {done()} of {jobs} done")
        time.sleep(0.005)
    return time.perf_counter()


def drain_queuectl(jobs: int, workers: int, tmp: Path, pg: str | None = None) -> dict:
    """With ``pg`` (a server's URL) the queue is a fresh schema there, dropped after."""
    schema = None
    db: Path | str = tmp / "queuectl.db"
    if pg:
        import pgschema
        schema, db = pgschema.fresh(pg, "bench_drain")
    try:
        enqueue_file(db, ['{"command": "true"}'] * jobs, tmp)
        done = count_done(db)
        start = time.perf_counter()
        proc = subprocess.Popen(cli(db, "worker", "start", "--count", str(workers), "--foreground", "--burst"),
                                stdout=subprocess.DEVNULL, env=env(tmp))
        try:
            end = wait_count(done, jobs)
        finally:
            cpu = reap(proc)  # --burst: it exits once the queue is empty
    finally:
        if schema:
            pgschema.drop(pg, schema)
    return {"jobs": jobs, "wall_s": end - start, "jobs_per_s": jobs / (end - start),
            "cpu_ms_per_job": cpu * 1000 / jobs}


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
    out = {"jobs": runs[0]["jobs"], "runs": len(runs), "wall_s": med(r["wall_s"] for r in runs),
           "jobs_per_s": med(r["jobs_per_s"] for r in runs)}
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
            lambda tmp, n=n: drain_queuectl(jobs, n, tmp), times)
    spawn()
    have_venv = "venv_error" not in peers
    have_debs = "debs_error" not in peers
    for name, ok, why, fn in (
        ("huey SqliteHuey, 2 processes", have_venv, peers.get("venv_error"), lambda tmp: drain_huey(jobs, tmp)),
        ("RQ SimpleWorker x2", have_venv and have_debs, peers.get("venv_error") or peers.get("debs_error"),
         lambda tmp: drain_rq(jobs, tmp, "rq.worker.SimpleWorker")),
        ("RQ Worker (forking) x2", have_venv and have_debs, peers.get("venv_error") or peers.get("debs_error"),
         lambda tmp: drain_rq(jobs, tmp, "rq.worker.Worker")),
        ("task-spooler, 2 slots", have_debs, peers.get("debs_error"), lambda tmp: drain_tsp(jobs, tmp)),
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
    return timed(lambda: subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env()), times)


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
    proc = subprocess.Popen(cli(db, "worker", "start", "--foreground"), stdout=subprocess.DEVNULL, env=env())
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
    from queuectl_tui.db import close_db, open_db

    db = tmp / "big" / "queuectl.db"
    db.parent.mkdir()
    res = {"jobs": cfg["scale_jobs"], "seed_s": seed.seed(db, cfg["scale_jobs"])}
    log("scale: queries")
    open_db(db)
    some_id = engine.list_jobs(state="completed", limit=1)[0].id

    def show() -> None:
        job = engine.get_job(some_id)
        [present.attempt_dict(a) for a in engine.attempts_of(job)]
        present.job_dict(job, full=True)
        present.explain(job)

    res["query_ms"] = {
        "status": timed(engine.stats, 10),
        "list --state pending --limit 50": timed(lambda: engine.list_jobs(state="pending", limit=50), 10),
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
        "list --state pending --limit 50": cli_ms(cli(db, "list", "--state", "pending", "--limit", "50"), 5),
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
    from queuectl_tui.db import close_db, open_db

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

        from queuectl_tui.models import Attempt
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
    out = subprocess.run([PY, str(BENCH / "tui_bench.py"), "--jobs", str(cfg["scale_jobs"]), "--fast-seed",
                          "--repeat", str(cfg["tui_repeat"]), "--fresh", str(cfg["tui_fresh"]), "--json"],
                         capture_output=True, text=True, env=env(), timeout=1200)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout)


def bench_console(cfg: dict) -> dict:
    """The console idle on every tab and page while jobs arrive (bench/console_idle.py)."""
    out = subprocess.run([PY, str(BENCH / "console_idle.py"), "--json", "--seconds",
                          str(cfg["console_seconds"])], capture_output=True, text=True, env=env(),
                         timeout=900)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout)


# --- enqueue, cold start, worker -------------------------------------------------------------

def bench_bulk(cfg: dict, tmp: Path) -> dict:
    def run(lines: int, times: int) -> dict:
        out = subprocess.run([PY, str(BENCH / "bulk_enqueue.py"), "--lines", str(lines), "--repeat", str(times),
                              "--json"], capture_output=True, text=True, env=env(), check=True)
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
        proc = subprocess.Popen(cli(tmp / "bulk" / "queuectl.db", "enqueue", "-f", str(path)),
                                stdout=subprocess.DEVNULL, env=env())
        ps, peak, start = psutil.Process(proc.pid), 0, time.monotonic()
        while proc.poll() is None and time.monotonic() - start < cfg["bulk_cap_s"]:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        res["big"] = {"lines": big, "peak_rss_mb": peak / 2**20, "stopped_after_s": cfg["bulk_cap_s"],
                      "expected_s": expected}
    return res


def bench_cold(cfg: dict, tmp: Path) -> dict:
    # As installed (pip compiles it), the package has its bytecode, as peewee and click of the
    # baseline do; a checkout may have none, and with PYTHONDONTWRITEBYTECODE set each run
    # would compile it anew (~20 ms): measured is the start, not the compiler.
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "queuectl_tui")], check=True,
                   stdout=subprocess.DEVNULL)
    db = tmp / "cold" / "queuectl.db"
    subprocess.run(cli(db, "status"), check=True, stdout=subprocess.DEVNULL, env=env())
    commands = {"python -c 'import peewee, click'": [PY, "-c", "import peewee, click"],
                "enqueue true": cli(db, "enqueue", "true"), "status": cli(db, "status")}
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
    out = subprocess.run([PY, str(BENCH / "latency.py"), "--jobs", str(cfg["latency_jobs"]), "--idle",
                          str(cfg["latency_idle"]), "--json", *(["--pg", pg] if pg else [])],
                         capture_output=True, text=True, env=env(), check=True)
    return json.loads(out.stdout)


def bench_postgres(cfg: dict, pg: str | None) -> dict:
    """Drain (2 and 8 workers, against the spawn ceiling measured here), pickup latency from
    idle and bulk enqueue, on the PostgreSQL server ``pg`` names."""
    if not pg:
        raise RuntimeError("no server named: --pg postgresql://user:password@host:port/db "
                           "(or QUEUECTL_BENCH_PG)")
    import psycopg2
    conn = psycopg2.connect(pg)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
    finally:
        conn.close()
    jobs, times = cfg["drain_jobs"], cfg["drain_repeat"]
    res: dict = {"server": server, "ceiling_jobs_per_s": ceiling(max(jobs, 2000))["jobs_per_s"],
                 "drain": {}}
    for n in (2, 8):
        log(f"postgres: drain, {n} workers")
        row = repeat(lambda tmp, n=n: drain_queuectl(jobs, n, tmp, pg), times)
        row["x_ceiling"] = row["jobs_per_s"] / res["ceiling_jobs_per_s"]
        res["drain"][f"queuectl, {n} workers"] = row
    while _RUN_DIRS:
        _RUN_DIRS.pop().cleanup()
    log("postgres: pickup latency")
    res["latency"] = bench_latency(cfg, pg)
    log("postgres: bulk enqueue")
    lines = cfg["bulk_lines"]
    out = subprocess.run([PY, str(BENCH / "bulk_enqueue.py"), "--lines", str(lines), "--repeat",
                          str(cfg["bulk_repeat"]), "--json", "--pg", pg],
                         capture_output=True, text=True, env=env(), check=True)
    res["bulk"] = json.loads(out.stdout)
    return res


def bench_worker(cfg: dict, tmp: Path) -> dict:
    db = tmp / "idle" / "queuectl.db"
    out = subprocess.run(cli(db, "worker", "start", "--json"), capture_output=True, text=True, env=env(), check=True)
    proc = psutil.Process(json.loads(out.stdout)[0]["pid"])
    try:
        time.sleep(1.0)  # settle after start-up: we measure the idle loop
        before, start = proc.cpu_times(), time.monotonic()
        time.sleep(5.0)
        after, span = proc.cpu_times(), time.monotonic() - start
        res = {"idle_cpu_pct": 100 * (after.user + after.system - before.user - before.system) / span,
               "idle_rss_mb": proc.memory_info().rss / 2**20}
        size = cfg["flood_mb"] * 1_000_000
        enqueue_file(db, [json.dumps({"command": f"yes 0123456789012345678901234567890123456789 | head -c {size}"})])
        done, samples = count_done(db), []
        deadline = time.monotonic() + 600
        while done() < 1 and time.monotonic() < deadline:
            samples.append(proc.memory_info().rss / 2**20)
            time.sleep(0.05)
        res["flood_mb"] = cfg["flood_mb"]
        res["flood_rss_mb"] = {"before": res["idle_rss_mb"], "max": max(samples, default=0),
                               "after": proc.memory_info().rss / 2**20}
    finally:
        subprocess.run(cli(db, "worker", "stop"), capture_output=True, env=env())
    return res


# --- report ----------------------------------------------------------------------------------

def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "cpu": model, "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "os": f"{platform.system()} {platform.release()}", "load_start": os.getloadavg()}


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


def report(r: dict, command: str) -> str:
    m = r["machine"]
    lines = [
        "# Benchmarks", "",
        f"Generated by `bench/run.py` on {r['date']} at commit `{r['commit']}`.", "",
        f"- command: `{command}`",
        f"- machine: {m['cores']} cores, {m['cpu']}, {m['ram_gb']} GB RAM, {m['os']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}",
        f"- load average (1/5/15 min) at start {'/'.join(f'{x:.1f}' for x in m['load_start'])}, at end "
        f"{'/'.join(f'{x:.1f}' for x in m['load_end'])} (other processes shared the cores: ratios to the "
        "ceiling measured in the same run are the figures to compare)",
        f"- peers: {', '.join(f'{k} {v}' for k, v in r['peers'].items()) or 'not needed by these groups'}", "",
    ]
    d = r.get("drain")
    if d:
        ceil = d["ceiling_jobs_per_s"]
        lines += [f"## Drain: {d['rows'][next(iter(d['rows']))]['jobs']:,} jobs of `true`", "",
                  f"Spawn ceiling (`subprocess.run(\"true\", shell=True)` in a loop over 2 processes): "
                  f"{ceil:,.0f} spawns/s (median of {len(d['ceiling'])} measured before, between and after; "
                  f"{', '.join(f'{c:,.0f}' for c in d['ceiling'])}). Wall time is from starting the "
                  "workers to the last job recorded done; CPU is the workers and everything they reaped.", "",
                  "![drain rate per peer](drain.svg)", "",
                  "| runner | jobs/s | x ceiling | CPU ms/job | target | result |", "| --- | --- | --- | --- | --- | --- |"]
        for name, row in d["rows"].items():
            if "error" in row:
                lines.append(f"| {name} | n/a | n/a | n/a | | {row['error']} |")
                continue
            target = name == "queuectl, 2 workers"
            note = f" ({row['jobs']} jobs: tsp holds ~1000 queued at most)" if row["jobs"] != d["rows"]["queuectl, 1 worker"]["jobs"] else ""
            lines.append(f"| {name}{note} | {row['jobs_per_s']:,.0f} | {row['x_ceiling']:.2f} | "
                         f"{fmt(row['cpu_ms_per_job'], 2)} | {'>= 0.8x' if target else ''} | "
                         f"{check(row['x_ceiling'], 0.8, True) if target else ''} |")
        lines.append("")
    s = r.get("scale")
    if s:
        lines += [f"## Scale: {s['jobs']:,} jobs (20% pending, 60% completed, 10% dead, 10% failed in backoff; "
                  f"seeded in {s['seed_s']:.1f} s)", "",
                  "| figure | measured | target | result |", "| --- | --- | --- | --- |",
                  f"| one claim (`engine.claim`), median | {s['claim_ms']:.2f} ms | < 1 ms | {check(s['claim_ms'], 1)} |"]
        if "claim_aging_ms" in s:
            lines.append(f"| one claim with `priority_aging 1` (re-ranking the waiting jobs took "
                         f"{s['aging_rerank_s']:.1f} s), median | {s['claim_aging_ms']:.2f} ms | < 1 ms | "
                         f"{check(s['claim_aging_ms'], 1)} |")
        for name, st in (s.get("stats") or {}).items():
            label = name.replace("_", " ")
            lines.append(f"| `stats` (metrics.execution_stats), {label}, 1 h window ({st['attempts_1h']:,} "
                         f"attempts{', percentiles from 1 in ' + str(st['sampled_every_1h']) if st['sampled_every_1h'] > 1 else ''}), "
                         f"median | {st['ms_1h']:.0f} ms | < 100 ms | {check(st['ms_1h'], 100)} |")
            lines.append(f"| `stats --since 10m`, {label}, median (console chart, 1 h: {st['ms_timeline_1h']:.0f} ms) | "
                         f"{st['ms_10m']:.0f} ms | < 100 ms | {check(st['ms_10m'], 100)} |")
        for name, ms in s["query_ms"].items():
            lines.append(f"| `{name}`: engine calls, median (whole command: {s['command_ms'][name]:.0f} ms) | "
                         f"{ms:.1f} ms | < 50 ms | {check(ms, 50)} |")
        lines.append(f"| draining {r['config']['scale_drain']} jobs, 1 worker: here / near-empty database | "
                     f"{s['drain_big_s']:.2f} s / {s['drain_small_s']:.2f} s = {s['drain_ratio']:.2f} | <= 1.5 | "
                     f"{check(s['drain_ratio'], 1.5)} |")
        lines.append("")
    t = r.get("tui")
    if t:
        lines += [f"## Console on {r['config']['scale_jobs']:,} jobs (bench/tui_bench.py --fast-seed)", ""]
        if "error" in t:
            lines += [f"Not measured: {t['error']}", ""]
        else:
            lines += ["| operation | wall ms (median) | UI ms (median) | longest callback ms | target | result |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for name in ("open", "open, fresh process", "refresh", "tab", "next_page", "filter"):
                row = t.get(name)
                if row:
                    lines.append(f"| {name} | {row['wall_ms_median']:.0f} | {row['ui_ms_median']:.0f} | "
                                 f"{row['stall_ms_max']:.0f} | no stall > 100 ms | {check(row['stall_ms_max'], 100)} |")
            lines.append("")
    b = r.get("bulk")
    if b:
        big = b["big"]
        rss = f"{big['peak_rss_mb']:,.0f} MB"
        if "stopped_after_s" in big:
            rss = (f">= {rss} (stopped after {big['stopped_after_s']} s; a full run would take "
                   f"~{big['expected_s']:.0f} s at the rate above)")
        lines += ["## Bulk enqueue (`enqueue -f` of JSON Lines, bench/bulk_enqueue.py)", "",
                  "| figure | measured | target | result |", "| --- | --- | --- | --- |",
                  f"| {b['rate']['lines']:,} lines | {b['rate']['jobs_per_s']:,.0f} jobs/s | >= 100,000 | "
                  f"{check(b['rate']['jobs_per_s'], 100_000, True)} |",
                  f"| peak RSS, {big['lines']:,} lines | {rss} | < 100 MB | {check(big['peak_rss_mb'], 100)} |", ""]
    c = r.get("cold")
    if c:
        base = c["python -c 'import peewee, click'"]
        lines += [f"## Cold start (median of {r['config']['cold_runs']} runs)", "",
                  "| command | wall ms | CPU ms | wall / CPU vs baseline | target | result |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, row in c.items():
            if row is base:
                lines.append(f"| `{name}` (baseline) | {row['wall_ms']:.0f} | {row['cpu_ms']:.0f} | 1.00 / 1.00 | | |")
                continue
            rw, rc = row["wall_ms"] / base["wall_ms"], row["cpu_ms"] / base["cpu_ms"]
            lines.append(f"| `queuectl-tui {name}` | {row['wall_ms']:.0f} | {row['cpu_ms']:.0f} | {rw:.2f} / {rc:.2f} | "
                         f"<= 1.3x | {check(max(rw, rc), 1.3)} |")
        lines.append("")
    lat, w = r.get("latency"), r.get("worker")
    if lat or w:
        lines += ["## Kept figures", "", "| figure | measured | target | result |", "| --- | --- | --- | --- |"]
        if lat:
            lines += [f"| pickup latency from idle, median ({lat['jobs']} jobs) | {lat['median_ms']:.1f} ms | <= 10 ms | "
                      f"{check(lat['median_ms'], 10)} |",
                      f"| pickup latency from idle, p99 | {lat['p99_ms']:.1f} ms | <= 50 ms | {check(lat['p99_ms'], 50)} |"]
        if w:
            f = w["flood_rss_mb"]
            lines += [f"| idle worker CPU over 5 s | {w['idle_cpu_pct']:.2f}% of a core | < 1% | {check(w['idle_cpu_pct'], 1)} |",
                      f"| idle worker RSS | {w['idle_rss_mb']:.1f} MB | < 30 MB | {check(w['idle_rss_mb'], 30)} |",
                      f"| worker RSS during a {w['flood_mb']} MB output flood: before / max / after | "
                      f"{f['before']:.1f} / {f['max']:.1f} / {f['after']:.1f} MB | flat (max within 5 MB of before) | "
                      f"{verdict(f['max'] - f['before'] <= 5)} |"]
        lines.append("")
    ci = r.get("console")
    if ci and "places" in ci:
        lines += ["## The console idle while jobs arrive (bench/console_idle.py)", "",
                  f"A real console in a {ci['size']} pseudo-terminal (tmux) on {ci['jobs']} jobs, one "
                  f"more every {ci['every_s']} s; CPU of its process from /proc over "
                  f"{ci['seconds_per_place']} s in each place (load average {ci['load'][0]:.1f}).", "",
                  "| place | CPU, % of a core | target | result |", "| --- | --- | --- | --- |"]
        lines += [f"| {place} | {pct:.2f} | < {ci['bar_pct']:g} | {check(pct, ci['bar_pct'])} |"
                  for place, pct in ci["places"].items()]
        lines.append("")
    p = r.get("postgres")
    if p:
        lat, bulk = p["latency"], p["bulk"]
        lines += [f"## PostgreSQL ({p.get('server', 'server')}, on this machine)", "",
                  "The same measures on a PostgreSQL server, each run in a fresh schema. Spawn "
                  f"ceiling measured here: {p['ceiling_jobs_per_s']:,.0f} spawns/s.", "",
                  "| figure | measured | x ceiling | CPU ms/job |", "| --- | --- | --- | --- |"]
        for name, row in p["drain"].items():
            lines.append(f"| drain {row['jobs']:,} jobs of `true`, {name} | {row['jobs_per_s']:,.0f} jobs/s | "
                         f"{row['x_ceiling']:.2f} | {fmt(row['cpu_ms_per_job'], 2)} |")
        lines += [f"| pickup latency from idle (LISTEN/NOTIFY), median ({lat['jobs']} jobs) | "
                  f"{lat['median_ms']:.1f} ms | | |",
                  f"| pickup latency from idle, p99 | {lat['p99_ms']:.1f} ms | | |",
                  f"| bulk enqueue, {bulk['lines']:,} lines (median of {len(bulk['runs'])}) | "
                  f"{bulk['median_seconds']:.2f} s = {bulk['jobs_per_second']:,} jobs/s | | |", ""]
    if r.get("errors"):
        lines += ["## Not measured", ""] + [f"- {k}: {v}" for k, v in r["errors"].items()] + [""]
    notes = BENCH / "notes.md"  # hand-written: why the misses of the engine measured here
    if notes.exists():
        lines += ["## Why the misses", "", notes.read_text().strip(), ""]
    lines += ["Raw figures: `bench/out/results.json` (not committed).", ""]
    return "\n".join(lines)


def svg(drain: dict) -> str:
    """A horizontal bar chart of drain rate as x ceiling, with the 0.8 target and the ceiling."""
    rows = [(n, r.get("x_ceiling")) for n, r in drain["rows"].items()]
    top = max([1.0] + [v for _, v in rows if v is not None]) * 1.1
    label_w, bar_w, row_h, pad = 250, 420, 26, 30
    height = pad * 2 + row_h * len(rows) + 20
    x = lambda v: label_w + bar_w * v / top  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{height}" '
           'font-family="sans-serif" font-size="13">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-weight="bold">Drain rate of {next(iter(drain["rows"].values())).get("jobs", "")} '
           f'jobs of true, x the 2-process spawn ceiling ({drain["ceiling_jobs_per_s"]:,.0f}/s)</text>']
    for i, (name, v) in enumerate(rows):
        y = pad + 10 + i * row_h
        color = "#2b6cb0" if name.startswith("queuectl") else "#a0aec0"
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{name}</text>')
        if v is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 15}" fill="#c53030">not measured</text>')
            continue
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{x(v) - label_w:.1f}" height="{row_h - 8}" fill="{color}"/>')
        out.append(f'<text x="{x(v) + 4:.1f}" y="{y + 15}">{v:.2f}</text>')
    bottom = pad + 10 + len(rows) * row_h
    for v, label, dash in ((0.8, "target 0.8", "4,3"), (1.0, "ceiling", "")):
        out.append(f'<line x1="{x(v):.1f}" y1="{pad + 5}" x2="{x(v):.1f}" y2="{bottom}" stroke="#c53030" '
                   f'stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{x(v):.1f}" y="{bottom + 15}" text-anchor="middle" fill="#c53030">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(results: dict, command: str) -> None:
    (BENCH / "BENCHMARKS.md").write_text(report(results, command))
    if "drain" in results:
        (BENCH / "drain.svg").write_text(svg(results["drain"]))


GROUPS = ["drain", "scale", "tui", "bulk", "cold", "latency", "worker", "console", "postgres"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for iteration")
    parser.add_argument("--only", nargs="*", choices=GROUPS, help="run only these groups")
    parser.add_argument("--pg", default=os.environ.get("QUEUECTL_BENCH_PG"),
                        help="a PostgreSQL URL: adds the postgres group (fresh schemas there)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite BENCHMARKS.md and drain.svg from bench/out/results.json, measuring nothing")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((OUT / "results.json").read_text())
        write(results, results["command"])
        return
    cfg = QUICK if args.quick else FULL
    groups = args.only or [g for g in GROUPS if g != "postgres" or args.pg]
    command = "python bench/run.py" + (" --quick" if args.quick else "") + (
        f" --only {' '.join(args.only)}" if args.only else "") + (" --pg URL" if args.pg else "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results: dict = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "commit": commit,
                     "command": command, "config": cfg, "machine": machine(), "errors": {}}
    results["peers"] = {}
    if "drain" in groups:  # the peers are drained there only
        log("installing peers into bench/out/peers")
        results["peers"] = install_peers()
    with tempfile.TemporaryDirectory(prefix="qbench-") as name:
        tmp = Path(name)
        for group, fn in (("drain", lambda: bench_drain(cfg, results["peers"])),
                          ("scale", lambda: bench_scale(cfg, tmp)), ("tui", lambda: bench_tui(cfg)),
                          ("bulk", lambda: bench_bulk(cfg, tmp)), ("cold", lambda: bench_cold(cfg, tmp)),
                          ("latency", lambda: bench_latency(cfg)), ("worker", lambda: bench_worker(cfg, tmp)),
                          ("console", lambda: bench_console(cfg)),
                          ("postgres", lambda: bench_postgres(cfg, args.pg))):
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
