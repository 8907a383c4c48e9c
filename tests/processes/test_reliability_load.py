"""Load and chaos through bench/stress.py: nothing lost, nothing run twice unless its worker died.

Sized by QUEUECTL_STRESS_SCALE (see helpers.SCALE): 1.0 is the full load of 4
producers x 2,000 jobs with 4 workers. The same script, run by hand, produced the figures in
docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pg_support import drop_schema, fresh_schema

from helpers import SCALE, STRESS

# reap (conftest.py): kills whatever a test leaves running, even when it fails half-way.
pytestmark = [pytest.mark.usefixtures("reap"), pytest.mark.both_backends]

PRODUCERS, WORKERS = 4, 4
PER_PRODUCER = max(25, round(2000 * SCALE))
#: On PostgreSQL a quarter of that (every commit there is a round trip to the server): the same
#: races at a size that keeps CI's run within its time. The DLQ variant of the chaos test runs on
#: SQLite alone (the code paths it adds are the backend's same finish and recovery).
PER_PRODUCER_PG = max(25, PER_PRODUCER // 4)


@pytest.fixture
def workdir(tmp_path, backend):
    """The run's directory; on PostgreSQL, its database is a fresh schema (``workdir.url``)."""
    path = tmp_path / "stress"
    if backend != "postgres":
        yield path
        return
    schema, url = fresh_schema()
    _urls[path] = url
    try:
        yield path
    finally:
        drop_schema(schema)


_urls: dict = {}


def per_producer(workdir) -> int:
    return PER_PRODUCER_PG if workdir in _urls else PER_PRODUCER


def stress(workdir, *extra: str) -> dict:
    url = ["--db-url", _urls[workdir]] if workdir in _urls else []
    proc = subprocess.run(
        [
            sys.executable,
            str(STRESS),
            "--json",
            "--producers",
            str(PRODUCERS),
            "--workers",
            str(WORKERS),
            "--jobs-per-producer",
            str(per_producer(workdir)),
            "--deadline",
            "900",
            "--dir",
            str(workdir),
            *url,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_concurrent_producers_and_workers_run_every_job_exactly_once(workdir):
    r = stress(workdir)
    jobs = PRODUCERS * per_producer(workdir)
    figures = json.dumps(r)
    assert r["accepted"] == jobs and r["producer_errors"] == [], figures
    assert (r["lost"], r["duplicated"], r["stuck"], r["overrun"]) == (0, 0, 0, 0), figures
    assert r["completed"] == jobs and r["runs_recorded"] == jobs, figures
    assert r["status"] == {
        "pending": 0,
        "processing": 0,
        "completed": jobs,
        "failed": 0,
        "dead": 0,
    }, figures
    assert r["status_matches"] and r["leftover_processes"] == [] and r["worker_errors"] == 0, (
        figures
    )
    assert r["ok"], figures


@pytest.mark.parametrize(
    "max_retries",
    [3, pytest.param(0, marks=pytest.mark.sqlite_only)],
    ids=["lost-jobs-retried", "lost-jobs-to-dlq"],
)
def test_chaos_loses_nothing_and_reruns_only_interrupted_jobs(workdir, max_retries):
    jobs = PRODUCERS * per_producer(workdir)
    # At most ~50 kills whatever the machine's speed: on a loaded machine a kill every 0.3 s
    # alone made the run slower the slower it was (each kill starts a new worker).
    pace = str(max(5, jobs // 50))
    r = stress(
        workdir,
        "--chaos",
        "--kill-interval",
        "0.3",
        "--kill-every-jobs",
        pace,
        "--max-retries",
        str(max_retries),
        # A job of a millisecond is running when a kill comes about 2 % of the time: 35 kills
        # once found none (a job's log file made before it ran had made each job longer).
        "--job-seconds",
        "0.02",
    )
    figures = json.dumps(r)
    assert r["workers_killed"] > 0 and r["jobs_interrupted"] > 0, figures  # the chaos happened
    assert r["accepted"] == jobs and r["producer_errors"] == [], figures
    # Every job completed, or is in the DLQ with a "worker lost" attempt; none lost or stuck.
    assert (r["lost"], r["stuck"]) == (0, 0), figures
    assert r["completed"] + r["dead_worker_lost"] == jobs and r["dead"] == r["dead_worker_lost"], (
        figures
    )
    # A job never interrupted ran exactly once; none ran more often than it was attempted.
    assert (r["duplicated_uninterrupted"], r["overrun"]) == (0, 0), figures
    assert r["status_matches"] and r["leftover_processes"] == [] and r["worker_errors"] == 0, (
        figures
    )
    if max_retries == 0:  # every interrupted job was accounted for in the DLQ, none rerun
        assert r["dead_worker_lost"] == r["jobs_interrupted"] and r["duplicated"] == 0, figures
    assert r["ok"], figures
