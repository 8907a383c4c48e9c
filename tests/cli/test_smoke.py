"""The shortest path a new user takes: enqueue a job, run a burst worker, see it done."""


def test_enqueue_and_burst_worker_complete_a_job(cli, home):
    assert cli("enqueue", "--id", "hello", "echo hi > out.txt").code == 0
    result = cli("worker", "start", "--foreground", "--burst")
    assert result.code == 0, result.err
    assert (home.parent / "out.txt").read_text() == "hi\n"
    job = cli("show", "hello", "--json").json()
    assert job["state"] == "completed" and job["attempts"] == 1


def test_engine_claims_in_priority_order(db):
    from queuectl_tui import engine, spec

    engine.enqueue(
        [
            spec.normalize({"id": "low", "command": "true"}),
            spec.normalize({"id": "high", "command": "true", "priority": 5}),
        ]
    )
    worker = engine.register_worker()
    assert engine.claim(worker)[0].id == "high"
    assert engine.claim(worker)[0].id == "low"
    assert engine.claim(worker) is None
