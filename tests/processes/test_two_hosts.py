"""Two hosts on one PostgreSQL server, each with a worker, and a network that fails between them
(tests/netns.py): a host cut off silently, for less than the lease and for more.

What a person running workers on two machines would see: every job run once while the network
holds; a cut shorter than the lease changes nothing; after a longer one the job is taken back
and run on the other host, the cut-off host's late result changes nothing, and its own copy of
the job was killed once its lease had passed (docs/RELIABILITY.md, "Connection loss" in the
README). Jobs write what they did to files this process reads; the database is read in-process.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from helpers import wait_for

# reap (conftest.py): kills whatever a test leaves running, even when it fails half-way.
pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("reap"), pytest.mark.alone]  # leases

BEAT = 0.25  # heartbeat_interval of these tests, seconds


def configure(url: str, **values: float) -> None:
    from queuectl_tui import settings
    from queuectl_tui.store import open_db

    open_db(url)
    for key, value in values.items():
        settings.set_value(key, value)


def enqueue(tmp_path, jobs: dict[str, str]) -> None:
    from queuectl_tui import engine, spec

    engine.enqueue(
        [spec.normalize({"id": job_id, "command": command}) for job_id, command in jobs.items()],
        cwd=str(tmp_path),
        env={"PATH": os.environ["PATH"]},
    )


def attempts(job_id: str) -> list[tuple]:
    """(number, outcome, host, error) of each attempt of the job."""
    from queuectl_tui import engine
    from queuectl_tui.store.models import Job

    job = Job.get(Job.id == job_id)
    return [(a.number, a.outcome, a.host, a.error) for a in engine.attempts_of(job)]


def job_state(job_id: str) -> str:
    from queuectl_tui.store.models import Job

    return Job.get(Job.id == job_id).state


def running_on(host, job_id: str):
    """The job's attempt once it runs on ``host`` with its process recorded."""
    from queuectl_tui.store.models import Attempt, Job

    job = Job.get(Job.id == job_id)
    return (
        Attempt.select()
        .where(
            Attempt.job == job.seq,
            Attempt.host == host.name,
            Attempt.outcome.is_null(),
            Attempt.pid.is_null(False),
        )
        .first()
    )


def workers_on(host) -> list:
    from queuectl_tui.store.models import Worker

    return list(Worker.select().where(Worker.host == host.name).order_by(Worker.id))


class Lateness(threading.Thread):
    """How late a worker's heartbeat looks to the others, sampled every 50 ms until stopped:
    ``worst`` (seconds) and ``last`` (its last heartbeat_at seen, while its row existed)."""

    def __init__(self, worker_id: int):
        super().__init__(daemon=True)
        self.worker_id, self.worst, self.last = worker_id, 0.0, None
        self.done = threading.Event()

    def run(self) -> None:
        from queuectl_tui.store.models import Worker, database

        try:
            while not self.done.wait(0.05):
                row = Worker.get_or_none(Worker.id == self.worker_id)
                if row is not None:
                    self.last = row.heartbeat_at
                    self.worst = max(self.worst, time.time() - row.heartbeat_at)
        finally:
            database.close()

    def stop(self) -> Lateness:
        self.done.set()
        self.join()
        return self


class Recovery(threading.Thread):
    """Recovery as any other host runs it (``queuectl-tui recover``), every 0.1 s until
    stopped: a job is taken back the moment its worker's lease has passed, where a worker's
    own recovery, when idle, comes within a second or two."""

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()

    def run(self) -> None:
        from queuectl_tui import engine
        from queuectl_tui.store.models import database

        try:
            while not self.done.wait(0.1):
                engine.recover_lost()
        finally:
            database.close()

    def stop(self) -> None:
        self.done.set()
        self.join()


def test_two_hosts_drain_one_queue_running_every_job_once(two_hosts, tmp_path):
    a, b = two_hosts.hosts
    runs = tmp_path / "runs"
    ids = [f"j{n:02}" for n in range(16)]
    configure(two_hosts.url)
    enqueue(tmp_path, {job_id: f"echo {job_id} >> {runs}; sleep 0.2" for job_id in ids})
    a.start_worker()
    b.start_worker()
    wait_for(
        lambda: all(job_state(j) == "completed" for j in ids),
        timeout=90,
        interval=0.2,
        message="every job completed",
    )
    assert sorted(runs.read_text().split()) == ids, a.log() + b.log()
    ran = {j: attempts(j) for j in ids}
    assert all(
        [(n, outcome) for n, outcome, _, _ in tries] == [(1, "completed")] for tries in ran.values()
    ), ran
    assert {tries[0][2] for tries in ran.values()} == {a.name, b.name}, ran


