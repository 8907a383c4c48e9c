"""Execution metrics (queuectl_tui.metrics) on a history built with a fixed clock: exact
figures per queue and overall, windows, queue filters, the sample, and the CLI's faces. The
tests marked ``both_backends`` run on PostgreSQL too (its statements differ: metrics.py)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

import helpers
from helpers import cli_env, ok, user_error, wait_for
from queuectl_tui import engine, metrics, spec
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store import is_sqlite
from queuectl_tui.store.models import Attempt, AttemptMinute, FailedMinute, Job, database

T0 = 1_800_000_000.0
NOW = T0 + 600
HOUR = 3600.0


@pytest.fixture
def history(db, tmp_path):
    make_history(T0, tmp_path)
    return tmp_path


def make_history(T0: float, tmp_path) -> None:
    """Queue a: a1 ok, a2 fails once then succeeds, a3 dies; one run long before the window.
    Queue b: b1 ok, b4 failed (waiting out its backoff, due since T0+66), b2 due since
    T0+100, b3 scheduled far ahead. Waits and runs in seconds are chosen to be told apart."""

    def add(job_id, at, queue, **fields):
        raw = {"id": job_id, "command": "true", "queue": queue, **fields}
        return engine.enqueue([spec.normalize(raw, now=at)], cwd=str(tmp_path), env={}, now=at)[0]

    def run(worker, at, job_id, end, outcome="completed", error=None):
        job, attempt = engine.claim(worker, now=at)
        assert job.id == job_id
        engine.finish(
            job,
            attempt,
            outcome=outcome,
            exit_code=0 if outcome == "completed" else 1,
            error=error,
            now=end,
        )

    wa = engine.register_worker(["a"], now=T0 - 8000)
    wb = engine.register_worker(["b"], now=T0 - 8000)
    add("old1", T0 - 7200, "a")
    run(wa, T0 - 7199, "old1", T0 - 7000)
    for job_id, retries in (("a1", 3), ("a2", 1), ("a3", 0)):
        add(job_id, T0, "a", max_retries=retries, backoff_base=2)
    run(wa, T0 + 10, "a1", T0 + 12)  # wait 10, run 2
    run(wa, T0 + 20, "a2", T0 + 25, "failed", "exit code 1")  # wait 20, run 5
    run(wa, T0 + 30, "a3", T0 + 34, "failed", "exit code 3")  # wait 30, run 4: dead
    run(wa, T0 + 40, "a2", T0 + 41)  # due T0+27: wait 13, run 1
    add("b1", T0 + 50, "b")
    run(wb, T0 + 50, "b1", T0 + 58)  # wait 0, run 8
    add("b4", T0 + 60, "b", backoff_base=2)
    run(wb, T0 + 61, "b4", T0 + 64, "failed", "exit code 1")  # wait 1, run 3: due T0+66
    add("b2", T0 + 100, "b")
    add("b3", T0 + 100, "b", run_at=spec.iso(T0 + 10_000))


def times(stats: dict) -> dict:
    """Wait or run figures without their count and sum."""
    return {k: v for k, v in stats.items() if k not in ("count", "sum")}


def figures(stats, name=None):
    return stats["overall"] if name is None else stats["queues"][name]


@pytest.mark.both_backends
def test_exact_figures_per_queue_and_overall(history):
    stats = metrics.execution_stats(NOW - HOUR, None, NOW)
    assert stats["sampled_every"] == 1 and sorted(stats["queues"]) == ["a", "b"]
    a = figures(stats, "a")
    assert (a["attempts"], a["completed"], a["failed_attempts"], a["dead"]) == (4, 2, 2, 1)
    assert a["throughput_per_min"] == pytest.approx(2 / 60)
    assert a["success_rate"] == 0.5 and a["retries_per_job"] == pytest.approx(1 / 3)
    assert times(a["wait"]) == {"p50": 13, "p95": 30, "p99": 30, "max": 30, "mean": 18.25}
    assert times(a["run"]) == {"p50": 2, "p95": 5, "p99": 5, "max": 5, "mean": 3}
    assert (a["wait"]["count"], a["wait"]["sum"], a["run"]["sum"]) == (4, 73, 12)
    assert a["oldest_due"] is None
    assert a["top_errors"] == [{"error": "exit code 3", "count": 1}]
    b = figures(stats, "b")
    assert (b["attempts"], b["completed"], b["failed_attempts"], b["dead"]) == (2, 1, 1, 0)
    assert b["retries_per_job"] == 0 and b["success_rate"] == 0.5
    assert times(b["wait"]) == {"p50": 0, "p95": 1, "p99": 1, "max": 1, "mean": 0.5}
    assert times(b["run"]) == {"p50": 3, "p95": 8, "p99": 8, "max": 8, "mean": 5.5}
    assert b["oldest_due"] == {"id": "b4", "queue": "b", "due_at": T0 + 66, "waited": 534}
    every = figures(stats)
    assert (every["attempts"], every["completed"], every["failed_attempts"], every["dead"]) == (
        6,
        3,
        3,
        1,
    )
    assert every["throughput_per_min"] == pytest.approx(0.05)
    assert every["retries_per_job"] == pytest.approx(0.2)
    assert times(every["wait"]) == {
        "p50": 10,
        "p95": 30,
        "p99": 30,
        "max": 30,
        "mean": pytest.approx(74 / 6),
    }
    assert times(every["run"]) == {
        "p50": 3,
        "p95": 8,
        "p99": 8,
        "max": 8,
        "mean": pytest.approx(23 / 6),
    }
    assert every["oldest_due"]["id"] == "b4"
    assert every["top_errors"] == [
        {"error": "exit code 1", "count": 1},
        {"error": "exit code 3", "count": 1},
    ]


@pytest.mark.both_backends
def test_window_bounds_and_queue_filter(history):
    later = metrics.execution_stats(T0 + 30, None, NOW)  # a3, a2's rerun, b1, b4
    assert figures(later)["attempts"] == 4 and figures(later, "a")["attempts"] == 2
    assert figures(later, "a")["wait"]["p50"] == 13  # [13, 30]
    long_ago = metrics.execution_stats(T0 - 8000, None, T0 - 6000)  # only old1
    assert figures(long_ago)["completed"] == 1 and figures(long_ago)["run"]["max"] == 199
    assert figures(long_ago)["oldest_due"] is None  # nothing was due at T0-6000
    only_b = metrics.execution_stats(NOW - HOUR, ["b"], NOW)
    assert list(only_b["queues"]) == ["b"]
    assert figures(only_b) == {**figures(only_b, "b")}
    unknown = metrics.execution_stats(NOW - HOUR, ["nope"], NOW)
    assert figures(unknown)["attempts"] == 0 and figures(unknown)["success_rate"] is None


@pytest.mark.both_backends
def test_one_queue_reads_no_job_rows_and_gives_the_same_figures(history):
    before = metrics.execution_stats(NOW - HOUR, None, NOW)
    engine.delete(["b1", "b2", "b3", "b4"])
    after = metrics.execution_stats(NOW - HOUR, None, NOW)
    assert list(after["queues"]) == ["a"]
    assert figures(after, "a") == figures(before, "a") == figures(after)


@pytest.mark.both_backends
def test_a_big_window_takes_percentiles_from_an_even_sample(history, monkeypatch):
    monkeypatch.setattr(metrics, "SAMPLE_MAX", 2)
    stats = metrics.execution_stats(NOW - HOUR, None, NOW)
    assert stats["sampled_every"] == 3  # 6 attempts, at most 2 per sample
    every = figures(stats)
    assert every["attempts"] == 6 and every["wait"]["max"] == 30  # counts and maxima stay exact
    assert every["wait"]["p50"] in (0, 1, 10, 13, 20, 30)


@pytest.mark.both_backends
def test_timeline_cuts_the_window_in_slices(history):
    series = metrics.timeline(T0, T0 + 100, buckets=10)
    assert [s["attempts"] for s in series] == [0, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert (series[1]["wait_max"], series[1]["run_max"]) == (10, 2)  # a1 finished at T0+12
    assert series[0]["wait_mean"] is None
    edge = metrics.timeline(T0 + 4, T0 + 64, buckets=3)  # b4 finished at the window's end
    assert [s["attempts"] for s in edge] == [1, 3, 2] and edge[2]["run_max"] == 8
    only_b = metrics.timeline(T0, T0 + 100, buckets=10, queues=["b"])  # b1 at T0+58, b4 at T0+64
    assert [s["attempts"] for s in only_b] == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0]


# --- the rollups: whole minutes from attempt_minute / job_failed_minute, edges from the rows -----


def full_scan(since: float, now: float) -> dict:
    """The figures execution_stats gives, computed from every attempt and job by hand. An
    attempt counts in the queue it ran in; a failed or dead job in the queue it is in now."""
    out: dict = {}
    for a in Attempt.select().where(Attempt.finished_at > since, Attempt.finished_at <= now):
        for key in (a.queue, None):
            fig = out.setdefault(
                key,
                {
                    "attempts": 0,
                    "completed": 0,
                    "failed_attempts": 0,
                    "reruns": 0,
                    "waits": [],
                    "runs": [],
                    "dead": 0,
                    "errors": {},
                },
            )
            fig["attempts"] += 1
            fig["completed"] += a.outcome == "completed"
            fig["failed_attempts"] += a.outcome in ("failed", "timeout", "lost")
            fig["reruns"] += a.number > 1
            if a.due_at is not None:
                fig["waits"].append(a.started_at - a.due_at)
            fig["runs"].append(a.duration)
    for job in Job.select().where(
        Job.state.in_(["failed", "dead"]), Job.finished_at > since, Job.finished_at <= now
    ):
        for key in (job.queue, None):
            fig = out.setdefault(
                key,
                {
                    "attempts": 0,
                    "completed": 0,
                    "failed_attempts": 0,
                    "reruns": 0,
                    "waits": [],
                    "runs": [],
                    "dead": 0,
                    "errors": {},
                },
            )
            fig["dead"] += job.state == "dead"
            error = job.last_error or "(no error recorded)"
            fig["errors"][error] = fig["errors"].get(error, 0) + 1
    return out


def assert_agrees(since: float, now: float) -> None:
    stats = metrics.execution_stats(since, None, now)
    expected = full_scan(since, now)
    for key in [None, *stats["queues"]]:
        got, want = figures(stats, key), expected.get(key)
        where = (since - T0, now - T0, key)
        if want is None:
            assert got["attempts"] == 0 and got["dead"] == 0 and got["top_errors"] == [], where
            continue
        assert (got["attempts"], got["completed"], got["failed_attempts"], got["dead"]) == (
            want["attempts"],
            want["completed"],
            want["failed_attempts"],
            want["dead"],
        ), where
        firsts = want["attempts"] - want["reruns"]
        assert got["retries_per_job"] == (want["reruns"] / firsts if firsts else None), where
        for name, values in (("wait", want["waits"]), ("run", want["runs"])):
            assert got[name]["count"] == len(values), where
            assert got[name]["max"] == (max(values) if values else None), where
            assert got[name]["sum"] == pytest.approx(sum(values)), where
            ordered = sorted(values)
            assert got[name]["p50"] == metrics.percentile(ordered, 50), where
        top = sorted(want["errors"].items(), key=lambda e: (-e[1], e[0]))[: metrics.TOP_ERRORS]
        assert got["top_errors"] == [{"error": e, "count": n} for e, n in top], where


def assert_rollups_match_rows() -> None:
    """attempt_minute and job_failed_minute hold what a GROUP BY of the rows gives (a dirty
    row's maximum may be stale: its minute is read from the attempts)."""
    groups = {}
    for a in Attempt.select().where(Attempt.finished_at.is_null(False)):
        g = groups.setdefault(
            (metrics.minute_of(a.finished_at), a.queue), [0, 0, 0, 0, 0, 0.0, None, 0, 0.0, None]
        )
        wait = None if a.due_at is None else a.started_at - a.due_at
        g[0] += 1
        g[1] += a.outcome == "completed"
        g[2] += a.outcome in ("failed", "timeout", "lost")
        g[3] += a.number > 1
        if wait is not None:
            g[4] += 1
            g[5] += wait
            g[6] = wait if g[6] is None else max(g[6], wait)
        if a.duration is not None:
            g[7] += 1
            g[8] += a.duration
            g[9] = a.duration if g[9] is None else max(g[9], a.duration)
    rows = _summed_minutes()
    assert sorted(rows) == sorted(groups)
    for key, g in groups.items():
        r = rows[key]
        assert [r.attempts, r.completed, r.failed, r.reruns, r.wait_n, r.run_n] == g[:5] + [g[7]], (
            key
        )
        assert (r.wait_sum, r.run_sum) == (pytest.approx(g[5]), pytest.approx(g[8])), key
        if not r.dirty:
            assert (r.wait_max, r.run_max) == (g[6], g[9]), key
    failed = {}
    for job in Job.select().where(
        Job.state.in_(["failed", "dead"]), Job.finished_at.is_null(False)
    ):
        key = (metrics.minute_of(job.finished_at), job.queue, job.state, job.last_error or "")
        failed[key] = failed.get(key, 0) + 1
    summed: dict = {}
    for r in FailedMinute.select():  # PostgreSQL: a row per writing session, summed
        key = (r.minute, r.queue, r.state, r.error)
        summed[key] = summed.get(key, 0) + r.n
    assert {key: n for key, n in summed.items() if n} == failed


def _summed_minutes() -> dict:
    """attempt_minute per (minute, queue) as readers see it: PostgreSQL keeps a row per writing
    session (store/pgsql.py), summed (maxima: the greatest; dirty: any); keys at zero left out."""
    rows: dict = {}
    for r in AttemptMinute.select().order_by(AttemptMinute.minute):
        key = (r.minute, r.queue)
        if key not in rows:
            rows[key] = r
            continue
        s = rows[key]
        for name in (
            "attempts",
            "completed",
            "failed",
            "reruns",
            "wait_n",
            "run_n",
            "wait_sum",
            "run_sum",
        ):
            setattr(s, name, getattr(s, name) + getattr(r, name))
        for name in ("wait_max", "run_max"):
            found = [v for v in (getattr(s, name), getattr(r, name)) if v is not None]
            setattr(s, name, max(found) if found else None)
        s.dirty = max(s.dirty, r.dirty)
    return {key: r for key, r in rows.items() if r.attempts}


@pytest.mark.both_backends
def test_a_window_edge_inside_a_minute_counts_exactly(db, tmp_path):
    """Finishes on and around minute boundaries (runs of 1 s, 1.125 s, ... 1.75 s): the whole
    minutes come from the rollup, the partial ones at the edges from the attempts, and none is
    counted twice or missed."""
    worker = engine.register_worker(["a"], now=T0 - 10)
    ends = [T0 + 59.75, T0 + 60, T0 + 60.25, T0 + 119.999, T0 + 120, T0 + 180, T0 + 240.5]
    for i, end in enumerate(ends):
        engine.enqueue(
            [spec.normalize({"id": f"e{i}", "command": "true", "queue": "a"}, now=end - 5)],
            cwd=str(tmp_path),
            env={},
            now=end - 5,
        )
        job, attempt = engine.claim(worker, now=end - 1 - i / 8)
        engine.finish(job, attempt, outcome="completed", exit_code=0, now=end)
    for since, now, count, run_max in (
        (T0 + 60, T0 + 240.5, 5, 1.75),  # T0+60 itself is out, T0+240.5 in
        (T0 + 59.75, T0 + 180, 5, 1.625),  # from T0+60 to T0+180, both edges in
        (T0 + 59.7, T0 + 179.99, 5, 1.5),  # T0+59.75 in, T0+180 out
        (T0, T0 + 60, 2, 1.125),  # shorter than two minutes: all scanned
        (T0 - 600, T0 + 3600, 7, 1.75),  # every minute whole but the two edges
        (T0 + 60.25, T0 + 60.26, 0, None),
    ):
        stats = metrics.execution_stats(since, None, now)
        assert (figures(stats)["attempts"], figures(stats)["run"]["max"]) == (count, run_max), (
            since - T0,
            now - T0,
        )
        assert figures(stats)["completed"] == count
        assert_agrees(since, now)


@pytest.mark.both_backends
@pytest.mark.parametrize("seed", [1, 2])
def test_the_rollups_agree_with_a_full_scan_of_a_random_history(db, tmp_path, seed):
    """Queues, outcomes, retries, deletes and edited attempts on a fixed clock: every window's
    figures equal those of a scan of every row, and the rollup rows equal a GROUP BY."""
    rng = random.Random(seed)
    queues = ["a", "b", "c"]
    workers = {q: engine.register_worker([q], now=T0 - 10) for q in queues}
    t = T0
    for i in range(90):
        t += rng.uniform(0, 20)
        raw = {
            "id": f"j{i}",
            "command": "true",
            "queue": rng.choice(queues),
            "max_retries": rng.randint(0, 2),
            "backoff_base": 1.5,
        }
        engine.enqueue([spec.normalize(raw, now=t)], cwd=str(tmp_path), env={}, now=t)
        for _ in range(rng.randint(0, 2)):
            claimed = engine.claim(workers[rng.choice(queues)], now=t)
            if claimed is None:
                continue
            job, attempt = claimed
            t += rng.choice([0.0, 0.5, rng.uniform(0, 150)])
            outcome = rng.choice(
                ["completed"] * 4 + ["failed", "timeout", "lost", "interrupted", "cancelled"]
            )
            error = (
                None if outcome == "completed" else rng.choice(["exit code 1", "exit code 2", None])
            )
            engine.finish(
                job,
                attempt,
                outcome=outcome,
                exit_code=0 if outcome == "completed" else 1,
                error=error,
                now=t,
            )
    end = t + 1
    assert_rollups_match_rows()

    def windows():
        for _ in range(25):
            since = T0 + rng.uniform(-100, end - T0)
            yield since, since + rng.choice([30, 90, 600, 3600, rng.uniform(0, end - T0)])
        for k in range(0, int((end - T0) / 60), 7):  # edges exactly on a minute
            yield T0 + 60 * k, T0 + 60 * (k + 3)
        yield T0 - 1, end

    for since, now in windows():
        assert_agrees(since, now)
    # A failed job moved to another queue: its failure moves, its attempts stay where they ran.
    moved = [j.id for j in Job.select().where(Job.state == "failed")][:3]
    for job_id in moved:
        engine.edit(job_id, {"queue": "d"}, now=end)
    assert moved
    assert_rollups_match_rows()
    moved_stats = metrics.execution_stats(T0 - 1, None, end)
    assert figures(moved_stats, "d")["attempts"] == 0 and figures(moved_stats, "d")["top_errors"]
    # Deletes take attempts out (a maximum that goes marks its row dirty); edits move them.
    doomed = [j.id for j in Job.select().where(Job.state != "processing") if rng.random() < 0.3]
    engine.delete(doomed)
    for sql in (
        "UPDATE attempt SET duration = duration + 0.5 WHERE seq % 4 = 0",
        "UPDATE attempt SET finished_at = finished_at + 45 WHERE seq % 5 = 0",
        "UPDATE job SET last_error = 'edited' WHERE seq % 3 = 0",
    ):
        database.execute_sql(sql if is_sqlite() else sql.replace("%", "%%"))  # psycopg2's markers
    assert_rollups_match_rows()
    assert AttemptMinute.select().where(AttemptMinute.dirty == 1).exists()
    for since, now in windows():
        assert_agrees(since, now)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("2d", 172800),
        ("1.5h", 5400),
        ("1w", 604800),
        ("2h30m", 9000),
        ("10", 10),
    ],
)
def test_parse_duration(text, seconds):
    assert metrics.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "5x", "-1h", "0m", "h", "1e999h"])
