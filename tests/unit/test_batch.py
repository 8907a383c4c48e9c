"""The worker's batch on its own: its size, what it holds, and the order of its lines."""

from __future__ import annotations

from types import SimpleNamespace

from queuectl_tui.run.batch import BATCH_MAX, RECORD_WITHIN, SHORT, Batch


def ran(seconds: float):
    """A launcher's result that took ``seconds``."""
    return SimpleNamespace(duration=seconds)


def held(*ids: str):
    return [(SimpleNamespace(id=i), SimpleNamespace(number=1)) for i in ids]


def test_the_size_doubles_while_every_job_is_short_up_to_the_cap():
    batch, sizes = Batch(), []
    for _ in range(7):
        batch.end(f"e{len(sizes)}", ran(SHORT / 2))
        batch.resize(handing_back=False)
        batch.recorded([None])
        sizes.append(batch.size)
    assert sizes == [2, 4, 8, 16, 16, 16, 16] and BATCH_MAX == 16


def test_one_long_job_or_a_hand_back_brings_the_size_back_to_one():
    batch = Batch()
    batch.size = 8
    batch.end("short", ran(0.0))
    batch.end("long", ran(SHORT))
    batch.resize(handing_back=False)
    assert batch.size == 1
    batch.size = 8
    batch.resize(handing_back=True)  # nothing ended: handing back alone
    assert batch.size == 1


def test_held_jobs_come_out_in_claim_order_and_the_next_one_is_known():
    batch = Batch()
    assert not batch.busy and batch.next_job() is None
    batch.hold(held("a", "b"), token="t1", worker_id=3, now=10.0)
    assert batch.busy and batch.next_job().id == "a"
    assert batch.take()[0].id == "a" and batch.next_job().id == "b"
    assert batch.held_token == "t1"
    batch.handed_back()
    assert not batch.busy


def test_held_jobs_are_trusted_for_half_a_lease_and_only_under_their_worker_id():
    batch = Batch()
    batch.hold(held("a"), token=None, worker_id=3, now=100.0)
    assert not batch.untrusted(lease=30, worker_id=3, now=115.0)
    assert batch.untrusted(lease=30, worker_id=3, now=115.1)
    assert batch.untrusted(lease=30, worker_id=4, now=100.0)  # registered again meanwhile


def test_an_end_waits_for_the_write_at_most_record_within():
    batch = Batch()
    batch.end("first", ran(0.0), now=0.0)
    batch.end("second", ran(0.0), now=RECORD_WITHIN)  # the first one's time counts
    assert not batch.record_due(now=RECORD_WITHIN / 2)
    assert batch.record_due(now=RECORD_WITHIN)
    assert batch.to_record() == ["first", "second"]


def test_a_start_line_waits_behind_the_finish_lines_of_unrecorded_jobs():
    """What a reader sees: each job's start after the finish of the job before it."""
    batch = Batch()
    assert batch.starting("start a") == "start a"  # nothing unrecorded: said at once
    batch.end("a", ran(0.0))
    assert batch.starting("start b") is None  # "finish a" is not said yet
    batch.end("b", ran(0.0))
    assert batch.starting("start c") is None
    entries = batch.recorded(["completed", None])
    assert [(e, start, state) for e, _, start, state in entries] == [
        ("a", None, "completed"), ("b", "start b", None)]
    assert batch.take_start_line() == "start c" and batch.take_start_line() is None
    assert batch.to_record() == [] and not batch.busy
