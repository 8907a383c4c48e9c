"""Job counts per state (status, stats, the console's counts) come from ``job_count``, which
triggers keep exact through every way a job is added, changes state or goes; reading them
costs the same at any number of jobs."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest

from helpers import T0, dead_pid, ok, started
from queuectl_tui import engine, spec
from queuectl_tui.errors import QueueError
from queuectl_tui.store import close_db, open_db
from queuectl_tui.store.models import STATES, database
from queuectl_tui.tui import data


def grouped() -> dict[str, int]:
    """The counts the slow way: every job row, grouped."""
    result = {state: 0 for state in STATES}
    for state, count in database.execute_sql("SELECT state, count(*) FROM job GROUP BY state"):
        result[state] = count
    return result


def counted(**expected: int) -> dict[str, int]:
    """engine.counts() equals a GROUP BY over the rows and these values (others: 0)."""
    counts = engine.counts()
    assert counts == grouped()
    assert counts == {state: expected.get(state, 0) for state in STATES}
    assert engine.count_jobs() == sum(counts.values())
    assert all(engine.count_jobs(state=state) == counts[state] for state in STATES)
    return counts


@pytest.mark.both_backends
@pytest.mark.parametrize(
    "outcome, max_retries, final",
    [
        ("completed", 1, "completed"),
        ("failed", 1, "failed"),
        ("failed", 0, "dead"),
        ("timeout", 1, "failed"),
        ("lost", 1, "failed"),
        ("interrupted", 1, "pending"),
        ("cancelled", 1, "dead"),
    ],
)
def test_counts_follow_enqueue_claim_and_every_finish(add, worker, outcome, max_retries, final):
    add("j", max_retries=max_retries)
    add("other")
    counted(pending=2)
    claimed = engine.claim(worker, now=T0)
    counted(pending=1, processing=1)
    assert engine.finish(*claimed, outcome=outcome, now=T0 + 1) == final
    expected = {"pending": 1}
    expected[final] = expected.get(final, 0) + 1
    counted(**expected)


@pytest.mark.both_backends
def test_counts_follow_retry_dlq_retry_cancel_delete_and_clear(add, worker):
    for name in "abcdef":
        add(name, max_retries=0)
    for _ in range(3):
        engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    counted(pending=3, dead=3)
    engine.cancel("d", now=T0)
    counted(pending=2, dead=4)
    engine.dlq_retry(["a"], now=T0)
    counted(pending=3, dead=3)
    engine.retry("b", now=T0)  # a dead job comes back through the DLQ
    counted(pending=4, dead=2)
    claimed = engine.claim(worker, now=T0)
    engine.finish(*claimed, outcome="failed", now=T0)  # max_retries 0: dead again
    counted(pending=3, dead=3)
    engine.dlq_retry(all_dead=True, now=T0)
    counted(pending=6)
    claimed = engine.claim(worker, now=T0)
    engine.cancel(claimed[0].id, now=T0)  # running: only asked, the worker records it
    counted(pending=5, processing=1)
    engine.finish(*claimed, outcome="cancelled", now=T0)
    counted(pending=5, dead=1)
    with pytest.raises(QueueError):  # all or nothing: a refused cancel_many changes no count
        engine.cancel_many(["e", claimed[0].id], now=T0)
    counted(pending=5, dead=1)
    assert engine.delete(["e", "f"]) == 2
    counted(pending=3, dead=1)
    assert engine.clear(["dead"]) == 1
    counted(pending=3)
    assert engine.clear() == 3
    counted()


@pytest.mark.both_backends
def test_a_failed_job_retried_keeps_its_count(add, worker):
    add("j", max_retries=2)
    engine.finish(*engine.claim(worker, now=T0), outcome="failed", now=T0)
    counted(failed=1)
    engine.retry("j", now=T0 + 1)  # due now, still failed until claimed
    counted(failed=1)
    engine.cancel("j", now=T0 + 1)
    counted(dead=1)


@pytest.mark.both_backends
def test_counts_follow_recovery_of_a_lost_worker(add, db):
    gone = engine.register_worker(pid=dead_pid(), now=T0)
    for name in ("ran", "never-started", "cancelled"):
        add(name)
    started(engine.claim(gone, now=T0))
    engine.claim(gone, now=T0)
    engine.cancel(engine.claim(gone, now=T0)[0].id, now=T0)
    counted(processing=3)
    assert sorted(engine.recover_lost(now=T0 + 1)) == ["cancelled", "never-started", "ran"]
    counted(pending=1, failed=1, dead=1)


@pytest.mark.both_backends
def test_a_bulk_enqueue_counts_every_line_or_none(cli, db, home, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "".join(json.dumps({"command": "true", "id": f"j{i}"}) + "\n" for i in range(2000))
    )
    ok(cli("enqueue", "-f", str(jobs)))
    assert ok(cli("status", "--json")).json()["jobs"] == {
        **dict.fromkeys(STATES, 0),
        "pending": 2000,
    }
    clash = tmp_path / "clash.jsonl"
    clash.write_text('{"command": "true"}\n{"command": "true", "id": "j7"}\n')
    assert cli("enqueue", "-f", str(clash)).code != 0
    counted(pending=2000)


@pytest.mark.both_backends
def test_status_counts_equal_the_rows_after_a_random_mix_of_operations(cli, db, home, tmp_path):
    rng = random.Random(20240607)
    workers = [engine.register_worker(now=T0), engine.register_worker(pid=dead_pid(), now=T0)]
    held = []
    for step in range(300):
        now = T0 + step
        op = rng.choice(
            [
                "enqueue",
                "claim",
                "claim",
                "finish",
                "finish",
                "retry",
                "cancel",
                "delete",
                "recover",
                "clear",
            ]
        )
        ids = [j.id for j in engine.list_jobs(limit=0)]
        try:
            if op == "enqueue":
                specs = [
                    spec.normalize({"command": "true", "max_retries": rng.randint(0, 2)}, now=now)
                    for _ in range(rng.randint(1, 5))
                ]
                engine.enqueue(specs, cwd=str(tmp_path), env={}, now=now)
            elif op == "claim":
                claimed = engine.claim(rng.choice(workers), now=now)
                if claimed:
                    held.append(claimed)
            elif op == "finish" and held:
                claimed = held.pop(rng.randrange(len(held)))
                engine.finish(
                    *claimed,
                    now=now,
                    outcome=rng.choice(
                        ["completed", "failed", "timeout", "interrupted", "cancelled"]
                    ),
                )
            elif op == "retry" and ids:
                engine.retry(rng.choice(ids), now=now)
            elif op == "cancel" and ids:
                engine.cancel(rng.choice(ids), now=now)
            elif op == "delete" and ids:
                engine.delete(rng.sample(ids, min(len(ids), 2)))
            elif op == "recover":
                engine.recover_lost(now=now)
            elif op == "clear" and rng.random() < 0.2:
                engine.clear([rng.choice(["completed", "dead", "failed"])])
        except QueueError:
            pass  # wrong state for that job: refused, nothing changed
    expected = grouped()
    assert sum(expected.values()) >= 10 and sum(1 for n in expected.values() if n) >= 3
    status = ok(cli("status", "--json")).json()
    assert status["jobs"] == expected and status["total"] == sum(expected.values())


# --- the cost of a read does not grow with the number of jobs ---------------------------------

_SEED = """
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?)
INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, backoff_base,
                 run_at, created_at, updated_at, cwd, cancel_requested)