def test_parse_duration_refuses(text):
    with pytest.raises(InvalidInput):
        metrics.parse_duration(text)


# --- the CLI: stats, stats --prometheus, metrics serve ------------------------------------------


@pytest.fixture
def recent(db, tmp_path):
    """The same history, ending 10 to 20 minutes before the wall clock (the CLI reads it)."""
    start = time.time() - 1800
    make_history(start, tmp_path)
    return start


@pytest.mark.both_backends
def test_stats_json_text_window_and_queue(recent, cli, home):
    data = ok(cli("stats", "--json")).json()
    assert (
        data["overall"]["completed"],
        data["overall"]["failed_attempts"],
        data["overall"]["dead"],
    ) == (3, 3, 1)
    assert data["overall"]["wait"]["p50"] == pytest.approx(10) and data["sampled_every"] == 1
    assert data["overall"]["oldest_due"]["id"] == "b4" and data["since"].endswith("Z")
    assert ok(cli("stats", "--json", "--since", "5m")).json()["overall"]["attempts"] == 0
    only_b = ok(cli("stats", "--json", "--queue", "b", "--since", "2h")).json()
    assert list(only_b["queues"]) == ["b"] and only_b["overall"]["completed"] == 1
    text = ok(cli("stats", env=cli_env(home, COLUMNS="80"))).out
    assert "all queues\t3\t3\t1\t0.05\t50.0%\t0.20\n" in text  # piped: tab-separated
    assert "oldest due: b4 in queue b" in text and "exit code 3" in text
    assert max(map(len, text.splitlines())) <= 80


