"""The worker's batch on its own: its size, what it holds, and the order of its lines."""

from __future__ import annotations

from types import SimpleNamespace

from queuectl_tui.run.batch import BATCH_MAX, LONG, RECORD_WITHIN, STRETCH_MAX, Batch


def ran(seconds: float):
    """A launcher's result that took ``seconds``."""
    return SimpleNamespace(duration=seconds)


def calm() -> float:
    """CPUs with a task each at most: the window is RECORD_WITHIN itself."""
    return 1.0


def held(*ids: str):
    return [(SimpleNamespace(id=i), SimpleNamespace(number=1)) for i in ids]


def test_the_size_is_what_runs_within_record_within_by_the_mean_up_to_the_cap():
    batch, sizes = Batch(calm), []
    for took in (RECORD_WITHIN / 4, RECORD_WITHIN / 4, RECORD_WITHIN / 100):
        batch.end("e", ran(took))
        batch.resize(handing_back=False)
        batch.recorded([None])
        sizes.append(batch.size)
    # a quarter of RECORD_WITHIN each: four of them fit, and the one they wait behind; then a
    # much shorter job moves the mean (a quarter of the way), never past BATCH_MAX
    assert sizes[:2] == [5, 5] and 5 < sizes[2] <= BATCH_MAX and BATCH_MAX == 16


def test_a_slow_job_shrinks_the_size_and_a_long_one_or_a_hand_back_makes_it_one():
    batch = Batch(calm)
    batch.size, batch.mean = 5, RECORD_WITHIN / 4
    batch.end("slower", ran(RECORD_WITHIN / 2))  # under load: the size shrinks, not to one
    batch.resize(handing_back=False)
    batch.recorded([None])
    assert 1 < batch.size < 5
    batch.end("long", ran(3600.0))
    batch.resize(handing_back=False)
    batch.recorded([None])
    assert batch.size == 1 and batch.mean <= LONG  # counted as LONG: back soon after
    for _ in range(8):
        batch.end("short", ran(0.0))
        batch.resize(handing_back=False)
        batch.recorded([None])
    assert batch.size > 1
    batch.resize(handing_back=True)  # nothing ended: handing back alone
    assert batch.size == 1


def test_held_jobs_come_out_in_claim_order_and_the_next_one_is_known():
    batch = Batch(calm)
    assert not batch.busy and batch.next_job() is None
    batch.hold(held("a", "b"), token="t1", worker_id=3, now=10.0)
    assert batch.busy and batch.next_job().id == "a"
    assert batch.take()[0].id == "a" and batch.next_job().id == "b"
    assert batch.held_token == "t1"
    batch.handed_back()
    assert not batch.busy


def test_held_jobs_are_trusted_for_half_a_lease_and_only_under_their_worker_id():
    batch = Batch(calm)
    batch.hold(held("a"), token=None, worker_id=3, now=100.0)
    assert not batch.untrusted(lease=30, worker_id=3, now=115.0)
    assert batch.untrusted(lease=30, worker_id=3, now=115.1)
    assert batch.untrusted(lease=30, worker_id=4, now=100.0)  # registered again meanwhile


def test_an_end_waits_for_the_write_at_most_record_within():
    batch = Batch(calm)
    batch.end("first", ran(0.0), now=0.0)
    batch.end("second", ran(0.0), now=RECORD_WITHIN)  # the first one's time counts
    assert not batch.record_due(now=RECORD_WITHIN / 2)
    assert batch.record_due(now=RECORD_WITHIN)
    assert batch.to_record() == ["first", "second"]


def test_a_start_line_waits_behind_the_finish_lines_of_unrecorded_jobs():
    """What a reader sees: each job's start after the finish of the job before it."""
    batch = Batch(calm)
    assert batch.starting("start a") == "start a"  # nothing unrecorded: said at once
    batch.end("a", ran(0.0))
    assert batch.starting("start b") is None  # "finish a" is not said yet
    batch.end("b", ran(0.0))
    assert batch.starting("start c") is None
    entries = batch.recorded(["completed", None])
    assert [(e, start, state) for e, _, start, state in entries] == [
        ("a", None, "completed"),
        ("b", "start b", None),
    ]
    assert batch.take_start_line() == "start c" and batch.take_start_line() is None
    assert batch.to_record() == [] and not batch.busy


def ended_and_resized(batch: Batch, took: float, times: int = 1) -> None:
    for _ in range(times):
        batch.end("e", ran(took))
        batch.resize(handing_back=False)
        batch.recorded([None])


def test_on_crowded_cpus_the_window_stretches_with_the_crowd_and_so_does_the_size():
    # eight runnable tasks per CPU... four: a job waits for a CPU three quarters of the time
    batch = Batch(lambda: 4.0)
    ended_and_resized(batch, RECORD_WITHIN / 2, times=20)
    assert 3.9 < batch.stretch <= 4.0
    assert batch.size == 1 + int(batch.within / batch.mean) == 8  # 2 without the crowd
    batch.end("first", ran(0.0), now=0.0)
    assert not batch.record_due(now=3 * RECORD_WITHIN)
    assert batch.record_due(now=4 * RECORD_WITHIN)
    batch.recorded([None])
    # a job that is long by the stretched measure still makes the size one
    ended_and_resized(batch, 2 * RECORD_WITHIN)
    assert batch.size > 1
    ended_and_resized(batch, LONG * 4)
    assert batch.size == 1


def test_the_stretch_has_a_cap_and_goes_back_when_the_crowd_goes():
    crowd = {"now": 1000.0}
    batch = Batch(lambda: crowd["now"])
    ended_and_resized(batch, 0.0, times=30)
    assert STRETCH_MAX - 0.01 < batch.stretch <= STRETCH_MAX
    assert batch.within <= RECORD_WITHIN * STRETCH_MAX
    crowd["now"] = 0.5  # idle CPUs count as uncrowded, not as a shrink below the window
    ended_and_resized(batch, 0.0, times=30)
    assert 1.0 <= batch.stretch < 1.01


def test_without_a_measure_of_the_cpus_the_window_is_record_within():
    batch = Batch(lambda: None)
    ended_and_resized(batch, RECORD_WITHIN / 4, times=5)
    assert batch.within == RECORD_WITHIN and batch.size == 5