def test_a_cut_shorter_than_the_lease_changes_nothing(two_hosts, tmp_path):
    """Lease 5.9 s, host A cut off for 3.7 s while its job runs. Left to TCP's resends, which
    back off (0.2, 0.6, 1.4, 3.0, 6.2 s after a statement was sent), A's heartbeat stalled
    6.2 s: its job was taken back and ran on both hosts. Now it is renewed about a second
    after the network heals."""
    a, b = two_hosts.hosts
    runs = tmp_path / "runs"
    configure(two_hosts.url, lease=5.9, heartbeat_interval=0.1)
    a.start_worker()
    enqueue(tmp_path, {"job": f"echo start >> {runs}; sleep 8; echo end >> {runs}"})
    wait_for(lambda: running_on(a, "job"), timeout=30, message="the job running on A")
    b.start_worker()
    wait_for(lambda: workers_on(b), timeout=30, message="B's worker")
    (first,) = workers_on(a)
    lateness, recovery = Lateness(first.id), Recovery()
    lateness.start()
    recovery.start()
    try:
        a.cut()
        time.sleep(3.7)  # the outage itself: nothing to wait for
        a.heal()
        wait_for(
            lambda: job_state("job") != "processing",
            timeout=60,
            interval=0.1,
            message="the job's end",
        )
    finally:
        recovery.stop()
        lateness.stop()
    seen = f"A's heartbeat looked {lateness.worst:.1f}s late at worst\n{a.log()}{b.log()}"
    assert runs.read_text() == "start\nend\n", seen
    assert [(n, outcome, host) for n, outcome, host, _ in attempts("job")] == [
        (1, "completed", a.name)
    ], seen
    assert [w.id for w in workers_on(a)] == [first.id], seen  # never presumed lost


def test_a_cut_past_the_lease_is_recovered_and_the_stale_copy_is_killed(two_hosts, tmp_path):
    """Lease 3 s, host A cut off for 6 s while its job runs: host B takes the job back and
    runs it; A kills its own copy once its lease has passed without a heartbeat (the copy
    used to run on to its end), and its late result changes nothing."""
    a, b = two_hosts.hosts
    runs, lease = tmp_path / "runs", 3.0
    configure(two_hosts.url, lease=lease, heartbeat_interval=BEAT)
    a.start_worker()
    # Each copy of the job notes the time every 0.1 s in a file of its own ($$ differs).
    enqueue(
        tmp_path,
        {
            "job": f"echo start >> {runs}; i=0; while [ $i -lt 60 ]; do "
            f"date +%s.%N >> {tmp_path}/ticks.$$; sleep 0.1; i=$((i+1)); "
            f"done; echo end >> {runs}"
        },
    )
    wait_for(lambda: running_on(a, "job"), timeout=30, message="the job running on A")
    b.start_worker()
    wait_for(lambda: workers_on(b), timeout=30, message="B's worker")
    (first,) = workers_on(a)
    lateness = Lateness(first.id)
    lateness.start()
    try:
        a.cut()
        wait_for(
            lambda: running_on(b, "job"),
            timeout=30,
            interval=0.1,
            message="the job taken back and running on B",
        )
        time.sleep(2 * lease - 3)  # the rest of the 6 s outage
        a.heal()
        wait_for(
            lambda: job_state("job") == "completed",
            timeout=60,
            interval=0.1,
            message="the job completed on B",
        )
        wait_for(
            lambda: [w for w in workers_on(a) if w.id != first.id],
            timeout=30,
            message="A back under a new id",
        )
    finally:
        lateness.stop()
    seen = f"\n{a.log()}{b.log()}"
    assert runs.read_text() == "start\nstart\nend\n", seen  # A's copy never reached its end
    tries = attempts("job")
    assert [(n, outcome, host) for n, outcome, host, _ in tries] == [
        (1, "lost", a.name),
        (2, "completed", b.name),
    ], seen
    assert tries[0][3].startswith("worker lost"), tries  # recovery's record: A's was fenced off
    # A's copy stopped within the bound: once its lease had passed since its last heartbeat,
    # plus the time to notice and kill it (one sixth of the lease at most, then one tick).
    copies = sorted(
        (path.read_text().split() for path in tmp_path.glob("ticks.*")),
        key=lambda ticks: float(ticks[0]),
    )
    assert len(copies) == 2, copies
    stale_end, rerun_start = float(copies[0][-1]), float(copies[1][0])
    assert stale_end <= lateness.last + lease + lease / 6 + 0.5, (
        f"A's copy ran {stale_end - lateness.last:.2f}s past A's last heartbeat; B's copy "
        f"started {rerun_start - lateness.last:.2f}s after it" + seen
    )