@pytest.mark.parametrize("args", [["--since", "5x"], ["--since", "0h"], ["--prometheus", "--json"]])
def test_stats_refuses_bad_input(cli, args):
    assert user_error(cli("stats", *args), 2)


@pytest.mark.both_backends
def test_stats_prometheus_is_valid_exposition(recent, cli):
    parser = pytest.importorskip("prometheus_client.parser")
    families = {
        f.name: f
        for f in parser.text_string_to_metric_families(ok(cli("stats", "--prometheus")).out)
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert families["queuectl_jobs"].type == "gauge"
    assert samples[("queuectl_jobs", (("queue", "a"), ("state", "completed")))] == 3  # old1 too
    assert samples[("queuectl_window_completed", (("queue", "a"),))] == 2
    assert samples[("queuectl_window_dead", (("queue", "a"),))] == 1
    assert families["queuectl_attempts"].type == "counter"
    assert samples[("queuectl_attempts_total", (("outcome", "failed"),))] == 3
    assert families["queuectl_attempt_wait_seconds"].type == "summary"
    assert samples[
        ("queuectl_attempt_wait_seconds", (("quantile", "0.5"), ("queue", "a")))
    ] == pytest.approx(13)
    assert samples[("queuectl_attempt_run_seconds_sum", (("queue", "b"),))] == pytest.approx(11)
    assert samples[("queuectl_attempt_run_seconds_count", (("queue", "b"),))] == 2
    assert samples[("queuectl_oldest_due_seconds", (("queue", "b"),))] > 1000
    assert ("queuectl_workers", (("status", "idle"),)) in samples


@pytest.mark.parametrize("args", [["stats", "--prometheus"], ["metrics", "serve", "--port", "0"]])
def test_prometheus_without_the_extra_is_one_line(home, args):
    code = (
        "import sys; sys.modules['prometheus_client'] = None; from queuectl_tui.cli import main; "
        f"main({['--db', str(home / 'queuectl.db'), *args]!r})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env(home)
    )
    from helpers import Result

    line = user_error(Result(proc.returncode, proc.stdout, proc.stderr), 1)
    assert "pip install 'queuectl-tui[metrics]'" in line


@pytest.mark.both_backends
def test_metrics_serve_answers_a_scrape_on_loopback(recent, home):
    parser = pytest.importorskip("prometheus_client.parser")
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "metrics", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(home),
    )
    try:
        line = proc.stdout.readline()  # the first line says where; the server is up by then
        assert line.startswith("serving metrics on http://127.0.0.1:"), (
            line,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        url = line.split()[-1]
        for _ in range(2):  # two scrapes: each reads the database anew
            with urllib.request.urlopen(url, timeout=30) as response:
                body = response.read().decode()
            values = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in parser.text_string_to_metric_families(body)
                for s in f.samples
            }
            assert values[("queuectl_window_completed", (("queue", "b"),))] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        _reap(proc)