SELECT 'bulk-' || n, 'true', 'default',
       CASE WHEN n % 10 < 2 THEN 'pending' WHEN n % 10 < 8 THEN 'completed'
            WHEN n % 10 = 8 THEN 'dead' ELSE 'failed' END,
       0, 0, 3, 2.0, n, n, n, '/', 0 FROM c
"""


def steps(func) -> int:
    """Thousands of SQLite virtual-machine steps ``func`` takes: work done, not time taken."""
    calls = [0]

    def tick() -> int:
        calls[0] += 1
        return 0

    connection = database.connection()
    connection.set_progress_handler(tick, 1000)
    try:
        func()
    finally:
        connection.set_progress_handler(None, 1000)
    return calls[0]


def test_status_and_console_counts_read_a_few_rows_at_any_size(db):
    database.execute_sql(_SEED, (50_000,))
    counted(pending=10_000, completed=30_000, dead=5_000, failed=5_000)
    page = data.read_page(data.View(state="pending"), 25)
    assert page.total == 10_000 and len(page.jobs) == 25
    # A scan of 50,000 rows takes hundreds of thousands of steps; an indexed read, a few.
    assert steps(engine.counts) <= 1
    assert steps(lambda: engine.count_jobs(state="failed")) <= 1
    assert steps(lambda: engine.stats(now=T0)) <= 2  # oldest pending: first entry of an index
    assert steps(lambda: data.read_page(data.View(state="pending"), 25)) <= 2
    assert steps(lambda: engine.list_jobs(state="pending", limit=50)) <= 2


def test_an_upgraded_first_release_database_counts_its_rows(tmp_path):
    from helpers import make_v1

    path = make_v1(tmp_path / "old.db")
    con = sqlite3.connect(path)
    for i, state in enumerate(
        ["pending", "completed", "completed", "dead", "failed", "processing"]
    ):
        con.execute(
            "INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, "
            "backoff_base, run_at, created_at, updated_at, cwd, cancel_requested) VALUES "
            "(?, 'true', 'default', ?, 0, 0, 3, 2, 0, 0, 0, '/', 0)",
            (f"v1-{i}", state),
        )
    con.commit()
    con.close()
    open_db(path)
    try:
        counted(pending=2, completed=2, dead=1, failed=1, processing=1)
        engine.delete(["old-job"])  # the triggers are there from the upgrade on
        counted(pending=1, completed=2, dead=1, failed=1, processing=1)
    finally:
        close_db()