def _reap(proc) -> None:
    """Whatever happened, the server is gone and its pipes closed."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def _scrape(url: str) -> tuple[int, dict]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read().decode()
    return response.status, {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
    }


@pytest.mark.both_backends
def test_metrics_serve_answers_up_0_while_the_database_is_away_and_recovers(recent, home):
    """A scrape that cannot read the database gets queuectl_up 0 and no other figure (HTTP
    200, as exporters answer for a backend that is down), the server says so once on stderr
    and lives on; once the database is back, the next scrape has every figure again. SQLite:
    the file replaced by one that is not a database; PostgreSQL: the server behind a proxy
    that goes away."""
    pytest.importorskip("prometheus_client")
    from pg_support import TcpProxy

    url, proxy = helpers.DB_URL, None
    if url is not None:
        if "@127.0.0.1:5432/" not in url:
            pytest.skip("QUEUECTL_TEST_PG is not on 127.0.0.1:5432")
        proxy = TcpProxy(("127.0.0.1", 5432)).start()
        url = url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    db_file = home / "queuectl.db"
    env = cli_env(home, **({"QUEUECTL_DB": url} if url else {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "metrics", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        endpoint = proc.stdout.readline().split()[-1]
        status, values = _scrape(endpoint)
        assert status == 200 and values[("queuectl_up", ())] == 1
        assert values[("queuectl_window_completed", (("queue", "b"),))] == 1
        if proxy:
            proxy.stop()
        else:
            for suffix in ("", "-wal", "-shm"):  # the file with its WAL, all put aside
                if (home / f"queuectl.db{suffix}").exists():
                    (home / f"queuectl.db{suffix}").rename(home / f"away.db{suffix}")
            db_file.write_bytes(b"not a database" * 512)
        for _ in range(2):
            status, values = _scrape(endpoint)
            assert status == 200 and values == {("queuectl_up", ()): 0}
        if proxy:
            proxy.start()
        else:
            for suffix in ("-wal", "-shm", ""):
                if (home / f"away.db{suffix}").exists():
                    (home / f"away.db{suffix}").replace(home / f"queuectl.db{suffix}")
        status, values = _scrape(endpoint)
        assert status == 200 and values[("queuectl_up", ())] == 1
        assert values[("queuectl_window_completed", (("queue", "b"),))] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        lines = proc.stderr.read().splitlines()
        assert len(lines) == 2 and "Traceback" not in "\n".join(lines), lines
        assert lines[0].startswith("metrics: ") and lines[0].endswith("answering queuectl_up 0")
        assert "readable again" in lines[1]
    finally:
        _reap(proc)
        if proxy:
            proxy.stop()


def test_metrics_serve_answers_head_and_lets_no_slow_client_hold_a_thread(db, monkeypatch):
    """HEAD gets GET's status and headers without the body (not 405); a client that connects
    and says nothing, or trickles its request a byte at a time, is cut off (each would hold a
    server thread for as long as it liked)."""
    pytest.importorskip("prometheus_client")
    import http.client
    import socket

    from queuectl_tui import exporter

    monkeypatch.setattr(exporter, "CLIENT_TIMEOUT", 0.5, raising=False)
    monkeypatch.setattr(exporter, "CONNECTION_LIMIT", 2.0, raising=False)
    server = exporter.serve("127.0.0.1", 0)
    port = server.server_address[1]
    try:
        answers = {}
        for method in ("GET", "HEAD"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, "/metrics")
            response = conn.getresponse()
            answers[method] = (
                response.status,
                response.getheader("Content-Type"),
                response.getheader("Content-Length"),
                response.read(),
            )
            conn.close()
        assert answers["HEAD"][:2] == answers["GET"][:2] and answers["GET"][0] == 200
        assert int(answers["HEAD"][2]) > 0 and answers["HEAD"][3] == b""
        assert b"queuectl_up 1.0" in answers["GET"][3]

        idle = socket.create_connection(("127.0.0.1", port), timeout=30)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=0.2)
        try:

            def cut_off() -> bool:
                try:
                    trickle.send(b"G")  # more often than CLIENT_TIMEOUT: only the deadline ends it
                    return trickle.recv(1) == b""
                except TimeoutError:
                    return False
                except OSError:
                    return True

            wait_for(cut_off, timeout=30, interval=0.1, message="the trickling client cut off")
            assert idle.recv(1) == b""  # closed by the server well before this socket's 30 s
        finally:
            idle.close()
            trickle.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.both_backends
def test_oldest_due_among_jobs_due_at_once_is_the_first_enqueued(db, tmp_path):
    """Jobs enqueued together are due at the same time: the oldest is the first of them, also
    after the first was edited (PostgreSQL then keeps it elsewhere in the table and index)."""
    jobs = [spec.normalize({"id": f"t{i}", "command": "true"}, now=T0) for i in range(3)]
    engine.enqueue(jobs, cwd=str(tmp_path), env={}, now=T0)
    engine.edit("t0", {"priority": 5}, now=T0)
    engine.edit("t0", {"priority": 0}, now=T0)
    assert figures(metrics.execution_stats(T0, None, NOW))["oldest_due"]["id"] == "t0"
